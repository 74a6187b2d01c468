"""What siglip_loss gives, correct and with each classic mistake, on towers whose cosine
similarities are known: `d` on the diagonal and `o` everywhere off it (perfect pairs d = 1, o = 0;
opposite pairs d = -1, o = 0), N pairs, scale t and bias b. Each formula is the classic mistake
written as a closed form, so that a measured value can name the mistake that produces it."""

from __future__ import annotations

import math

DRILL = "08_siglip"

MEAN_OVER_PAIRS = ("the loss is averaged over all N x N pairs instead of summed over them and "
                   "divided by N (a mean reduction, for example binary cross-entropy's default)")
SUMMED = "the pair losses are summed over the N x N matrix but not divided by N"
LABELS_01 = ("the labels are 0 and 1 inside -log sigmoid(label * logit): a 0 label makes every "
             "negative pair cost log 2 whatever its logit, so negatives teach nothing")
SIGN_FLIPPED = ("the sign inside the sigmoid is flipped: the loss rewards negatives that look "
                "alike and positives that do not (log sigmoid of -label * logit)")
TEMPERATURE = ("logit_scale divides the similarities (used as a temperature) instead of "
               "multiplying them")
SCALE_EXPONENTIATED = ("logit_scale is exponentiated again: it is already the multiplier t = "
                       "exp(t'), not its log")
BIAS_MISSING = "logit_bias is not added to the logits"
BIAS_SUBTRACTED = "logit_bias is subtracted from the logits instead of added"
BIAS_SCALED = ("logit_bias is multiplied by logit_scale: the logits are t * (x.y + b) instead "
               "of t * x.y + b")
BIAS_OUTSIDE_LABELS = ("the bias is added after multiplying by the labels (label * t * x.y + b): "
                       "the bias belongs to the logit, before the label flips its sign")
BOTH_DIRECTIONS = ("the image-to-text and text-to-image losses are added: with a sigmoid each "
                   "pair is one binary problem, counted once (no second direction as in CLIP)")
SOFTMAX = ("the loss is a softmax cross-entropy over the batch (CLIP's), not a sigmoid on each "
           "pair")
NOT_DIAGONAL = ("the +1 labels are not on the diagonal: row i of image_emb and row i of "
                "text_emb are the positive pair")
OVERFLOW = ("log(sigmoid(x)) (or log(1 + exp(x))) is computed naively: the sigmoid rounds to 0 "
            "in float32 below about -104 and the exponential overflows above 88")
OVERFLOW_HINT = ("use a log-sigmoid that is stable for large logits of either sign: torch has "
                 "one, and so does a softplus")
NOT_NORMALISED = ("the embeddings are not L2-normalised, so the logits use dot products, not "
                  "cosine similarities")
SCALE_AS_NUMBER = ("logit_scale is used as a Python number (.item(), float()) or detached: the "
                   "learned scale gets no gradient")
BIAS_AS_NUMBER = ("logit_bias is used as a Python number (.item(), float()) or detached: the "
                  "learned bias gets no gradient")

HINTS = {
    MEAN_OVER_PAIRS: "sum the pair losses over the whole matrix, then divide by the number of "
    "pairs in the batch, N, not by the number of entries",
    SUMMED: "after summing over the N x N matrix, divide by N",
    LABELS_01: "each pair's loss is minus the log-sigmoid of its label times its logit, with "
    "labels plus one and minus one; targets of zero and one only work in the two-term binary "
    "cross-entropy form",
    SIGN_FLIPPED: "a positive pair with a large logit must cost almost nothing: check the sign "
    "inside the log-sigmoid",
    TEMPERATURE: "logit_scale is the multiplier t: multiply the cosine similarities by it",
    SCALE_EXPONENTIATED: "use logit_scale as given: the caller has already exponentiated it",
    BIAS_MISSING: "every logit is t times the cosine similarity plus the bias",
    BIAS_SUBTRACTED: "the bias is added to every logit, with its own sign",
    BIAS_SCALED: "the scale multiplies the similarities only; the bias is added afterwards",
    BIAS_OUTSIDE_LABELS: "form the logits first, scale and bias included, then multiply by the "
    "labels",
    BOTH_DIRECTIONS: "one term per pair of the N x N matrix: no averaging or adding of two "
    "directions",
    SOFTMAX: "no normalisation over the batch: each entry of the matrix goes through its own "
    "sigmoid against its own label",
    NOT_DIAGONAL: "check by hand which entries are the positives: row i with column i",
}


def softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def correct(d, o, n, t, b):
    """-log sigmoid(+logit) on the N diagonal pairs, -log sigmoid(-logit) on the N^2 - N others,
    the sum divided by N."""
    return softplus(-(t * d + b)) + (n - 1) * softplus(t * o + b)


def _clip(d, o, n, t, b):
    ld, lo = t * d + b, t * o + b  # the bias cancels in a softmax
    return -ld + math.log(math.exp(ld) + (n - 1) * math.exp(lo))


def signatures(d, o, n, t, b) -> list[tuple[float, str]]:
    """(value, mistake) for each classic mistake on these towers, most specific first."""
    right = correct(d, o, n, t, b)
    return [
        (right / n, MEAN_OVER_PAIRS),
        (right * n, SUMMED),
        (2 * right, BOTH_DIRECTIONS),
        (softplus(-(t * d + b)) + (n - 1) * math.log(2), LABELS_01),
        (softplus(t * d + b) + (n - 1) * softplus(-(t * o + b)), SIGN_FLIPPED),
        (correct(d, o, n, 1 / t, b) if t else math.inf, TEMPERATURE),
        (correct(d, o, n, math.exp(t), b), SCALE_EXPONENTIATED),
        (correct(d, o, n, t, 0.0), BIAS_MISSING),
        (correct(d, o, n, t, -b), BIAS_SUBTRACTED),
        (correct(d, o, n, t, t * b), BIAS_SCALED),
        (softplus(-(t * d + b)) + (n - 1) * softplus(t * o - b), BIAS_OUTSIDE_LABELS),
        (_clip(d, o, n, t, b), SOFTMAX),
    ]


# The probes a wrong closed-form value is diagnosed on: (d, o, N, t, b). Every mistake above must
# give, on at least one of them, a value that neither the correct loss nor another mistake gives.
PROBES = [(1.0, 0.0, 4, 3.0, -2.0), (-1.0, 0.0, 4, 3.0, -2.0), (1.0, 0.0, 3, 0.5, 1.5)]
