"""The classic `nt_xent_loss` mistakes, each named in one set of words, and their signatures.

Several checks can recognise the same mistake (an unmasked diagonal shows on a collapsed batch,
on perfect pairs, in float64 and at N = 1). Each uses the constant below, so that one mistake
gives one diagnosis in the report, however many rows it turns red. Mistakes other drills name
too (float32, a cut graph, an input changed in place) are in grader/kit/mistakes.py.
"""

from __future__ import annotations

import math

import torch

DIAGONAL_NOT_MASKED = (
    "the diagonal is not masked: each view also competes with itself, so a collapsed batch "
    "gives log(2N) instead of log(2N-1) and identical views about log 2 instead of 0"
)
DIAGONAL_ZERO = (
    "the diagonal was set to 0 instead of -inf: exp(0) = 1 still counts the view itself as a "
    "candidate"
)
CROSS_VIEW_ONLY = (
    "only the N x N cross-view similarities are used: the other same-view embeddings are "
    "missing from the negatives"
)
SUMMED = "the per-anchor losses are summed instead of averaged"
DIRECTIONS_ADDED = (
    "the two directions are added (or the sum divided by N) instead of averaging over all 2N "
    "anchors"
)
ONE_VIEW_SUMMED = "the loss is summed over one view's anchors instead of averaged"
WRONG_PARTNER = (
    "the target is not the partner view: pairs are (z1[i], z2[i]), so in the stacked [z1; z2] "
    "batch row i's positive is row i+N and row i+N's is row i"
)
TEMPERATURE_MULTIPLIED = "the similarities are multiplied by the temperature instead of divided"
TEMPERATURE_IGNORED = "the temperature argument is ignored"


_AVERAGE = ("average over all 2N anchors: one mean over the 2N rows, which is F.cross_entropy's "
            "default reduction")
_DIVIDE = "similarities are divided by tau: a small tau makes large logits"
# What to do about each mistake a signature can name, for a row whose own check is about
# something else (the float64 row that finds an unmasked diagonal, say).
HINTS = {
    DIAGONAL_NOT_MASKED: "exclude each row's similarity with itself before the softmax (set it "
    "to minus infinity)",
    DIAGONAL_ZERO: "fill the diagonal with minus infinity, not 0: only an infinitely negative "
    "logit gets no weight in the softmax, so only it removes the view",
    CROSS_VIEW_ONLY: "stack both views into one batch of 2N rows and use the whole 2N x 2N "
    "similarity matrix, masking only its diagonal",
    SUMMED: _AVERAGE,
    DIRECTIONS_ADDED: _AVERAGE,
    ONE_VIEW_SUMMED: _AVERAGE,
    WRONG_PARTNER: "build the targets from the stacking order: the first N rows point to the "
    "last N and vice versa",
    TEMPERATURE_MULTIPLIED: _DIVIDE,
    TEMPERATURE_IGNORED: _DIVIDE,
}


def detached(views) -> str:
    """The mistake when no gradient reaches the named views (`["z2"]`, say)."""
    return (f"{' and '.join(views)} is detached (a stop-gradient on one view): SimCLR "
            "backpropagates through both views")


def collapsed_signatures(n, tau) -> dict[float, str]:
    """Values a collapsed batch (every embedding equal) gives under classic mistakes."""
    m = 2 * n
    return {
        math.log(m): DIAGONAL_NOT_MASKED,
        -1 / tau + math.log(1 + (m - 1) * math.exp(1 / tau)): DIAGONAL_ZERO,
        math.log(n): CROSS_VIEW_ONLY,
        m * math.log(m - 1): SUMMED,
        2 * math.log(m - 1): DIRECTIONS_ADDED,
        n * math.log(m - 1): ONE_VIEW_SUMMED,
    }


def perfect_pairs_signatures(n, tau) -> dict[float, str]:
    """Values z1 = z2 = N orthonormal rows give under classic mistakes (the correct loss is
    -1/tau + log(exp(1/tau) + 2N - 2): the partner scores 1/tau, the 2N - 2 others 0)."""
    s, others = 1 / tau, 2 * n - 2
    return {
        math.log(math.exp(s) + others): WRONG_PARTNER,  # the target is an orthogonal view
        -s + math.log(2 * math.exp(s) + others): DIAGONAL_NOT_MASKED,  # itself ties: log 2
        -tau + math.log(math.exp(tau) + others): TEMPERATURE_MULTIPLIED,
        -1 + math.log(math.e + others): TEMPERATURE_IGNORED,
    }


def single_pair_signatures(z1, z2, tau) -> dict[float, str]:
    """Values one pair (N = 1, correct loss 0) gives when the view itself stays a candidate."""
    c = torch.nn.functional.cosine_similarity(z1.double(), z2.double()).item()
    return {
        -c / tau + math.log(math.exp(1 / tau) + math.exp(c / tau)): DIAGONAL_NOT_MASKED,
        -c / tau + math.log(1 + math.exp(c / tau)): DIAGONAL_ZERO,
    }

