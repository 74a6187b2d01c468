"""`moco_loss(q, k, queue_keys, temperature=0.07)`: MoCo's InfoNCE against a queue of keys.

Query i has one positive, its key k[i] (from the momentum encoder), and shares the K keys of the
queue as negatives with every other query: a (K+1)-way classification whose answer is the
positive, in the first place of each query's logits. q and k are L2-normalised inside; the queue
holds unit vectors and is used as given (normalising it again changes nothing). Whether the loss
detaches k is not graded: in MoCo k comes from the momentum encoder under no_grad.
"""

from __future__ import annotations

import math

import torch

from ...checks import checklist
from ...data import load_cases
from ...inputs import close as _close
from ...inputs import randn as _randn
from ...kit import laws
from ...kit.lookup import fail_naming, which_mistake
from ...kit.mistakes import GRAPH_CUT, IN_PLACE, SINGLE_PAIR_BREAKS
from ...kit.mistakes import call_naming_in_place as call
from ...sandbox import Fail, scalar
from ._common import DRILL

checks = checklist(
    "moco_loss",
    drill=DRILL,
    smoke=lambda fn: fn(torch.eye(2, 4), torch.eye(2, 4), torch.eye(4)[2:]),
)

WRONG_TARGET = (
    "the target is not the positive: each query's logits put its own key first, so the target "
    "is index 0 for every query, not the query's row number"
)
TEMPERATURE_MULTIPLIED = "the similarities are multiplied by the temperature instead of divided"
TEMPERATURE_IGNORED = "the temperature argument is ignored"
TEMPERATURE_ON_NEGATIVES = (
    "only the queue's similarities are divided by the temperature: the positive's must be too"
)
SUMMED = "the per-query losses are summed instead of averaged over the batch"
KEYS_APPENDED = (
    "the batch's keys are also among the negatives (appended to the queue before the loss): "
    "each query competes with its own key a second time, and with the other queries' keys"
)
KEYS_AS_NEGATIVES = (
    "the other queries' keys are used as negatives too (an N x N matrix of query-key "
    "similarities): MoCo's negatives are exactly the K keys of the queue"
)
QUEUE_UNUSED = (
    "the queue is not used: the negatives are the other keys of the batch only, so their "
    "number still depends on the batch size"
)
OVERFLOW = "exp(similarity / tau) overflows float32 at small tau (exp(100) > 3.4e38)"
DEFAULT_TEMPERATURE = "the default temperature is not MoCo's 0.07"

_AVERAGE = "one mean over the N queries, the default reduction of a cross-entropy"
_DIVIDE = "every logit, the positive's and the queue's, is a similarity divided by tau"
_QUEUE = ("each query's candidates are its own key once and the K keys of the queue, nothing "
          "else")
HINTS = {
    WRONG_TARGET: "build each query's logits with its own key in the first place, so that the "
    "target of every query is that first place",
    TEMPERATURE_MULTIPLIED: _DIVIDE,
    TEMPERATURE_IGNORED: _DIVIDE,
    TEMPERATURE_ON_NEGATIVES: _DIVIDE,
    SUMMED: _AVERAGE,
    KEYS_APPENDED: "compute the loss against the queue as it was before this batch: the "
    "batch's keys join the queue only after the loss",
    KEYS_AS_NEGATIVES: "score each query against its own key (one number per query) and the "
    "queue, not against the other queries' keys",
    QUEUE_UNUSED: _QUEUE,
}


def not_normalised(names) -> str:
    """The mistake when rescaling the rows of the named inputs changes the loss."""
    said = " and ".join({"q": "the queries", "k": "the keys"}[n] for n in names)
    return (f"{said} {'is' if len(names) == 1 else 'are'} not L2-normalised, so the loss uses "
            "dot products there, not cosine similarity")


def loss_of(fn, q, k, queue_keys, temperature=0.07):
    """The learner's loss as a finite 0-d tensor (or a Fail saying why it is not one)."""
    return scalar(call(fn, q, k, queue_keys, temperature=temperature))


def unit_queue(size, dim, seed, dtype=torch.float32):
    """A queue as the caller keeps it: `size` random unit vectors."""
    rows = _randn(size, dim, seed=seed).to(dtype)
    return rows / rows.norm(dim=1, keepdim=True)


def collapsed_signatures(n, size) -> dict[float, str]:
    """Values all-equal inputs give under classic mistakes (correct: log(K+1))."""
    return {
        n * math.log(size + 1): SUMMED,
        math.log(n + size + 1): KEYS_APPENDED,
        math.log(n + size): KEYS_AS_NEGATIVES,
        math.log(n): QUEUE_UNUSED,
    }


