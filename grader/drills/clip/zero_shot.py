"""Checks for `zero_shot_classify(image_emb, class_text_emb)` (drill 03): one int64 index per image,
the class prompt of highest cosine similarity; checked against dot-product, distance and wrong-axis
mistakes, for invariance to embedding lengths, batching and class order, on unusual inputs, and on
the known answers in grader/data/clip_zero_shot.json."""

from __future__ import annotations

import torch

from ...checks import checklist
from ...data import load_cases
from ...inputs import gen as _gen
from ...inputs import randn as _randn
from ...kit import laws
from ...kit.lookup import which_mistake
from ...sandbox import Fail, call

zs_checks = checklist(
    "zero_shot_classify",
    drill="03_clip",
    smoke=lambda fn: fn(torch.eye(2, 4), torch.eye(3, 4)),
)


def _unit(x):
    return x / x.norm(dim=-1, keepdim=True)


def _predict(fn, image, classes):
    """Call the learner's classifier; insist on an int64 index per image."""
    n, c = image.shape[0], classes.shape[0]
    out = call(fn, image, classes)
    if out is None:
        raise Fail("the result is None",
                   diagnosis="the function does not return anything (a missing `return`)")
    if not isinstance(out, torch.Tensor):
        raise Fail(f"the result is a {type(out).__name__}, not a torch.Tensor",
                   diagnosis="the predictions left torch (a list, numpy array or Python int)",
                   hint="return the tensor of indices that argmax gives")
    shape = tuple(out.shape)
    if shape == (n, c):
        raise Fail(f"the result has shape {shape}, one row of scores per image",
                   diagnosis="the similarity matrix (or the probabilities) is returned, not "
                   "the index of the best class",
                   hint="reduce each image's row of scores to the index of its largest entry",
                   measured=shape, expected=f"({n},)")
    if shape == (c,):
        raise Fail(f"the result has shape {shape}: one entry per class",
                   diagnosis="the argmax is taken over the images (dim=0) instead of over the "
                   "classes: that finds the best image for each class",
                   hint="the result has one entry per image: reduce over the class dimension",
                   measured=shape, expected=f"({n},)")
    if shape != (n,):
        raise Fail(f"the result has shape {shape}",
                   diagnosis="a .squeeze() or a reshape removed the batch dimension" if
                   out.numel() == n else "the result has the wrong shape",
                   hint="return exactly one class index per image: N indices, no other "
                   "dimension",
                   measured=shape, expected=f"({n},)")
    if out.is_floating_point():
        cos = _unit(image.detach()) @ _unit(classes.detach()).T
        best = cos.max(dim=1).values.to(out.dtype)
        values_returned = torch.allclose(out.detach(), best, atol=1e-5)
        raise Fail(
            f"the result has dtype {out.dtype}",
            diagnosis="the maximum similarities are returned instead of their positions "
            "(max(dim=...) gives values and indices)" if values_returned else
            "the indices were converted to floating point",
            hint="return the indices (an int64 LongTensor), which argmax gives directly",
            measured=out.dtype, expected="torch.int64")
    if out.dtype != torch.int64:
        raise Fail(f"the result has dtype {out.dtype}",
                   diagnosis="the indices were converted to another integer type (.int() gives "
                   "int32; a LongTensor is int64)",
                   hint="return argmax's result unchanged: it is already int64",
                   measured=out.dtype, expected="torch.int64")
    if ((out < 0) | (out >= c)).any():
        raise Fail(f"an index is outside 0..{c - 1}: {out.tolist()}",
                   diagnosis="the indices do not count classes from 0",
                   measured=out.tolist(), expected=f"values in 0..{c - 1}")
    return out


@zs_checks.add(
    "returns one int64 class index per image",
    diagnosis="the output is not an int64 tensor of shape (N,)",
    hint="one index per image: the position of the most similar class prompt",
)
def zs_shape_dtype(fn):
    out = _predict(fn, _randn(5, 8, seed=20), _randn(3, 8, seed=21))
    return f"shape {tuple(out.shape)}, {out.dtype}"


