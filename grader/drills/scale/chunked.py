"""`chunked_nt_xent_loss(z1, z2, temperature=0.5, chunk_size=1024)`: NT-Xent (drill 01) in
bounded memory. Its value and gradient are nt_xent_loss's; it never holds the 2N x 2N matrix,
neither in the forward pass nor saved for the backward pass, only chunk_size rows of it at a
time (the backward pass recomputes them).

The value is checked on drill 01's closed forms (a collapsed batch, perfect pairs, N = 1) at
one chunk and at many (a batch whose per-row losses are known tells how the chunks are put
together), the gradient against finite differences of the learner's own forward pass and
against the known answers in grader/data/chunked_nt_xent.json (nt_xent_loss's values and
gradients); the memory is measured in bytes (grader/drills/scale/_memory.py), not in seconds.
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
from ...kit.mistakes import FLOAT32, GRAPH_CUT, IN_PLACE
from ...sandbox import Fail, scalar
from ..nt_xent import _mistakes as M
from . import _memory
from ._common import DRILL, call

checks = checklist(
    "chunked_nt_xent_loss",
    drill=DRILL,
    smoke=lambda fn: fn(torch.eye(2, 4), torch.eye(2, 4), chunk_size=1),
)

FULL_MATRIX = (
    "the full 2N x 2N similarity matrix is built (in the forward or the backward pass), so "
    "memory grows as N squared whatever chunk_size says"
)
SAVED_CHUNKS = (
    "every chunk's similarities are kept for the backward pass (autograd saves them), so "
    "together they hold the whole 2N x 2N matrix: the backward pass must recompute them"
)
TARGET_OFFSET = (
    "the targets inside a chunk ignore the chunk's offset: a row's partner is found from its "
    "position within the chunk instead of its row in the stacked batch"
)
MASK_OFFSET = (
    "the self-similarity mask inside a chunk ignores the chunk's offset: the masked column is "
    "the row's position within the chunk, not its row in the stacked batch"
)
MEAN_OF_MEANS = (
    "the chunks' means are averaged: a last, shorter chunk weighs as much as a full one, so "
    "the value changes when chunk_size does not divide 2N"
)
LAST_CHUNK_DROPPED = (
    "the last, shorter chunk is dropped: when chunk_size does not divide 2N its rows never "
    "count"
)
CHUNK_DEPENDENT = (
    "the value depends on chunk_size: the rows of a chunk are not treated as rows of the whole "
    "stacked batch"
)
NO_NORMALISATION_JACOBIAN = (
    "the backward pass returns the gradient with respect to the normalised rows and forgets "
    "the L2 normalisation's own derivative"
)
BACKWARD_WRONG = (
    "the backward pass is not the derivative of the forward pass (finite differences of your "
    "own loss disagree with its gradient)"
)
GRAD_OUTPUT_IGNORED = (
    "the backward pass ignores the incoming gradient (grad_output): the loss times 3 must get "
    "3 times the gradient"
)

HINTS = {
    **M.HINTS,
    TARGET_OFFSET: "give each chunk its first row's index in the stacked batch and build that "
    "chunk's targets from it",
    MASK_OFFSET: "the entry to exclude for a row is at its own row number in the stacked batch: "
    "the chunk's first row index plus the position within the chunk",
    MEAN_OF_MEANS: "add up the per-row losses over all chunks and divide once by 2N",
    LAST_CHUNK_DROPPED: "let the last chunk end at 2N, however many rows it has",
    CHUNK_DEPENDENT: "write the loss of one row first; a chunk is a set of rows, each with its "
    "own index in the stacked batch",
}

_RAGGED = (3, 4, 7, 64)  # chunk sizes that do not divide 2N = 10 (64: one chunk, too big)
_EVEN = (1, 2, 5)  # and some that do


def _loss(fn, z1, z2, temperature=0.5, chunk_size=3):
    out = call(fn, z1, z2, temperature=temperature, chunk_size=chunk_size)
    if laws.non_finite(out) and chunk_size < 2 * len(z1):
        # Not finite in chunks but finite in one: how the chunks are put together is wrong,
        # which "gives the same value at every chunk size" names.
        one = call(fn, z1.detach(), z2.detach(), temperature=temperature,
                   chunk_size=2 * len(z1))
        if isinstance(one, torch.Tensor) and one.dim() == 0 and torch.isfinite(one):
            raise Fail(f"the loss is {out.item()} at chunk_size = {chunk_size}, finite in one "
                       "chunk", measured=out.item(), expected="a finite number",
                       conclusive=False)
    return scalar(out)


def _raw(fn, z1, z2, temperature, chunk_size):
    return call(fn, z1, z2, temperature=temperature, chunk_size=chunk_size)


laws.returns_scalar(checks, loss=_loss, hint="the loss is the mean over the 2N anchors: a "
                    "0-dimensional tensor")
laws.leaves_inputs_unchanged(
    checks, run=_loss, diagnosis=IN_PLACE,
    hint="normalise into a new tensor, for example with F.normalize, rather than in place",
    inputs=lambda: [(3.0 * _randn(5, 6, seed=900), _randn(5, 6, seed=901) + 1.0),
                    (_randn(5, 6, seed=900).requires_grad_(), _randn(5, 6, seed=901))])


@checks.add(
    "collapsed embeddings give exactly log(2N-1) (one chunk)",
    diagnosis="the loss of a collapsed batch is wrong",
    hint="with every embedding equal, each anchor sees 2N-1 equally likely candidates",
)
def collapsed(fn):
    n, tau = 4, 0.5
    z = torch.ones(n, 3)
    value = _loss(fn, z, z.clone(), tau, chunk_size=2 * n).item()
    expected = math.log(2 * n - 1)
    if _close(value, expected):
        return f"{value:.5f} = log({2 * n - 1})"
    raise fail_naming(f"a collapsed batch of N={n} in one chunk gave {value:.5f}",
                      which_mistake(value, M.collapsed_signatures(n, tau)), hints=HINTS,
                      measured=f"{value:.5f}", expected=f"log({2 * n - 1}) = {expected:.5f}")


def _perfect(n, tau):
    return -1 / tau + math.log(math.exp(1 / tau) + 2 * n - 2)


@checks.add(
    "perfect pairs with orthogonal negatives give a loss near 0 (one chunk)",
    diagnosis=M.WRONG_PARTNER,
    hint=M.HINTS[M.WRONG_PARTNER],
)
def perfect_pairs(fn):
    n, tau = 5, 0.05
    z = torch.eye(n, 8)
    value = _loss(fn, z, z.clone(), tau, chunk_size=2 * n).item()
    expected = _perfect(n, tau)
    if _close(value, expected, rel=1e-3, abs_=1e-4):
        return f"{value + 0.0:.2e}"
    raise fail_naming(f"z1 = z2 = orthonormal rows at tau={tau} gave {value:.4g}",
                      which_mistake(value, M.perfect_pairs_signatures(n, tau), rel=1e-3),
                      hints=HINTS, measured=f"{value:.4g}", expected=f"{expected:.2e}")


def _mixed_batch():
    """N = 5 pairs, tau = 0.2: pairs 0-3 are perfect (e_i, e_i), pair 4 is (e_4, e_5), orthogonal
    to everything. Rows 0-3 and 5-8 each lose a, rows 4 and 9 each lose b."""
    tau = 0.2
    z1, z2 = torch.eye(5, 8, dtype=torch.float64), torch.eye(5, 8, dtype=torch.float64)
    z2[4] = torch.eye(8, dtype=torch.float64)[5]
    s = 1 / tau
    a, b = -s + math.log(math.exp(s) + 8), math.log(9)
    rows = [a] * 4 + [b] + [a] * 4 + [b]
    return z1, z2, tau, rows


def _ragged_signatures(rows, chunk):
    chunks = [rows[i:i + chunk] for i in range(0, len(rows), chunk)]
    kept = [r for c in chunks if len(c) == chunk for r in c]
    return [
        (sum(sum(c) / len(c) for c in chunks) / len(chunks), MEAN_OF_MEANS),
        (sum(kept) / max(len(kept), 1), LAST_CHUNK_DROPPED),
        (sum(kept) / len(rows), LAST_CHUNK_DROPPED),
    ]


def _offset_signatures(n, tau, chunk):
    """What z1 = z2 = n orthonormal rows give at a chunk_size whose chunks never start at row
    n, when a chunk's rows use their position within it: rows of the first chunk are right
    (a); a later row's target taken within the chunk is an orthogonal row, and a mask taken
    within the chunk removes an orthogonal row and leaves the row itself, tied with its
    partner."""
    s, m = 1 / tau, 2 * n
    right = -s + math.log(math.exp(s) + m - 2)
    later = m - min(chunk, m)
    return [((chunk * right + later * math.log(math.exp(s) + m - 2)) / m, TARGET_OFFSET),
            ((chunk * right + later * (-s + math.log(2 * math.exp(s) + m - 3))) / m,
             MASK_OFFSET)]


def _finite_value(fn, z1, z2, tau, chunk):
    out = _raw(fn, z1, z2, tau, chunk)
    if laws.non_finite(out):
        return None
    return scalar(out).item()


@checks.add(
    "gives the same value at every chunk size",
    diagnosis=CHUNK_DEPENDENT,
    hint=HINTS[CHUNK_DEPENDENT],
)
def same_at_every_chunk(fn):
    z1, z2, tau, rows = _mixed_batch()
    expected = sum(rows) / len(rows)
    values = {c: _finite_value(fn, z1, z2, tau, c) for c in (10, *_EVEN, *_RAGGED, 64)}
    wrong = {c: v for c, v in values.items() if v is None or not _close(v, expected, 1e-7, 1e-9)}
    if not wrong:
        return f"{expected:.6f} at chunk sizes {', '.join(map(str, values))}"
    shown = ", ".join(f"{c}: {'not finite' if v is None else f'{v:.6f}'}" for c, v in
                      values.items())
    measured, want = shown, f"{expected:.6f} at every chunk size"
    if 10 in wrong:  # one chunk is wrong too: the other checks say why
        raise Fail(f"the value is wrong even in one chunk ({shown})", measured=measured,
                   expected=want, conclusive=False)
    if set(wrong) <= set(_RAGGED):
        mistake = next((which_mistake(wrong[c], _ragged_signatures(rows, c), rel=1e-7,
                                      abs_=1e-9) for c in _RAGGED if wrong.get(c) is not None),
                       None) or MEAN_OF_MEANS
    else:
        e = torch.eye(5, 8, dtype=torch.float64)
        perfect = _finite_value(fn, e, e.clone(), 0.05, 3)
        mistake = CHUNK_DEPENDENT if perfect is None else which_mistake(
            perfect, _offset_signatures(5, 0.05, 3), rel=1e-6) or CHUNK_DEPENDENT
    raise Fail(f"the loss of one batch changed with chunk_size ({shown})", diagnosis=mistake,
               hint=HINTS[mistake], measured=measured, expected=want)


laws.invariant_to_swapping(
    checks, "is symmetric in (z1, z2)", seeds=(902, 903), loss=_loss, conclusive=False,
    diagnosis="only one direction is counted: NT-Xent averages over all 2N anchors",
    hint="every embedding in the stacked batch is an anchor once",
    message="swapping the views changed the loss")
laws.gradients_reach(
    checks, "gradients reach both views", diagnosis=GRAPH_CUT,
    hint="the loss must stay connected to both inputs: return what your autograd Function "
    "gives, and let its backward return a gradient for the embeddings", loss=_loss,
    leaves=lambda: {"z1": _randn(5, 8, seed=904).requires_grad_(True),
                    "z2": _randn(5, 8, seed=905).requires_grad_(True)},
    mistake=lambda fn, missing, leaves: (M.detached(missing), None))


def _gradient(fn, z1, z2, tau, chunk, scale=1.0):
    a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    loss = _loss(fn, a, b, tau, chunk)
    if not loss.requires_grad:
        raise Fail("the loss does not require grad", conclusive=False)
    (scale * loss).backward()
    if a.grad is None or b.grad is None:
        raise Fail("no gradient reached the inputs", conclusive=False)
    return loss, torch.cat([a.grad, b.grad])


def _unnormalised_inputs():
    z1 = _randn(3, 3, seed=906, dtype=torch.float64) * torch.tensor([[0.5], [2.0], [1.5]],
                                                                     dtype=torch.float64)
    z2 = _randn(3, 3, seed=907, dtype=torch.float64) * 3.0
    return z1, z2


@checks.add(
    "the gradient is the derivative of the loss (finite differences, float64)",
    diagnosis=BACKWARD_WRONG,
    hint="differentiate one row's loss with respect to its similarities, then the similarities "
    "with respect to both rows they compare, then the normalisation",
)
def matches_finite_differences(fn):
    z1, z2 = _unnormalised_inputs()
    tau, chunk = 0.3, 2
    loss, grad = _gradient(fn, z1, z2, tau, chunk)
    if loss.dtype != torch.float64:
        raise Fail(f"float64 inputs gave a {loss.dtype} loss", diagnosis=FLOAT32,
                   conclusive=False)
    z = torch.cat([z1, z2])
    numeric = torch.zeros_like(z)
    eps = 1e-6
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            up, down = z.clone(), z.clone()
            up[i, j] += eps
            down[i, j] -= eps
            numeric[i, j] = (_loss(fn, up[:3], up[3:], tau, chunk).item()
                             - _loss(fn, down[:3], down[3:], tau, chunk).item()) / (2 * eps)
    if torch.allclose(grad, numeric, rtol=1e-5, atol=1e-8):
        return "analytic and numerical gradients agree"
    # The gradient with respect to the unit rows, taken back through the normalisation.
    unit = z / z.norm(dim=1, keepdim=True)
    projected = (grad - (grad * unit).sum(1, keepdim=True) * unit) / z.norm(dim=1, keepdim=True)
    mistake = NO_NORMALISATION_JACOBIAN if torch.allclose(projected, numeric, rtol=1e-5,
                                                          atol=1e-8) else BACKWARD_WRONG
    worst = (grad - numeric).abs().max().item()
    raise Fail(f"the gradient differs from finite differences of the loss by up to {worst:.3g}",
               diagnosis=mistake, hint=None if mistake == BACKWARD_WRONG else
               "the loss starts from the raw rows: take the gradient back through their "
               "normalisation too", measured=f"max difference {worst:.3g}",
               expected="below 1e-8")


@checks.add(
    "the gradient scales with the incoming gradient",
    diagnosis=GRAD_OUTPUT_IGNORED,
    hint="the backward pass receives the gradient of whatever came after the loss: multiply by "
    "it",
)
def scales_with_grad_output(fn):
    z1, z2 = _unnormalised_inputs()
    _, once = _gradient(fn, z1, z2, 0.3, 2)
    _, thrice = _gradient(fn, z1, z2, 0.3, 2, scale=3.0)
    if torch.allclose(thrice, 3 * once, rtol=1e-6, atol=1e-10):
        return "3 x loss gets 3 x the gradient"
    ratio = (thrice.norm() / once.norm().clamp_min(1e-300)).item()
    raise Fail(f"backward of 3 x the loss gave {ratio:.3g} x the gradient",
               measured=f"{ratio:.3g} x", expected="3 x",
               conclusive=abs(ratio - 1.0) < 1e-6)


laws.finite_at_extreme(
    checks, "stays finite at temperature 0.01", seeds=(908, 909), where="tau = 0.01",
    diagnosis="exp(similarity / tau) overflows float32 at small tau (exp(100) > 3.4e38)",
    hint="take the log-sum-exp of each chunk's rows (torch.logsumexp) instead of summing "
    "exponentials", call=lambda fn, z1, z2: call(fn, z1, z2, temperature=0.01, chunk_size=3))


def _collapsed_float64_wrong(value, expected):
    return fail_naming(f"a collapsed float64 batch gave {value:.6f}, not log(9)",
                       which_mistake(value, M.collapsed_signatures(5, 0.5)), hints=HINTS,
                       measured=f"{value:.15f}", expected=f"{expected:.15f}")


laws.keeps_float64(checks, loss=lambda fn, z1, z2: _loss(fn, z1, z2, 0.5, 3),
                   expected=math.log(9), wrong_value=_collapsed_float64_wrong)
laws.single_pair(
    checks, loss=lambda fn, a, b: _loss(fn, a, b, 0.5, 1), seeds=(910, 911),
    hint="with a single pair the partner is the only candidate left, so the loss is exactly 0",
    wrong_value=lambda value, a, b: fail_naming(
        f"N = 1 ran but gave {value:.5f}; it should give exactly 0",
        which_mistake(value, M.single_pair_signatures(a, b, 0.5)), hints=HINTS,
        measured=f"{value:.5f}", expected="0"))

# The memory checks: 2N = 2048 rows of D = 8 in chunks of 32, so one 2N x 2N float32 matrix is
# 16 MiB and one chunk of rows 256 KiB.
_N, _D, _CHUNK = 1024, 8, 32
_MATRIX = (2 * _N) ** 2 * 4


def _measure(fn):
    """(bytes saved for backward, peak bytes created in forward plus backward, largest tensor)."""
    z1 = _randn(_N, _D, seed=912).requires_grad_(True)
    z2 = _randn(_N, _D, seed=913).requires_grad_(True)
    out, saved = _memory.saved_bytes(lambda: _loss(fn, z1, z2, 0.5, _CHUNK))
    del out
    footprint = _memory.Footprint()
    with footprint:
        loss = _loss(fn, z1, z2, 0.5, _CHUNK)
        if loss.requires_grad:
            loss.backward()
        del loss
    return saved, footprint.peak, footprint.largest


def _mib(nbytes):
    return f"{nbytes / 2 ** 20:.2f} MiB"


def _memory_mistake(saved, peak, largest):
    if largest >= _MATRIX / 2:
        return FULL_MATRIX
    if saved > _MATRIX / 8:
        return SAVED_CHUNKS
    return None


@checks.add(
    "keeps only O(N x D) for the backward pass (measured in bytes)",
    diagnosis=SAVED_CHUNKS,
    hint="save the normalised rows and one number per row for the backward pass, and "
    "recompute each chunk's similarities there (a custom torch.autograd.Function)",
)
def saves_little(fn):
    saved, peak, largest = _measure(fn)
    if saved <= _MATRIX / 8:
        return (f"{_mib(saved)} saved for backward at 2N = {2 * _N}, chunk {_CHUNK} "
                f"(the 2N x 2N matrix: {_mib(_MATRIX)})")
    mistake = _memory_mistake(saved, peak, largest)
    raise Fail(f"{_mib(saved)} is kept for the backward pass at 2N = {2 * _N}, chunk_size = "
               f"{_CHUNK}: the 2N x 2N matrix is {_mib(_MATRIX)}", diagnosis=mistake,
               hint=None if mistake == SAVED_CHUNKS else HINTS.get(mistake),
               measured=_mib(saved), expected=f"at most {_mib(_MATRIX / 8)}")


@checks.add(
    "peak memory of forward plus backward stays O(N x chunk_size) (measured in bytes)",
    diagnosis=FULL_MATRIX,
    hint="compute chunk_size rows of similarities at a time, in the forward pass and again in "
    "the backward pass, and let each chunk go before the next",
)
def peak_is_bounded(fn):
    saved, peak, largest = _measure(fn)
    if peak <= _MATRIX / 4 and largest < _MATRIX / 2:
        return (f"peak {_mib(peak)} at 2N = {2 * _N}, chunk {_CHUNK} (the 2N x 2N matrix: "
                f"{_mib(_MATRIX)})")
    mistake = _memory_mistake(saved, peak, largest)
    raise Fail(f"the forward and backward passes reached {_mib(peak)} (largest tensor "
               f"{_mib(largest)}) at 2N = {2 * _N}, chunk_size = {_CHUNK}", diagnosis=mistake,
               hint=None if mistake in (FULL_MATRIX, None) else "recompute each chunk in the "
               "backward pass instead of keeping it", measured=_mib(peak),
               expected=f"at most {_mib(_MATRIX / 4)}", conclusive=mistake is not None)


@checks.add(
    "matches known answers: nt_xent_loss's values and gradients",
    diagnosis="the loss differs from nt_xent_loss on fixed inputs",
    hint="if the other checks pass, compare the temperature handling and the reduction",
)
def known_answers(fn):
    for case in load_cases("chunked_nt_xent"):
        z1, z2 = (torch.tensor(case[k], dtype=torch.float64, requires_grad=True)
                  for k in ("z1", "z2"))
        where = (f"N={len(case['z1'])}, tau={case['temperature']}, "
                 f"chunk_size={case['chunk_size']}")
        loss = _loss(fn, z1, z2, case["temperature"], case["chunk_size"])
        laws.check_stored(loss, case["loss"], where)
        if not loss.requires_grad:
            raise Fail(f"{where}: the loss does not require grad", conclusive=False)
        loss.backward()
        for name, t in (("z1", z1), ("z2", z2)):
            want = torch.tensor(case[f"grad_{name}"], dtype=torch.float64)
            if t.grad is None or not torch.allclose(t.grad, want, rtol=1e-6, atol=1e-9):
                raise Fail(f"{where}: the value is right but the gradient with respect to "
                           f"{name} is not nt_xent_loss's", conclusive=False)
    return "all stored cases match"
