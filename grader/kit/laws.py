"""Property laws that the drills' losses obey, each written once as a check factory.

A factory registers one check on a Checklist and returns it. The drill says how to call the
learner's function (`loss(fn, a, b) -> 0-d tensor`, usually through sandbox.call and
sandbox.scalar, its own arguments such as the temperature bound inside) and, where its checks
can tell more than the law, a hook that names the mistake; the law says what must hold, on
which inputs, and in which words a failure is reported. A failure that does not pin its cause
is raised non-conclusive, so that it follows from the headline instead of naming a second
mistake. `a` and `b` are the two sides of a batch of pairs (two views, two towers).
"""

from __future__ import annotations

import torch

from ..inputs import close, gen, randn
from ..sandbox import Fail, scalar
from . import mistakes as K


def non_finite(out) -> bool:
    """Whether `out` is a 0-d tensor that is inf or NaN (before sandbox.scalar rejects it)."""
    return isinstance(out, torch.Tensor) and out.dim() == 0 and not torch.isfinite(out)


def returns_scalar(checks, *, loss, hint, seeds=(0, 1), show_dtypes=False):
    """A random float32 batch of 4 pairs gives a float32 0-d tensor (sandbox.scalar, called by
    `loss`, says what is wrong with any other result). `show_dtypes` puts the dtypes in the
    row's "yours / expected" line."""

    @checks.add("returns a scalar tensor", diagnosis=K.NOT_A_NUMBER, hint=hint)
    def returns_scalar_check(fn):
        out = loss(fn, randn(4, 8, seed=seeds[0]), randn(4, 8, seed=seeds[1]))
        if out.dtype != torch.float32:
            detail = {"measured": out.dtype, "expected": "torch.float32"} if show_dtypes else {}
            raise Fail(f"float32 inputs gave a {out.dtype} loss", diagnosis=K.DTYPE_CHANGED,
                       **detail)
        return f"loss = {out.item():.4f} on a random batch of N=4"

    return returns_scalar_check


def leaves_inputs_unchanged(checks, *, run, inputs, hint, diagnosis=K.INPUTS_CHANGED):
    """`run(fn, *args)` for each argument tuple of `inputs()`: sandbox.call compares every
    tensor argument before and after, so an input changed in place fails here, in its words."""

    @checks.add("leaves its inputs unchanged", diagnosis=diagnosis, hint=hint)
    def leaves_inputs_unchanged_check(fn):
        for args in inputs():
            run(fn, *args)

    return leaves_inputs_unchanged_check


def invariant(checks, title, *, diagnosis, hint, loss, inputs, change, message, mistake=None,
              conclusive=True, says=None):
    """`loss(fn, *inputs())` equals `loss(fn, *change(*inputs()))`. `mistake(fn)` names the
    mistake behind a change where the drill can tell (None: the row's own diagnosis);
    `conclusive=False` where the symptom alone cannot pin it; `says` formats the value of a
    pass ("{:.5f} both ways"), or the check says nothing."""

    @checks.add(title, diagnosis=diagnosis, hint=hint)
    def invariant_check(fn):
        args = inputs()
        a, b = loss(fn, *args).item(), loss(fn, *change(*args)).item()
        if not close(a, b):
            raise Fail(message, measured=f"{a:.5f} vs {b:.5f}", expected="equal",
                       diagnosis=mistake(fn) if mistake else None, conclusive=conclusive)
        return says.format(a) if says else None

    return invariant_check


def invariant_to_swapping(checks, title, *, seeds, **law):
    """Swapping the two sides of a random batch of 6 pairs leaves the loss as it is."""
    return invariant(checks, title, inputs=lambda: (randn(6, 8, seed=seeds[0]),
                                                    randn(6, 8, seed=seeds[1])),
                     change=lambda a, b: (b, a), says="{:.5f} both ways", **law)


def invariant_to_reordering(checks, *, seeds, diagnosis, **law):
    """Permuting the pairs of a random batch of 7 leaves the loss as it is (`seeds`: the two
    sides and the permutation)."""

    def reorder(a, b):
        perm = torch.randperm(len(a), generator=gen(seeds[2]))
        return a[perm], b[perm]

    return invariant(checks, "is invariant to reordering the pairs", diagnosis=diagnosis,
                     hint="derive the targets from the batch size, not from fixed positions",
                     inputs=lambda: (randn(7, 8, seed=seeds[0]), randn(7, 8, seed=seeds[1])),
                     change=reorder, message="permuting the pairs changed the loss", **law)


