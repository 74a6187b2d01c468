"""Closed-form values and mistake signatures for the `clip_loss` checks of drill 03: the loss of
perfectly matched pairs and of the duplicated-caption batch, the losses that targets off the
diagonal give, the wrong values that known mistakes produce, and the diagnoses that name them."""

from __future__ import annotations

import math

from ...inputs import close as _close


def _perfect(s, n):
    """Loss of n perfectly matched, mutually orthogonal pairs at multiplier s (both directions)."""
    return -s + math.log(math.exp(s) + n - 1)


ONE_DIRECTION = (
    "only the image-to-text direction is counted: the text-to-image cross-entropy is missing, "
    "or it was computed on the same, untransposed logits (which just repeats the image-to-text "
    "term); CLIP averages the loss over the rows and over the columns of the N x N matrix"
)
NO_NEGATIVES = (
    "the loss is negative, so there is no softmax over the other captions: only the positive "
    "pairs' similarity is rewarded (no negatives), which a constant embedding can satisfy"
)
NT_XENT_MATRIX = (
    "the NT-Xent 2N x 2N matrix was used: images are compared with images and texts with texts; "
    "CLIP's negatives are only the other modality's items (an N x N image-text matrix)"
)
OVERFLOW = (
    "exp(logits) overflows float32 at scale 100 (e^100 > 3.4e38): the softmax was written by "
    "hand with exp()"
)
OVERFLOW_HINT = "use log-softmax or F.cross_entropy, which subtract the row maximum first"
ONE_SIDED = (
    "the two directions are not weighted equally: one of the two cross-entropies (over the "
    "rows, image-to-text, or over the columns, text-to-image) is missing or counted twice; "
    "CLIP averages the loss over the rows and over the columns of the N x N matrix"
)
NOT_DIAGONAL = (
    "the targets are not the diagonal: image i's positive is caption i (and caption i's is "
    "image i), so the target of row i is i"
)
MASKED_DIAGONAL = (
    "the diagonal is masked as in NT-Xent, but in CLIP the diagonal holds the positives "
    "(image i with its own caption i), so the target logit became -inf"
)
# A loss that is not finite where nothing can overflow (unit vectors, a multiplier of at most 20).
INF_LOGITS = "a -inf (or a division by zero) got into the logits: " + MASKED_DIAGONAL
INF_HINT = "do not mask anything: every caption is a candidate and caption i is the target"
AS_TEMPERATURE = (
    "the scale is used as a temperature: the similarities are divided by logit_scale instead "
    "of multiplied (logit_scale is already 1/tau)"
)
SCALE_IGNORED = (
    "the logit_scale argument is ignored (a fixed temperature is used instead), so the "
    "temperature can never be learned"
)
SCALE_AS_NUMBER = (
    "logit_scale is used as a plain number (.item(), float(), or detached), so the temperature "
    "can never be learned"
)


def _detached(names):
    """The mistake of inputs (other than logit_scale alone) that no gradient reaches."""
    return (f"{' and '.join(names)} is detached: CLIP trains both towers (and the temperature) "
            "through the loss")


def _wrong_targets(values, n):
    """Whether every loss in `values` ({scale: loss} on n orthonormal perfect pairs) is what
    targets off the diagonal give.

    A row whose target is not its own index scores a 0 logit as the target against one s and
    n - 1 zeros: log(e^s + n - 1); a row whose target is right scores _perfect(s, n), which is s
    less. With k of the 2n rows and columns on target the mean is log(e^s + n - 1) - k s / (2n),
    for the same k at every scale (k = 2n is the correct loss, so it is not a mistake).
    """
    for k in range(2 * n):
        if all(_close(v, math.log(math.exp(s) + n - 1) - k * s / (2 * n), rel=1e-5, abs_=1e-7)
               for s, v in values.items()):
            return True
    return False


def _duplicate_caption_case(s):
    """Three images e1, e2, e3 and captions e1, e1, e3: caption 1 duplicates caption 0.

    Similarity matrix [[1, 1, 0], [0, 0, 0], [0, 0, 1]] times s; the two directions differ.
    """
    rows = [-s + math.log(2 * math.exp(s) + 1), math.log(3), -s + math.log(math.exp(s) + 2)]
    cols = [-s + math.log(math.exp(s) + 2), math.log(math.exp(s) + 2),
            -s + math.log(math.exp(s) + 2)]
    return sum(rows) / 3, sum(cols) / 3


def _collapsed_signatures(n):
    """Losses a collapsed batch of n pairs gives under known mistakes, with each mistake."""
    return [
        (2 * math.log(n), "the two directions are added instead of averaged"),
        (n * math.log(n), "the per-pair losses are summed instead of averaged"),
        (2 * n * math.log(n), "the per-pair losses are summed, and the two directions added"),
        (math.log(2 * n - 1), NT_XENT_MATRIX),
        (math.log(2 * n), NT_XENT_MATRIX + " (and nothing is masked)"),
        (math.log(n) / 2, "one direction is averaged with zero (a missing term divided by 2)"),
    ]


def _scale_signatures(n):
    """Losses n orthonormal perfect pairs give at logit_scale = 3 under known mistakes."""
    return [
        (_perfect(1 / 3.0, n), AS_TEMPERATURE),
        (_perfect(math.exp(3.0), n), "logit_scale is exponentiated inside the loss: the "
         "loss receives the multiplier itself (LogitScale() already applied exp)"),
        (_perfect(math.log(3.0), n), "the log of logit_scale is used: the loss receives the "
         "multiplier itself, use it as given"),
        (_perfect(9.0, n), "the scale is applied twice (squared)"),
        (_perfect(1.0, n), "the scale is ignored: the logits are the raw cosine similarities"),
    ]


def _perfect_pair_signatures(s, n):
    """Losses n orthonormal perfect pairs give at logit_scale = s under known mistakes."""
    return [
        (_perfect(1 / s, n), AS_TEMPERATURE),
        (math.log(n), "the logits do not depend on the similarities (the scale or the "
         "similarity matrix is lost)"),
        (_perfect(1.0, n), SCALE_IGNORED),  # the raw cosine similarities, as the probe says
    ]


def _two_direction_signatures(i2t, t2i):
    """Losses the duplicated-caption case gives under known mistakes, from its two directions."""
    return [
        (i2t, ONE_DIRECTION),
        (t2i, "only the text-to-image direction is counted: the image-to-text cross-entropy "
         "(over the rows of the matrix) is missing"),
        (i2t + t2i, "the two directions are added instead of averaged"),
    ]