def graded_value(n, size, tau, c) -> float:
    """The correct loss when every query is its own key and every queue key is at cosine c from
    every query."""
    a = 1 / tau
    return -a + math.log(math.exp(a) + size * math.exp(c * a))


def graded_signatures(n, size, tau, c) -> dict[float, str]:
    """Values the same inputs give under classic mistakes: the positive scores 1/tau, the queue
    c/tau, the other queries' keys 0."""
    a = 1 / tau
    lse = math.log(math.exp(a) + size * math.exp(c * a))
    return {
        lse - (a + (n - 1) * c * a) / n: WRONG_TARGET,  # only query 0's target is index 0
        -tau + math.log(math.exp(tau) + size * math.exp(c * tau)): TEMPERATURE_MULTIPLIED,
        -1 + math.log(math.e + size * math.exp(c)): TEMPERATURE_IGNORED,
        -1 + math.log(math.e + size * math.exp(c * a)): TEMPERATURE_ON_NEGATIVES,
        n * graded_value(n, size, tau, c): SUMMED,
        -a + math.log(2 * math.exp(a) + n - 1 + size * math.exp(c * a)): KEYS_APPENDED,
        -a + math.log(math.exp(a) + n - 1 + size * math.exp(c * a)): KEYS_AS_NEGATIVES,
        -a + math.log(math.exp(a) + n - 1): QUEUE_UNUSED,
    }


def graded_inputs(n=4, size=6, dim=8):
    """One-hot queries that are their own keys, and a queue whose every key sits at cosine 1/2
    from every query (the unit vector along the sum of the four queries)."""
    q = torch.eye(n, dim)
    along = q.sum(0) / q.sum(0).norm()
    return q, q.clone(), along.repeat(size, 1), float(along @ q[0])


laws.returns_scalar(
    checks, loss=lambda fn, q, k: loss_of(fn, q, k, unit_queue(5, 8, seed=60)),
    hint="the loss is the mean over the N queries: a 0-dimensional tensor")
laws.leaves_inputs_unchanged(
    checks, run=loss_of, diagnosis=IN_PLACE,
    hint="normalise into new tensors rather than in place",
    inputs=lambda: [(3.0 * _randn(5, 6, seed=61), _randn(5, 6, seed=62) + 1.0,
                     unit_queue(7, 6, seed=63))])


@checks.add(
    "is invariant to rescaling the rows of q and of k (cosine similarity)",
    diagnosis="q or k is not L2-normalised",
    hint="normalise each row of the queries and of the keys to unit length before comparing",
)
def rescaling(fn):
    q, k, queue = _randn(5, 8, seed=64), _randn(5, 8, seed=65), unit_queue(6, 8, seed=66)
    base = loss_of(fn, q, k, queue, 0.5).item()
    factors = torch.linspace(0.2, 5.0, 5).unsqueeze(1)
    changed = [name for name, args in (("q", (factors * q, k)), ("k", (q, factors * k)))
               if not _close(loss_of(fn, *args, queue, 0.5).item(), base)]
    if changed:
        raise Fail(f"rescaling the rows of {' and '.join(changed)} changed the loss",
                   diagnosis=not_normalised(changed), measured=", ".join(changed),
                   expected="the row lengths of q and k do not matter")
    return f"{base:.5f} whatever the row lengths"


@checks.add(
    "all-equal inputs give exactly log(K+1)",
    diagnosis="the loss of a collapsed batch is wrong",
    hint="with every embedding equal, each query sees its key and the K queue keys as equally "
    "likely candidates",
)
def collapsed(fn):
    n, size = 4, 6
    e = torch.eye(1, 5)
    value = loss_of(fn, e.repeat(n, 1), e.repeat(n, 1), e.repeat(size, 1), 0.5).item()
    expected = math.log(size + 1)
    if _close(value, expected):
        return f"{value:.5f} = log({size + 1})"
    raise fail_naming(f"all-equal inputs, N={n} queries and K={size} queue keys, gave "
                      f"{value:.5f}", which_mistake(value, collapsed_signatures(n, size)),
                      hints=HINTS, measured=f"{value:.5f}",
                      expected=f"log({size + 1}) = {expected:.5f}")


@checks.add(
    "queries that are their own keys, against a queue at cosine 1/2: the closed form",
    diagnosis="the loss is wrong where the positive and the queue have known similarities",
    hint="the positive scores one over tau, each queue key one half over tau",
)
def graded_pairs(fn):
    tau = 0.2
    q, k, queue, c = graded_inputs()
    n, size = len(q), len(queue)
    value = loss_of(fn, q, k, queue, tau).item()
    expected = graded_value(n, size, tau, c)
    if _close(value, expected):
        return f"{value:.5f} = -1/tau + log(exp(1/tau) + K exp(c/tau)), c = 1/2"
    raise fail_naming(f"one-hot queries equal to their keys and a queue at cosine 1/2, "
                      f"tau={tau}, gave {value:.5f}",
                      which_mistake(value, graded_signatures(n, size, tau, c)), hints=HINTS,
                      measured=f"{value:.5f}", expected=f"{expected:.5f}")