def invariant_to_rescaling(checks, *, diagnosis, hint, loss, uniform, other_rows=1.0,
                           axis_diagnosis, axis_hint, seeds=(4, 5)):
    """Cosine similarity ignores lengths: on a random batch of 6 pairs, `uniform(fn, a, b,
    base)` (the drill's) raises when rescaling whole sides changes the loss; then each row of
    `a` is rescaled by its own factor (and `b`'s rows by the reversed factors times
    `other_rows`), which only a normalisation along the wrong axis notices."""

    @checks.add("is invariant to rescaling each embedding (cosine similarity)",
                diagnosis=diagnosis, hint=hint)
    def invariant_to_rescaling_check(fn):
        a, b = randn(6, 8, seed=seeds[0]), randn(6, 8, seed=seeds[1])
        base = loss(fn, a, b).item()
        uniform(fn, a, b, base)
        rows = torch.linspace(0.2, 5.0, 6).unsqueeze(1)
        per_row = loss(fn, rows * a, other_rows * rows.flip(0) * b).item()
        if not close(per_row, base):
            raise Fail("rescaling individual rows changed the loss (a uniform rescale did not)",
                       diagnosis=axis_diagnosis, hint=axis_hint, measured=f"{per_row:.5f}",
                       expected=f"{base:.5f} (unchanged)")
        return f"{base:.5f} before and after rescaling"

    return invariant_to_rescaling_check


def gradients_reach(checks, title, *, diagnosis, hint, loss, leaves, mistake, says=None):
    """`leaves()` gives the inputs by name, each a leaf that requires grad; after backward()
    each must hold a finite, non-zero gradient. `mistake(fn, missing, leaves)` gives the
    (diagnosis, hint) for the names in `missing` that got none."""

    @checks.add(title, diagnosis=diagnosis, hint=hint)
    def gradients_reach_check(fn):
        named = leaves()
        value = loss(fn, *named.values())
        if not value.requires_grad:
            raise Fail("the returned loss does not require grad")
        value.backward()
        missing = [name for name, t in named.items() if t.grad is None
                   or not torch.isfinite(t.grad).all() or t.grad.abs().max() == 0]
        if missing:
            why, fix = mistake(fn, missing, named)
            raise Fail(f"no useful gradient reached {' and '.join(missing)}", diagnosis=why,
                       hint=fix)
        return says

    return gradients_reach_check


def finite_at_extreme(checks, title, *, diagnosis, hint, call, where, seeds, not_finite=None):
    """At an extreme setting (temperature 0.01, scale 100), bound into `call(fn, a, b)`, a batch
    of 8 nearly matched pairs gives a finite loss and a finite gradient with respect to b.
    `not_finite(fn, a, b, message)` may raise a more telling Fail for a loss that is not finite;
    `where` names the setting in messages."""

    @checks.add(title, diagnosis=diagnosis, hint=hint)
    def finite_at_extreme_check(fn):
        a = randn(8, 16, seed=seeds[0])
        b = (a + 0.01 * randn(8, 16, seed=seeds[1])).requires_grad_(True)
        out = call(fn, a, b)
        if non_finite(out):
            message = f"the loss is {out.item()} at {where}"
            if not_finite is not None:
                not_finite(fn, a, b, message)
            raise Fail(message, measured=out.item(), expected="a finite number")
        value = scalar(out)
        if value.requires_grad:
            value.backward()
            if b.grad is not None and not torch.isfinite(b.grad).all():
                raise Fail(f"the gradient has NaN or inf at {where}")
        return f"loss = {round(value.item(), 4) + 0.0:.4f}"  # a loss of -0.0 reads 0.0000

    return finite_at_extreme_check


