"""`info_nce_loss(query, positive_key, negative_keys, temperature=0.1)`: InfoNCE with explicit
negatives, the stretch of drill 01.

Every query i has one positive, row i of `positive_key`, and shares the M rows of
`negative_keys` with every other query: an (M+1)-way classification whose answer is the
positive. The checks use unit vectors whose correct loss has a closed form (all equal: log(M+1);
orthonormal pairs and negatives), the invariances of cosine similarity, input by input, the
gradients of all three inputs, a small temperature, float64 and the known answers in
grader/data/info_nce.json. A wrong closed-form value is matched against what each classic
mistake gives, so that one mistake gets one diagnosis however many rows it turns red.
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
from ...kit.mistakes import GRAPH_CUT, IN_PLACE
from ...sandbox import Fail, scalar
from ._common import call

checks = checklist(
    "info_nce_loss",
    drill="01_nt_xent",
    smoke=lambda fn: fn(torch.eye(2, 4), torch.eye(2, 4), torch.eye(3, 4)),
)

NAMES = ("query", "positive_key", "negative_keys")
WRONG_TARGET = (
    "the target is not the positive: each query's logits put its own positive first, so its "
    "target is index 0 for every query, not the query's row number"
)
TEMPERATURE_MULTIPLIED = "the similarities are multiplied by the temperature instead of divided"
TEMPERATURE_IGNORED = "the temperature argument is ignored"
SUMMED = "the per-query losses are summed instead of averaged over the N queries"
POSITIVE_TWICE = (
    "the positive is counted twice: it is also among the negatives, so each query has M+2 "
    "candidates instead of M+1"
)
KEYS_AS_NEGATIVES = (
    "the other queries' positive keys are used as negatives too: the negatives of every query "
    "are exactly the M rows of negative_keys, shared by all queries"
)
OVERFLOW = "exp(similarity / tau) overflows float32 at small tau (exp(100) > 3.4e38)"

_AVERAGE = "one mean over the N queries, the default reduction of a cross-entropy"
_DIVIDE = "similarities are divided by tau: a small tau makes large logits"
HINTS = {
    WRONG_TARGET: "build each query's row of logits with its positive in the first place, so "
    "that the target of every query is that first place",
    TEMPERATURE_MULTIPLIED: _DIVIDE,
    TEMPERATURE_IGNORED: _DIVIDE,
    SUMMED: _AVERAGE,
    POSITIVE_TWICE: "each query's candidates are its positive once and the M shared negatives",
    KEYS_AS_NEGATIVES: "score each query against its own positive and the M rows of "
    "negative_keys only, not against the other queries' positives",
}


def not_normalised(names) -> str:
    """The mistake when rescaling the rows of the named inputs changes the loss."""
    words = {"query": "the queries", "positive_key": "the positive keys",
             "negative_keys": "the negative keys"}
    said = " and ".join(words[n] for n in names)
    return (f"{said} are not L2-normalised, so the loss uses "
            "dot products there, not cosine similarity")


def detached(names) -> str:
    """The mistake when no gradient reaches the named inputs."""
    return (f"{' and '.join(names)} {'is' if len(names) == 1 else 'are'} detached: the gradient "
            "of InfoNCE must reach the queries, the positive keys and the negative keys")


def loss_of(fn, q, k, neg, temperature=0.1):
    """The learner's loss as a finite 0-d tensor (or a Fail saying why it is not one)."""
    return scalar(call(fn, q, k, neg, temperature=temperature))


def _negatives(m, d, seed, dtype=torch.float32):
    return _randn(m, d, seed=seed).to(dtype)


def collapsed_signatures(n, m) -> dict[float, str]:
    """Values all-equal unit inputs give under classic mistakes (correct: log(M+1))."""
    return {
        n * math.log(m + 1): SUMMED,
        math.log(m + 2): POSITIVE_TWICE,
        math.log(n + m): KEYS_AS_NEGATIVES,
    }


def perfect_signatures(n, m, tau) -> dict[float, str]:
    """Values orthonormal pairs and negatives give under classic mistakes: the positive scores
    1/tau, every other candidate 0."""
    s = 1 / tau
    lse = math.log(math.exp(s) + m)
    correct = lse - s
    return {
        lse - s / n: WRONG_TARGET,  # only query 0's target happens to be index 0
        -tau + math.log(math.exp(tau) + m): TEMPERATURE_MULTIPLIED,
        -1 + math.log(math.e + m): TEMPERATURE_IGNORED,
        n * correct: SUMMED,
        -s + math.log(2 * math.exp(s) + m): POSITIVE_TWICE,
        -s + math.log(math.exp(s) + m + n - 1): KEYS_AS_NEGATIVES,
    }


laws.returns_scalar(
    checks, loss=lambda fn, q, k: loss_of(fn, q, k, _negatives(5, 8, seed=40)),
    hint="the loss is the mean over the N queries: a 0-dimensional tensor")
laws.leaves_inputs_unchanged(
    checks, run=loss_of, diagnosis=IN_PLACE,
    hint="normalise into new tensors rather than in place",
    inputs=lambda: [(3.0 * _randn(5, 6, seed=41), _randn(5, 6, seed=42) + 1.0,
                     2.0 * _randn(6, 6, seed=43))])