laws.leaves_inputs_unchanged(
    zs_checks, run=_predict, hint="normalise into new tensors rather than in place",
    inputs=lambda: [(4.0 * _randn(4, 6, seed=22), _randn(3, 6, seed=23) + 1.0)])


def _norms_case():
    """Images at small angles to one of 4 class directions; the class embeddings have very
    different lengths, so the dot-product and the Euclidean winners differ from the cosine one."""
    d, c = 6, 4
    directions = _unit(_randn(c, d, seed=27, dtype=torch.float64))
    lengths = torch.tensor([20.0, 0.05, 1.0, 3.0], dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 1, 2, 3, 1, 2, 0, 3, 1])
    noise = 0.15 * _randn(len(labels), d, seed=25, dtype=torch.float64)
    image_lengths = torch.tensor([1.0, 0.02, 5.0, 0.3, 8.0, 0.01, 2.0, 0.5, 1.0, 3.0, 0.04,
                                  12.0], dtype=torch.float64)
    images = image_lengths.unsqueeze(1) * _unit(directions[labels] + noise)
    return images, directions * lengths.unsqueeze(1), labels


def _norms_signature(out, images, classes):
    """The length-dependent mistake (dot product, Euclidean distance, ...) whose predictions on
    `images` and `classes` are `out`, or None."""
    dot = images @ classes.T
    cos = _unit(images) @ _unit(classes).T
    col_norm = images @ (classes / classes.norm(dim=0, keepdim=True)).T
    return which_mistake(out, [
        (dot.argmax(1), "the dot product of unnormalised embeddings is used: a class prompt "
         "with a long embedding wins for most images, whatever their direction"),
        (torch.cdist(images, classes).argmin(1), "the nearest class by Euclidean distance on "
         "unnormalised embeddings is used: the distance mixes length and direction"),
        (cos.argmin(1), "argmin picks the least similar class: the most similar one is wanted"),
        (col_norm.argmax(1), "the class embeddings are normalised along the wrong axis: each "
         "row (one class prompt, dim=-1) must have unit length"),
    ], rel=0, abs_=0)


def _same_predictions(base, moved, message, mistake=lambda: None):
    """Raise when a change that must leave the predictions as they were did not; `mistake()`
    names the mistake behind it, where the check can tell."""
    if not torch.equal(base, moved):
        raise Fail(message, diagnosis=mistake(), measured=moved.tolist(),
                   expected=base.tolist())


@zs_checks.add(
    "picks the class with the highest cosine similarity",
    diagnosis="the predictions are not the most similar class by cosine similarity",
    hint="normalise both sides to unit length, then take the most similar class for each image",
)
def zs_cosine_argmax(fn):
    images, classes, labels = _norms_case()
    out = _predict(fn, images, classes)
    if torch.equal(out, labels):
        return f"{len(labels)} of {len(labels)} images, class prompts of lengths 0.05 to 20"
    wrong = int((out != labels).sum())
    raise Fail(f"{wrong} of {len(labels)} images got the wrong class (the class prompts have "
               "lengths from 0.05 to 20)", diagnosis=_norms_signature(out, images, classes),
               measured=out.tolist(), expected=labels.tolist())


@zs_checks.add(
    "ignores the length of every embedding",
    diagnosis="the prediction depends on embedding lengths: the embeddings are not "
    "L2-normalised before comparing them",
    hint="zero-shot compares directions: normalise images and class prompts to unit length",
)
def zs_length_invariant(fn):
    images, classes = _randn(10, 8, seed=26), _randn(5, 8, seed=27)
    base = _predict(fn, images, classes)
    image_lengths = torch.rand(10, 1, generator=_gen(28)) * 10 + 0.1
    class_lengths = torch.rand(5, 1, generator=_gen(29)) * 10 + 0.1
    moved = _predict(fn, image_lengths * images, class_lengths * classes)
    _same_predictions(base, moved, "rescaling the embeddings (directions unchanged) changed the "
                      "predictions", mistake=lambda: _norms_mistake(fn))