def keeps_float64(checks, *, loss, expected: float, wrong_value, n=5):
    """A collapsed float64 batch of n pairs, whose rows differ by 1e-9 (too little for float32
    to see), gives a float64 loss equal to `expected` to float64 rounding. A value off by no
    more than float32 rounding is the float32 mistake; one off by more is wrong for another
    reason: `wrong_value(value, expected)` returns that Fail."""

    @checks.add("float64 in, float64 out, to float64 precision", diagnosis=K.FLOAT32,
                hint=K.FLOAT32_HINT)
    def keeps_float64_check(fn):
        z = torch.ones(n, 3, dtype=torch.float64)
        z[:, 1] = 1e-9 * torch.arange(n, dtype=torch.float64)
        out = loss(fn, z, z.clone())
        if out.dtype != torch.float64:
            raise Fail(f"float64 inputs gave a {out.dtype} loss", measured=out.dtype,
                       expected="torch.float64")
        value = out.item()
        error = abs(value - expected)
        if error > 1e-12 and error <= 1e-5:
            raise Fail("a collapsed float64 batch is off by more than float64 rounding",
                       measured=f"{value:.15f}", expected=f"{expected:.15f}")
        if error > 1e-12:
            raise wrong_value(value, expected)

    return keeps_float64_check


def single_pair(checks, *, loss, seeds, hint, wrong_value):
    """A batch of one random pair must run and give 0: the partner is the only candidate. A
    crash is this check's own mistake; `wrong_value(value, a, b)` returns the Fail for a value
    that is not 0 (non-conclusive unless a signature names the mistake)."""

    @checks.add("works for a batch of one pair (N = 1)", diagnosis=K.SINGLE_PAIR_BREAKS,
                hint=hint, crash_means_mistake=True)
    def single_pair_check(fn):
        a, b = randn(1, 8, seed=seeds[0]), randn(1, 8, seed=seeds[1])
        value = loss(fn, a, b).item()
        if abs(value) > 1e-5:
            raise wrong_value(value, a, b)

    return single_pair_check


def off_stored(value: float, stored: float) -> bool:
    """Whether a loss misses a stored float64 answer by more than float64 rounding allows."""
    return abs(value - stored) > 1e-8 * max(1.0, abs(stored))


def check_stored(loss, stored: float, where: str) -> None:
    """Raise when the loss of a stored float64 case misses its answer. A float32 loss is that
    mistake (FLOAT32); any other wrong value only says that something is wrong, which the
    closed-form checks before the known answers pin down (conclusive=False)."""
    if off_stored(loss.item(), stored):
        low = loss.dtype == torch.float32
        raise Fail(f"{where}: the loss is {loss.item():.8f}, the stored answer {stored:.8f}"
                   + (" (and float64 inputs gave a float32 loss)" if low else ""),
                   measured=f"{loss.item():.8f}", expected=f"{stored:.8f}",
                   diagnosis=K.FLOAT32 if low else None, conclusive=low)


def known_answers(checks, *, cases, build, loss, check_value, where, missing_mistake, hint,
                  diagnosis=K.KNOWN_ANSWERS_DIFFER):
    """Stored inputs and outputs (grader/data): the value and each gradient must match.

    `build(case)` returns (args, leaves): the arguments for `loss(fn, *args)` and, by name, the
    float64 leaf tensors among them whose gradients the case stores as `grad_<name>`.
    `check_value(case, value)` raises when the value is off (see off_stored); `where(case)`
    names the case; `missing_mistake(fn, missing, args, case)` names the mistake of a right
    value whose gradient does not reach the inputs in `missing`.
    """

    @checks.add("matches known answers (values and gradients)", diagnosis=diagnosis, hint=hint)
    def known_answers_check(fn):
        for case in cases():
            args, leaves = build(case)
            value = loss(fn, *args)
            check_value(case, value)
            if not value.requires_grad:
                raise Fail("the loss does not require grad", diagnosis=K.GRAPH_CUT)
            value.backward()
            wants = {name: torch.tensor(case[f"grad_{name}"], dtype=torch.float64)
                     for name in leaves}
            missing = [name for name, t in leaves.items()
                       if (t.grad is None or not t.grad.any()) and wants[name].any()]
            if missing:
                raise Fail(f"{where(case)}: the value is right but no gradient reaches "
                           f"{' and '.join(missing)}",
                           diagnosis=missing_mistake(fn, missing, args, case))
            for name, t in leaves.items():
                if t.grad is None or not torch.allclose(t.grad, wants[name], rtol=1e-6,
                                                        atol=1e-9):
                    raise Fail(f"{where(case)}: the value is right but the gradient with "
                               f"respect to {name} is not", diagnosis=K.GRADIENT_DIFFERS)
        return "all stored cases match"

    return known_answers_check
