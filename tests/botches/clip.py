"""Classic mistakes in CLIP's loss, its learned temperature and zero-shot classification."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.botches import Botch

# -- clip_loss ------------------------------------------------------------------------------------


def _unit(x):
    return F.normalize(x, dim=-1)


def _targets(logits):
    return torch.arange(logits.shape[0], device=logits.device)


def image_to_text_only(image_emb, text_emb, logit_scale):
    logits = logit_scale * _unit(image_emb) @ _unit(text_emb).T
    return F.cross_entropy(logits, _targets(logits))


def text_to_image_only(image_emb, text_emb, logit_scale):
    logits = logit_scale * _unit(image_emb) @ _unit(text_emb).T
    return F.cross_entropy(logits.T, _targets(logits))


def untransposed_second_direction(image_emb, text_emb, logit_scale):
    logits = logit_scale * _unit(image_emb) @ _unit(text_emb).T
    t = _targets(logits)
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits, t)) / 2


def directions_added(image_emb, text_emb, logit_scale):
    logits = logit_scale * _unit(image_emb) @ _unit(text_emb).T
    t = _targets(logits)
    return F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)


def no_normalization(image_emb, text_emb, logit_scale):
    logits = logit_scale * image_emb @ text_emb.T
    t = _targets(logits)
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def text_tower_not_normalized(image_emb, text_emb, logit_scale):
    logits = logit_scale * _unit(image_emb) @ text_emb.T
    t = _targets(logits)
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def normalized_over_batch(image_emb, text_emb, logit_scale):
    logits = logit_scale * F.normalize(image_emb, dim=0) @ F.normalize(text_emb, dim=0).T
    t = _targets(logits)
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def scale_as_temperature(image_emb, text_emb, logit_scale):
    logits = _unit(image_emb) @ _unit(text_emb).T / logit_scale
    t = _targets(logits)
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def scale_exponentiated_again(image_emb, text_emb, logit_scale):
    logits = logit_scale.exp() * _unit(image_emb) @ _unit(text_emb).T
    t = _targets(logits)
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def fixed_temperature(image_emb, text_emb, logit_scale):
    logits = _unit(image_emb) @ _unit(text_emb).T / 0.07
    t = _targets(logits)
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def scale_as_number(image_emb, text_emb, logit_scale):
    logits = logit_scale.item() * _unit(image_emb) @ _unit(text_emb).T
    t = _targets(logits)
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def targets_all_zero(image_emb, text_emb, logit_scale):
    logits = logit_scale * _unit(image_emb) @ _unit(text_emb).T
    t = torch.zeros(logits.shape[0], dtype=torch.long)
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def targets_reversed(image_emb, text_emb, logit_scale):
    logits = logit_scale * _unit(image_emb) @ _unit(text_emb).T
    t = _targets(logits).flip(0)
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def nt_xent_matrix(image_emb, text_emb, logit_scale):
    z = _unit(torch.cat([image_emb, text_emb]))
    n = image_emb.shape[0]
    logits = (logit_scale * z @ z.T).masked_fill(torch.eye(2 * n, dtype=torch.bool), -math.inf)
    t = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(logits, t)


def diagonal_masked(image_emb, text_emb, logit_scale):
    logits = logit_scale * _unit(image_emb) @ _unit(text_emb).T
    logits = logits.masked_fill(torch.eye(logits.shape[0], dtype=torch.bool), -math.inf)
    t = _targets(logits)
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def positives_only(image_emb, text_emb, logit_scale):
    return -(logit_scale * (_unit(image_emb) * _unit(text_emb)).sum(-1)).mean()


def softmax_by_hand(image_emb, text_emb, logit_scale):
    logits = logit_scale * _unit(image_emb) @ _unit(text_emb).T
    e = logits.exp()
    i2t = -(e.diagonal() / e.sum(1)).log().mean()
    t2i = -(e.diagonal() / e.sum(0)).log().mean()
    return (i2t + t2i) / 2


def summed_over_pairs(image_emb, text_emb, logit_scale):
    logits = logit_scale * _unit(image_emb) @ _unit(text_emb).T
    t = _targets(logits)
    ce = F.cross_entropy
    return (ce(logits, t, reduction="sum") + ce(logits.T, t, reduction="sum")) / 2


def normalized_in_place(image_emb, text_emb, logit_scale):
    image_emb /= image_emb.norm(dim=-1, keepdim=True)
    text_emb /= text_emb.norm(dim=-1, keepdim=True)
    logits = logit_scale * image_emb @ text_emb.T
    t = _targets(logits)
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def cast_to_float32(image_emb, text_emb, logit_scale):
    logits = logit_scale.float() * _unit(image_emb.float()) @ _unit(text_emb.float()).T
    t = _targets(logits)
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def squeezed(image_emb, text_emb, logit_scale):
    logits = (logit_scale * _unit(image_emb) @ _unit(text_emb).T).squeeze()
    t = _targets(logits)
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def text_tower_detached(image_emb, text_emb, logit_scale):
    logits = logit_scale * _unit(image_emb) @ _unit(text_emb.detach()).T
    t = _targets(logits)
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


LOSS = [
    Botch("one direction only (image to text)", "clip_loss", image_to_text_only,
          "only the image-to-text direction"),
    Botch("one direction only (text to image)", "clip_loss", text_to_image_only,
          "only the text-to-image direction"),
    Botch("text-to-image on the untransposed matrix", "clip_loss",
          untransposed_second_direction, "untransposed"),
    Botch("directions added, not averaged", "clip_loss", directions_added,
          "added instead of averaged"),
    Botch("no L2 normalisation", "clip_loss", no_normalization, "not l2-normalised"),
    Botch("only the image tower normalised", "clip_loss", text_tower_not_normalized,
          "only one tower is normalised: the text"),
    Botch("normalised over the batch axis", "clip_loss", normalized_over_batch,
          "wrong axis"),
    Botch("scale used as a temperature (divided)", "clip_loss", scale_as_temperature,
          "divided by logit_scale"),
    Botch("scale exponentiated inside the loss", "clip_loss", scale_exponentiated_again,
          "exponentiated inside the loss"),
    Botch("fixed temperature, logit_scale ignored", "clip_loss", fixed_temperature,
          "argument is ignored"),
    Botch("logit_scale read with .item()", "clip_loss", scale_as_number,
          "temperature can never be learned"),
    Botch("targets all zero", "clip_loss", targets_all_zero, "targets are not the diagonal"),
    Botch("targets reversed", "clip_loss", targets_reversed, "targets are not the diagonal"),
    Botch("NT-Xent's 2N x 2N matrix", "clip_loss", nt_xent_matrix, "2n x 2n matrix"),
    Botch("diagonal masked as in NT-Xent", "clip_loss", diagonal_masked,
          "diagonal holds the positives"),
    Botch("positives only, no negatives", "clip_loss", positives_only, "no negatives"),
    Botch("softmax by hand with exp()", "clip_loss", softmax_by_hand, "overflows float32"),
    Botch("summed over pairs, not averaged", "clip_loss", summed_over_pairs,
          "summed instead of averaged"),
    Botch("normalised in place", "clip_loss", normalized_in_place, "in-place"),
    Botch("cast to float32", "clip_loss", cast_to_float32, "drops to float32"),
    Botch("squeezed logits", "clip_loss", squeezed, "single pair"),
    Botch("text tower detached", "clip_loss", text_tower_detached, "text_emb is detached"),
]

# -- LogitScale -----------------------------------------------------------------------------------


class _Base(nn.Module):
    def __init__(self, temperature=0.07, max_scale=100.0):
        super().__init__()
        self.max_scale = max_scale
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)))


class NotClamped(_Base):
    def forward(self):
        return self.log_scale.exp()


class ExponentiatedTwice(_Base):
    def forward(self):
        return self.log_scale.exp().exp().clamp(max=self.max_scale)


class ClampedThroughItem(_Base):
    def forward(self):
        return torch.tensor(min(self.log_scale.exp().item(), self.max_scale))


class ClampDetached(_Base):
    def forward(self):
        return self.log_scale.exp().clamp(max=self.max_scale).detach()


class ClampIsAMinimum(_Base):
    def forward(self):
        return self.log_scale.exp().clamp(min=self.max_scale)


class LogClampedAtHundred(_Base):
    def forward(self):
        return self.log_scale.clamp(max=self.max_scale).exp()


class ScaleStoredDirectly(nn.Module):
    def __init__(self, temperature=0.07, max_scale=100.0):
        super().__init__()
        self.max_scale = max_scale
        self.scale = nn.Parameter(torch.tensor(1 / temperature))

    def forward(self):
        return self.scale.clamp(max=self.max_scale)


class TemperatureStored(nn.Module):
    def __init__(self, temperature=0.07, max_scale=100.0):
        super().__init__()
        self.max_scale = max_scale
        self.temperature = nn.Parameter(torch.tensor(temperature))

    def forward(self):
        return (1 / self.temperature).clamp(max=self.max_scale)


class ReturnsTemperature(_Base):
    def forward(self):
        return (-self.log_scale).exp()


class ReturnsLog(_Base):
    def forward(self):
        return self.log_scale.clamp(max=math.log(self.max_scale))


class InitialisedToScaleThenExp(nn.Module):
    def __init__(self, temperature=0.07, max_scale=100.0):
        super().__init__()
        self.max_scale = max_scale
        self.log_scale = nn.Parameter(torch.tensor(1 / temperature))

    def forward(self):
        return self.log_scale.exp().clamp(max=self.max_scale)


class InitialisedToTemperatureThenExp(nn.Module):
    def __init__(self, temperature=0.07, max_scale=100.0):
        super().__init__()
        self.max_scale = max_scale
        self.log_scale = nn.Parameter(torch.tensor(temperature))

    def forward(self):
        return self.log_scale.exp().clamp(max=self.max_scale)


class PlainTensor(nn.Module):
    def __init__(self, temperature=0.07, max_scale=100.0):
        super().__init__()
        self.max_scale = max_scale
        self.log_scale = torch.tensor(math.log(1 / temperature), requires_grad=True)

    def forward(self):
        return self.log_scale.exp().clamp(max=self.max_scale)


class RegisteredAsBuffer(nn.Module):
    def __init__(self, temperature=0.07, max_scale=100.0):
        super().__init__()
        self.max_scale = max_scale
        self.register_buffer("log_scale", torch.tensor(math.log(1 / temperature)))

    def forward(self):
        return self.log_scale.exp().clamp(max=self.max_scale)


class LogOfTemperature(nn.Module):
    def __init__(self, temperature=0.07, max_scale=100.0):
        super().__init__()
        self.max_scale = max_scale
        self.log_tau = nn.Parameter(torch.tensor(math.log(temperature)))

    def forward(self):
        return (-self.log_tau).exp().clamp(max=self.max_scale)


class TemperatureIgnored(nn.Module):
    def __init__(self, temperature=0.07, max_scale=100.0):
        super().__init__()
        self.max_scale = max_scale
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self):
        return self.log_scale.exp().clamp(max=self.max_scale)


class ReturnsPythonFloat(_Base):
    def forward(self):
        return min(math.exp(self.log_scale.item()), self.max_scale)


class CapAsFloat32Tensor(_Base):
    def forward(self):
        return torch.minimum(self.log_scale.exp(), torch.tensor(self.max_scale)).float()


class NotAModule:
    def __init__(self, temperature=0.07, max_scale=100.0):
        self.log_scale = torch.tensor(math.log(1 / temperature), requires_grad=True)

    def __call__(self):
        return self.log_scale.exp().clamp(max=100.0)


SCALE = [
    Botch("no clamp", "LogitScale", NotClamped, "not clamped"),
    Botch("exponentiated twice", "LogitScale", ExponentiatedTwice, "exponentiated twice"),
    Botch("clamp through .item() kills the gradient", "LogitScale", ClampedThroughItem,
          "kills the gradient"),
    Botch("clamped output detached", "LogitScale", ClampDetached, "kills the gradient"),
    Botch("clamp sets a minimum", "LogitScale", ClampIsAMinimum, "minimum of 100"),
    Botch("log clamped at 100, not log 100", "LogitScale", LogClampedAtHundred,
          "instead of at log(100)"),
    Botch("the scale itself is the parameter", "LogitScale", ScaleStoredDirectly,
          "stores the scale itself"),
    Botch("the temperature is the parameter", "LogitScale", TemperatureStored,
          "stores the temperature"),
    Botch("returns tau instead of 1/tau", "LogitScale", ReturnsTemperature,
          "returns the temperature"),
    Botch("returns the log-scale", "LogitScale", ReturnsLog, "returns the log-scale itself"),
    Botch("initialised to 1/0.07, then exponentiated", "LogitScale", InitialisedToScaleThenExp,
          "initialised to 1/0.07 and then exponentiated"),
    Botch("initialised to 0.07, then exponentiated", "LogitScale",
          InitialisedToTemperatureThenExp, "initialised to the temperature 0.07"),
    Botch("plain tensor, not a Parameter", "LogitScale", PlainTensor, "not an nn.parameter"),
    Botch("registered as a buffer", "LogitScale", RegisteredAsBuffer, "registered as a buffer"),
    Botch("stores log(tau) and negates", "LogitScale", LogOfTemperature, "stores log(tau)"),
    Botch("temperature argument ignored", "LogitScale", TemperatureIgnored, "ignores its argument"),
    Botch("returns a Python float", "LogitScale", ReturnsPythonFloat, "left torch"),
    Botch("forced to float32", "LogitScale", CapAsFloat32Tensor, ".double()/.to() do not move"),
    Botch("not an nn.Module", "LogitScale", NotAModule, "does not subclass nn.module"),
]

# -- zero_shot_classify ---------------------------------------------------------------------------


def dot_product(image_emb, class_text_emb):
    return (image_emb @ class_text_emb.T).argmax(dim=1)


def euclidean_unnormalized(image_emb, class_text_emb):
    return torch.cdist(image_emb, class_text_emb).argmin(dim=1)


def least_similar(image_emb, class_text_emb):
    return (_unit(image_emb) @ _unit(class_text_emb).T).argmin(dim=1)


def best_image_per_class(image_emb, class_text_emb):
    return (_unit(image_emb) @ _unit(class_text_emb).T).argmax(dim=0)


def returns_similarities(image_emb, class_text_emb):
    return _unit(image_emb) @ _unit(class_text_emb).T


def returns_max_values(image_emb, class_text_emb):
    return (_unit(image_emb) @ _unit(class_text_emb).T).max(dim=1)[0]


def classes_normalized_over_wrong_axis(image_emb, class_text_emb):
    return (_unit(image_emb) @ F.normalize(class_text_emb, dim=0).T).argmax(dim=1)


def squeezed_output(image_emb, class_text_emb):
    return (_unit(image_emb) @ _unit(class_text_emb).T).argmax(dim=1).squeeze()


def through_numpy(image_emb, class_text_emb):
    sims = (_unit(image_emb) @ _unit(class_text_emb).T).numpy()
    return torch.from_numpy(sims.argmax(axis=1))


def int32_output(image_emb, class_text_emb):
    return (_unit(image_emb) @ _unit(class_text_emb).T).argmax(dim=1).int()


def classes_normalized_in_place(image_emb, class_text_emb):
    class_text_emb /= class_text_emb.norm(dim=-1, keepdim=True)
    return (image_emb @ class_text_emb.T).argmax(dim=1)


def softmax_over_images(image_emb, class_text_emb):
    sims = 100.0 * _unit(image_emb) @ _unit(class_text_emb).T
    return sims.softmax(dim=0).argmax(dim=1)


ZERO_SHOT = [
    Botch("dot product on unnormalised embeddings", "zero_shot_classify", dot_product,
          "dot product of unnormalised"),
    Botch("Euclidean distance on unnormalised embeddings", "zero_shot_classify",
          euclidean_unnormalized, "euclidean distance"),
    Botch("argmin instead of argmax", "zero_shot_classify", least_similar,
          "least similar class"),
    Botch("argmax over the images", "zero_shot_classify", best_image_per_class,
          "over the images"),
    Botch("returns the similarity matrix", "zero_shot_classify", returns_similarities,
          "similarity matrix"),
    Botch("returns the max values, not indices", "zero_shot_classify", returns_max_values,
          "maximum similarities are returned"),
    Botch("classes normalised over the wrong axis", "zero_shot_classify",
          classes_normalized_over_wrong_axis, "wrong axis"),
    Botch("squeezed output", "zero_shot_classify", squeezed_output, "squeeze"),
    Botch(".numpy() on a tensor that requires grad", "zero_shot_classify", through_numpy,
          ".numpy() while they still require grad"),
    Botch("int32 indices", "zero_shot_classify", int32_output, "int32"),
    Botch("normalised in place", "zero_shot_classify", classes_normalized_in_place, "in-place"),
    Botch("softmax over the images before the argmax", "zero_shot_classify",
          softmax_over_images, "depends on the other images"),
]

# -- ensemble_prompts (stretch) ------------------------------------------------------------------


def ensemble_not_prenormalised(prompt_emb):
    return F.normalize(prompt_emb.mean(dim=1), dim=-1)


def ensemble_not_renormalised(prompt_emb):
    return F.normalize(prompt_emb, dim=-1).mean(dim=1)


def ensemble_nothing_normalised(prompt_emb):
    return prompt_emb.mean(dim=1)


def ensemble_mean_over_classes(prompt_emb):
    return F.normalize(F.normalize(prompt_emb, dim=-1).mean(dim=0), dim=-1)


def ensemble_normalised_over_templates(prompt_emb):
    return F.normalize(F.normalize(prompt_emb, dim=1).mean(dim=1), dim=-1)


def ensemble_first_template(prompt_emb):
    return F.normalize(prompt_emb[:, 0], dim=-1)


def ensemble_detached(prompt_emb):
    return F.normalize(F.normalize(prompt_emb.detach(), dim=-1).mean(dim=1), dim=-1)


def ensemble_under_no_grad(prompt_emb):
    with torch.no_grad():
        return F.normalize(F.normalize(prompt_emb, dim=-1).mean(dim=1), dim=-1)


def ensemble_normalised_in_place(prompt_emb):
    prompt_emb /= prompt_emb.norm(dim=-1, keepdim=True)
    return F.normalize(prompt_emb.mean(dim=1), dim=-1)


ENSEMBLE = [
    Botch("templates not normalised before averaging", "ensemble_prompts",
          ensemble_not_prenormalised, "not normalised before averaging"),
    Botch("mean not normalised again", "ensemble_prompts", ensemble_not_renormalised,
          "not normalised again"),
    Botch("nothing normalised", "ensemble_prompts", ensemble_nothing_normalised,
          "nothing is normalised"),
    Botch("averaged over the classes", "ensemble_prompts", ensemble_mean_over_classes,
          "mean runs over the wrong axis"),
    Botch("normalised over the templates axis", "ensemble_prompts",
          ensemble_normalised_over_templates, "normalised along the wrong axis"),
    Botch("first template only", "ensemble_prompts", ensemble_first_template,
          "only one template"),
    Botch(".detach() inside", "ensemble_prompts", ensemble_detached, "carry gradients back"),
    Botch("under torch.no_grad", "ensemble_prompts", ensemble_under_no_grad,
          "carry gradients back"),
    Botch("normalised in place", "ensemble_prompts", ensemble_normalised_in_place, "in-place"),
]

# -- recall_at_k (stretch) -----------------------------------------------------------------------


def _others_at_or_above(similarity):
    match = similarity.diagonal()
    return (similarity >= match[:, None]).sum(dim=1) - 1


def recall_ties_for_the_query(similarity, k=1):
    match = similarity.diagonal()
    above = (similarity > match[:, None]).sum(dim=1)
    return (above < k).float().mean().item()


def recall_at_most_k(similarity, k=1):
    return (_others_at_or_above(similarity) <= k).float().mean().item()


def recall_match_counted(similarity, k=1):
    match = similarity.diagonal()
    return ((similarity >= match[:, None]).sum(dim=1) < k).float().mean().item()


def recall_k_ignored(similarity, k=1):
    return (_others_at_or_above(similarity) < 1).float().mean().item()


def recall_returns_tensor(similarity, k=1):
    return (_others_at_or_above(similarity) < k).float().mean()


def recall_rows_and_columns_swapped(similarity, k=1):
    by_column = similarity.T
    match = by_column.diagonal()
    others = (by_column >= match[:, None]).sum(dim=1) - 1
    return (others < k).float().mean().item()


def recall_over_candidates(similarity, k=1):
    return (_others_at_or_above(similarity) < k).float().sum().item() / similarity.shape[1]


def recall_count(similarity, k=1):
    return (_others_at_or_above(similarity) < k).float().sum().item()


RECALL = [
    Botch("ties counted for the query", "recall_at_k", recall_ties_for_the_query,
          "ties with the match is not counted"),
    Botch("at most k, not fewer than k", "recall_at_k", recall_at_most_k,
          "exactly k other candidates"),
    Botch("the match counted among the others", "recall_at_k", recall_match_counted,
          "match itself is counted"),
    Botch("k ignored", "recall_at_k", recall_k_ignored, "k is ignored"),
    Botch("returns a tensor", "recall_at_k", recall_returns_tensor, "a tensor is returned"),
    Botch("rows and columns swapped", "recall_at_k", recall_rows_and_columns_swapped,
          "rows and columns are swapped"),
    Botch("divided by the candidates", "recall_at_k", recall_over_candidates,
          "number of candidates"),
    Botch("a count, not a fraction", "recall_at_k", recall_count, "not the fraction"),
]

CATALOGUE = LOSS + SCALE + ZERO_SHOT + ENSEMBLE + RECALL

# The learner's path (tests/test_notebooks.py): pasted into the stub's clip_loss cell.
LEARNER_PATH = {
    "solution": "03_clip",
    "name": "one direction only",
    "graded_name": "clip_loss",
    "cell": 0,
    "expect": "only the image-to-text direction",
    "source": '''
def clip_loss(image_emb, text_emb, logit_scale):
    image_emb = F.normalize(image_emb, dim=1)
    text_emb = F.normalize(text_emb, dim=1)
    logits = logit_scale * image_emb @ text_emb.T
    return F.cross_entropy(logits, torch.arange(len(logits)))
''',
}