def _norms_mistake(fn):
    """Which length-dependent mistake (dot product, Euclidean distance, ...) the predictions on
    the cosine check's inputs are the signature of, or None."""
    images, classes, _ = _norms_case()
    try:
        out = _predict(fn, images, classes)
    except Fail:
        return None
    return _norms_signature(out, images, classes)


@zs_checks.add(
    "classifies each image on its own, whatever else is in the batch",
    diagnosis="the prediction for one image depends on the other images in the batch: a softmax "
    "or a normalisation runs over the images (dim=0) instead of over the classes or features",
    hint="each image's scores are one row: normalise each embedding on its own, reduce per row",
)
def zs_batch_independent(fn):
    images, classes = _randn(8, 6, seed=39), _randn(5, 6, seed=40)
    together = _predict(fn, images, classes)
    alone = torch.cat([_predict(fn, images[i:i + 1], classes) for i in range(2)]
                      + [_predict(fn, images[2:5], classes), _predict(fn, images[5:], classes)])
    _same_predictions(together, alone,
                      "classifying the images in smaller batches changed their predictions")


@zs_checks.add(
    "follows the classes when they are reordered",
    diagnosis="the predicted index does not follow the order of the class prompts",
    hint="the index returned is the row of class_text_emb that matches best",
)
def zs_class_order(fn):
    images, classes = _randn(9, 8, seed=30), _randn(6, 8, seed=31)
    perm = torch.randperm(6, generator=_gen(32))
    base = _predict(fn, images, classes)
    moved = _predict(fn, images, classes[perm])
    _same_predictions(base, perm[moved],
                      "permuting the class prompts did not permute the predictions accordingly")


@zs_checks.add(
    "works on one image, on float64, and on embeddings that require grad",
    diagnosis="valid inputs of an unusual kind break the function",
    hint="stay in torch: no conversion to numpy, no squeeze that drops a batch of one, no "
    "fixed dtype",
)
def zs_edge_inputs(fn):
    out = _predict(fn, _randn(1, 8, seed=33), _randn(4, 8, seed=34))
    if out.shape != (1,):
        raise Fail("one image gave the wrong shape")
    _predict(fn, _randn(3, 8, seed=35, dtype=torch.float64),
             _randn(4, 8, seed=36, dtype=torch.float64))
    images = _randn(3, 8, seed=37).requires_grad_(True)
    classes = _randn(4, 8, seed=38).requires_grad_(True)
    try:
        _predict(fn, images, classes)
    except Fail as f:
        if "numpy" in f.message.lower() and "requires grad" in f.message.lower():
            raise Fail(f.message,
                       diagnosis="the embeddings are converted with .numpy() while they still "
                       "require grad (an encoder's output usually does)",
                       hint="stay in torch operations (or detach the embeddings before leaving "
                       "torch)"
                       ) from None
        raise
    return "one image, float64 and grad-tracking inputs all work"


@zs_checks.add(
    "matches known answers",
    diagnosis="the predictions differ from the reference on fixed inputs",
    hint="if the other checks pass, check which dimension the argmax runs over",
)
def zs_known_answers(fn):
    for case in load_cases("clip_zero_shot"):
        images = torch.tensor(case["image_emb"], dtype=torch.float64)
        classes = torch.tensor(case["class_text_emb"], dtype=torch.float64)
        out = _predict(fn, images, classes)
        if out.tolist() != case["labels"]:
            # Which mistake gives these predictions is for the checks above to say.
            raise Fail(f"{len(images)} images, {len(classes)} classes: wrong predictions",
                       measured=out.tolist(), expected=case["labels"], conclusive=False)
    return "all stored cases match"