@checks.add(
    "is invariant to rescaling the rows of each input (cosine similarity)",
    diagnosis="an input is not L2-normalised",
    hint="normalise each row of all three inputs to unit length before comparing them",
)
def rescaling(fn):
    q, k, neg = _randn(5, 8, seed=44), _randn(5, 8, seed=45), _randn(6, 8, seed=46)
    base = loss_of(fn, q, k, neg, 0.5).item()
    changed = []
    for i, name in enumerate(NAMES):
        args = [q, k, neg]
        args[i] = torch.linspace(0.2, 5.0, len(args[i])).unsqueeze(1) * args[i]
        if not _close(loss_of(fn, *args, 0.5).item(), base):
            changed.append(name)
    if changed:
        raise Fail(f"rescaling the rows of {' and '.join(changed)} changed the loss",
                   diagnosis=not_normalised(changed), measured=", ".join(changed),
                   expected="no input's row lengths matter")
    return f"{base:.5f} whatever the row lengths"


@checks.add(
    "all-equal inputs give exactly log(M+1)",
    diagnosis="the loss of a collapsed batch is wrong",
    hint="with every embedding equal, each query sees its positive and the M negatives as equally "
    "likely candidates",
)
def collapsed(fn):
    n, m = 4, 6
    e = torch.eye(1, 5)
    value = loss_of(fn, e.repeat(n, 1), e.repeat(n, 1), e.repeat(m, 1), 0.5).item()
    expected = math.log(m + 1)
    if _close(value, expected):
        return f"{value:.5f} = log({m + 1})"
    raise Fail(f"all-equal inputs, N={n} queries and M={m} negatives, gave {value:.5f}",
               diagnosis=which_mistake(value, collapsed_signatures(n, m)),
               measured=f"{value:.5f}", expected=f"log({m + 1}) = {expected:.5f}")


@checks.add(
    "orthonormal pairs and negatives give the closed form",
    diagnosis="the loss of perfect pairs is wrong",
    hint="the positive scores one over tau, every negative scores 0",
)
def perfect_pairs(fn):
    n, m, tau = 4, 6, 0.2
    eye = torch.eye(n + m)
    q, neg = eye[:n], eye[n:]
    value = loss_of(fn, q, q.clone(), neg, tau).item()
    expected = math.log(1 + m * math.exp(-1 / tau))
    if _close(value, expected, rel=1e-3, abs_=1e-5):
        return f"{value + 0.0:.3e} = log(1 + M exp(-1/tau))"
    raise fail_naming(f"orthonormal pairs and negatives at tau={tau} gave {value:.4g}",
                      which_mistake(value, perfect_signatures(n, m, tau), rel=1e-3),
                      hints=HINTS, measured=f"{value:.4g}", expected=f"{expected:.4e}")


laws.gradients_reach(
    checks, "gradients reach all three inputs", diagnosis=GRAPH_CUT,
    hint="stay in torch operations from every input to the returned loss",
    loss=lambda fn, q, k, neg: loss_of(fn, q, k, neg, 0.5),
    leaves=lambda: {"query": _randn(5, 8, seed=47).requires_grad_(True),
                    "positive_key": _randn(5, 8, seed=48).requires_grad_(True),
                    "negative_keys": _randn(6, 8, seed=49).requires_grad_(True)},
    mistake=lambda fn, missing, leaves: (
        detached(missing), "remove any detach or no-grad block around the inputs: InfoNCE "
        "trains the encoders of the queries and of the keys"))


laws.finite_at_extreme(
    checks, "stays finite at temperature 0.01", seeds=(50, 51), where="tau = 0.01",
    diagnosis=OVERFLOW,
    hint="compute the log-softmax with the log-sum-exp trick, for example through a "
    "cross-entropy on the raw logits",
    call=lambda fn, q, k: call(fn, q, k, _negatives(10, 16, seed=52), temperature=0.01))


def _float64_wrong(value, expected):
    n, m = 5, 6
    return fail_naming(
        f"the loss is float64 but its value is wrong: all-equal float64 inputs gave "
        f"{value:.6f}, not log({m + 1})", which_mistake(value, collapsed_signatures(n, m)),
        hints=HINTS, measured=f"{value:.15f}", expected=f"{expected:.15f}")


def _float64_loss(fn, q, k):
    # The law's rows are (1, tiny, 1): unit rows, and negatives equal to them, make a collapsed
    # batch whatever a learner normalises, so only the precision is tested here.
    q, k = (t / t.norm(dim=1, keepdim=True) for t in (q, k))
    return loss_of(fn, q, k, q[:1].repeat(6, 1), 0.5)


laws.keeps_float64(checks, expected=math.log(7), wrong_value=_float64_wrong, loss=_float64_loss)


def _stored_value(case, loss):
    laws.check_stored(loss, case["loss"], f"N={len(case['query'])}, "
                      f"M={len(case['negative_keys'])}, tau={case['temperature']}")


def _stored_case(case):
    leaves = {name: torch.tensor(case[name], dtype=torch.float64, requires_grad=True)
              for name in NAMES}
    return (*leaves.values(), case["temperature"]), leaves


laws.known_answers(
    checks, cases=lambda: load_cases("info_nce"), build=_stored_case, loss=loss_of,
    check_value=_stored_value,
    where=lambda case: f"N={len(case['query'])}, M={len(case['negative_keys'])}",
    missing_mistake=lambda fn, missing, args, case: detached(missing),
    hint="if the other checks pass, compare the temperature handling and the reduction")