@checks.add(
    "the temperature defaults to 0.07",
    diagnosis=DEFAULT_TEMPERATURE,
    hint="keep the stub's signature: the temperature defaults to 0.07",
)
def default_temperature(fn):
    q, k, queue, c = graded_inputs()
    value = scalar(call(fn, q, k, queue)).item()
    expected = graded_value(len(q), len(queue), 0.07, c)
    if not _close(value, expected):
        raise Fail(f"without a temperature argument the closed-form batch gave {value:.5f}",
                   measured=f"{value:.5f}", expected=f"{expected:.5f} (tau = 0.07)",
                   conclusive=_close(loss_of(fn, q, k, queue, 0.2).item(),
                                     graded_value(len(q), len(queue), 0.2, c)))
    return f"{value:.5f} at tau = 0.07"


@checks.add(
    "works for a batch of one query (N = 1)",
    diagnosis=SINGLE_PAIR_BREAKS,
    hint="nothing in the loss depends on the batch holding more than one query",
    crash_means_mistake=True,
)
def single_query(fn):
    size, tau = 5, 0.2
    eye = torch.eye(size + 1)
    value = loss_of(fn, eye[:1], eye[:1].clone(), eye[1:], tau).item()
    expected = math.log(1 + size * math.exp(-1 / tau))
    if not _close(value, expected, rel=1e-3, abs_=1e-6):
        raise Fail(f"one query whose key is itself, against {size} orthogonal queue keys, gave "
                   f"{value:.5g}", measured=f"{value:.5g}", expected=f"{expected:.5g}",
                   conclusive=False)
    return f"{value:.4g} = log(1 + K exp(-1/tau))"


laws.gradients_reach(
    checks, "gradients reach the queries", diagnosis=GRAPH_CUT,
    hint="stay in torch operations from q to the returned loss",
    loss=lambda fn, q: loss_of(fn, q, _randn(5, 8, seed=68), unit_queue(6, 8, seed=69), 0.5),
    leaves=lambda: {"q": _randn(5, 8, seed=67).requires_grad_(True)},
    mistake=lambda fn, missing, leaves: (GRAPH_CUT, "remove any detach or no-grad block "
                                         "around q: the query encoder learns through it"))

laws.finite_at_extreme(
    checks, "stays finite at temperature 0.01", seeds=(70, 71), where="tau = 0.01",
    diagnosis=OVERFLOW,
    hint="compute the log-softmax with the log-sum-exp trick, for example through a "
    "cross-entropy on the raw logits",
    call=lambda fn, q, k: call(fn, q, k, unit_queue(10, 16, seed=72), temperature=0.01))


def _float64_wrong(value, expected):
    n, size = 5, 6
    return fail_naming(
        f"the loss is float64 but its value is wrong: all-equal float64 inputs gave "
        f"{value:.6f}, not log({size + 1})", which_mistake(value, collapsed_signatures(n, size)),
        hints=HINTS, measured=f"{value:.15f}", expected=f"{expected:.15f}")


def _float64_loss(fn, q, k):
    # Unit rows, and a queue equal to them, make a collapsed batch: only precision is tested.
    q, k = (t / t.norm(dim=1, keepdim=True) for t in (q, k))
    return loss_of(fn, q, k, q[:1].repeat(6, 1), 0.5)


laws.keeps_float64(checks, expected=math.log(7), wrong_value=_float64_wrong, loss=_float64_loss)


def _stored_value(case, loss):
    laws.check_stored(loss, case["loss"], f"N={len(case['q'])}, K={len(case['queue_keys'])}, "
                      f"tau={case['temperature']}")


def _stored_case(case):
    q = torch.tensor(case["q"], dtype=torch.float64, requires_grad=True)
    k, queue = (torch.tensor(case[n], dtype=torch.float64) for n in ("k", "queue_keys"))
    return (q, k, queue, case["temperature"]), {"q": q}


laws.known_answers(
    checks, cases=lambda: load_cases("moco_loss"), build=_stored_case, loss=loss_of,
    check_value=_stored_value,
    where=lambda case: f"N={len(case['q'])}, K={len(case['queue_keys'])}",
    missing_mistake=lambda fn, missing, args, case: GRAPH_CUT,
    hint="if the other checks pass, compare the temperature handling and the reduction")
