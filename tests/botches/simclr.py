"""Classic mistakes in drill 02 (SimCLR): augment, SimCLRModel, train_simclr, linear_probe.

The training-loop botches call `augment` and `nt_xent_loss` by name, as a learner's notebook
does; both come from the solution notebook's graded cells, so each botch differs from the
reference in exactly one mistake.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.botches import Botch
from tests.nbtools import SOLUTIONS, load_graded

_REF = load_graded(SOLUTIONS / "02_simclr.ipynb")
augment = _REF["augment"]
nt_xent_loss = _REF["nt_xent_loss"]
random_crop, add_noise = _REF["random_crop"], _REF["add_noise"]
jitter_contrast, drop_pixels = _REF["jitter_contrast"], _REF["drop_pixels"]
SimCLRModel = _REF["SimCLRModel"]
linear_probe = _REF["linear_probe"]


# -- augment -------------------------------------------------------------------------------------


def augment_identity(x, generator=None):
    return x.clone()


def augment_reseeded(x, generator=None):
    return augment(x, torch.Generator().manual_seed(0))


def augment_ignores_generator(x, generator=None):
    return augment(x, None)


def augment_shared_transform(x, generator=None):
    # one set of random numbers for the whole batch, broadcast over it
    one = augment(x[:1], generator)
    return (x - x[:1]) + one


def augment_mixes_batch(x, generator=None):
    # "mixup" with the next image of the batch
    return augment(0.5 * x + 0.5 * x.roll(1, dims=0), generator)


def augment_batch_statistics(x, generator=None):
    return augment(x - x.mean(dim=0, keepdim=True), generator)


def augment_destroys(x, generator=None):
    return drop_pixels(add_noise(augment(x, generator), generator, std=1.0), generator, p=0.5)


def augment_hard_coded_size(x, generator=None):
    n = x.shape[0]
    return augment(x.reshape(n, 1, 8, 8), generator).reshape(n, 1, 8, 8)


def augment_casts_to_float32(x, generator=None):
    return augment(x.float(), generator)


def augment_in_place(x, generator=None):
    x.mul_(0.9)
    return augment(x, generator)


def augment_shuffles_batch(x, generator=None):
    perm = torch.randperm(len(x), generator=generator)
    return augment(x[perm], generator)


# -- SimCLRModel ---------------------------------------------------------------------------------


class _Base(nn.Module):
    def __init__(self, in_dim=64, hidden_dim=512, h_dim=256, z_dim=64):
        super().__init__()
        self.backbone = nn.Sequential(nn.Flatten(), nn.Linear(in_dim, hidden_dim), nn.ReLU(),
                                      nn.Linear(hidden_dim, h_dim), nn.ReLU())
        self.projector = nn.Sequential(nn.Linear(h_dim, h_dim), nn.ReLU(), nn.Linear(h_dim, z_dim))

    def representation(self, x):
        return self.backbone(x)

    def forward(self, x):
        return self.projector(self.backbone(x))


class LinearHead(_Base):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.projector = nn.Sequential(nn.Linear(256, 256), nn.Linear(256, 64))


class HeadEndsWithReLU(_Base):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.projector = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 64),
                                       nn.ReLU())


class ForwardSkipsHead(_Base):
    def forward(self, x):
        return self.backbone(x)


class RepresentationAppliesHead(_Base):
    def representation(self, x):
        return self.projector(self.backbone(x))


class ForwardDetachesH(_Base):
    def forward(self, x):
        return self.projector(self.backbone(x).detach())


class ForwardNormalises(_Base):
    def forward(self, x):
        return F.normalize(self.projector(self.backbone(x)), dim=1)


class LayersInAList(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                       nn.Linear(256, 64)]
        self.backbone = self.layers[:2]
        self.projector = self.layers[2:]

    def representation(self, x):
        return self.layers[1](self.layers[0](x.flatten(1)))

    def forward(self, x):
        h = self.representation(x)
        return self.layers[4](self.layers[3](self.layers[2](h)))


class FrozenBackbone(_Base):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.backbone.requires_grad_(False)


class NoBackbone(_Base):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.backbone = nn.Flatten()
        self.projector = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))


class NotAModule:
    def __init__(self):
        self.backbone = nn.Flatten()
        self.projector = nn.Linear(64, 64)


class HardCodedFloat32(_Base):
    def forward(self, x):
        return self.projector(self.backbone(x.float()))


# -- train_simclr --------------------------------------------------------------------------------


def _batch(data, batch_size, generator):
    return data[torch.randperm(len(data), generator=generator)[:batch_size]]


def _loop(model, data, steps, batch_size, lr, generator, make_loss, *, zero_grad=True,
          params=None, step=True, item=True):
    optimizer = torch.optim.Adam(model.parameters() if params is None else params, lr=lr)
    losses = []
    for _ in range(steps):
        loss = make_loss(_batch(data, batch_size, generator))
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        if step:
            optimizer.step()
        losses.append(loss.item() if item else loss)
    return losses


def train_loss_on_h(model, data, *, steps, batch_size, temperature, lr, generator=None):
    def make(x):
        return nt_xent_loss(model.representation(augment(x, generator)),
                            model.representation(augment(x, generator)), temperature)
    return _loop(model, data, steps, batch_size, lr, generator, make)


def train_same_view_twice(model, data, *, steps, batch_size, temperature, lr, generator=None):
    def make(x):
        view = augment(x, generator)
        return nt_xent_loss(model(view), model(view), temperature)
    return _loop(model, data, steps, batch_size, lr, generator, make)


def train_views_of_different_samples(model, data, *, steps, batch_size, temperature, lr,
                                     generator=None):
    def make(x):
        other = _batch(data, batch_size, generator)
        return nt_xent_loss(model(augment(x, generator)), model(augment(other, generator)),
                            temperature)
    return _loop(model, data, steps, batch_size, lr, generator, make)


def train_views_misaligned(model, data, *, steps, batch_size, temperature, lr, generator=None):
    def make(x):
        return nt_xent_loss(model(augment(x, generator)), model(augment(x.flip(0), generator)),
                            temperature)
    return _loop(model, data, steps, batch_size, lr, generator, make)


def train_one_raw_view(model, data, *, steps, batch_size, temperature, lr, generator=None):
    def make(x):
        return nt_xent_loss(model(x), model(augment(x, generator)), temperature)
    return _loop(model, data, steps, batch_size, lr, generator, make)


def train_no_augmentation(model, data, *, steps, batch_size, temperature, lr, generator=None):
    def make(x):
        return nt_xent_loss(model(x), model(x.clone()), temperature)
    return _loop(model, data, steps, batch_size, lr, generator, make)


def _two_views(model, generator, temperature):
    def make(x):
        return nt_xent_loss(model(augment(x, generator)), model(augment(x, generator)),
                            temperature)
    return make


def train_without_zero_grad(model, data, *, steps, batch_size, temperature, lr, generator=None):
    return _loop(model, data, steps, batch_size, lr, generator,
                 _two_views(model, generator, temperature), zero_grad=False)


def train_ignores_temperature(model, data, *, steps, batch_size, temperature, lr, generator=None):
    def make(x):
        return nt_xent_loss(model(augment(x, generator)), model(augment(x, generator)))
    return _loop(model, data, steps, batch_size, lr, generator, make)


def train_ignores_lr(model, data, *, steps, batch_size, temperature, lr, generator=None):
    return _loop(model, data, steps, batch_size, 1e-3, generator,
                 _two_views(model, generator, temperature))


def train_same_batch_every_step(model, data, *, steps, batch_size, temperature, lr,
                                generator=None):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    make, losses = _two_views(model, generator, temperature), []
    for _ in range(steps):
        loss = make(data[:batch_size])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def train_with_replacement(model, data, *, steps, batch_size, temperature, lr, generator=None):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    make, losses = _two_views(model, generator, temperature), []
    for _ in range(steps):
        loss = make(data[torch.randint(0, len(data), (batch_size,), generator=generator)])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def train_ignores_batch_size(model, data, *, steps, batch_size, temperature, lr, generator=None):
    return _loop(model, data, steps, len(data), lr, generator,
                 _two_views(model, generator, temperature))


def train_generator_not_passed_on(model, data, *, steps, batch_size, temperature, lr,
                                  generator=None):
    return _loop(model, data, steps, batch_size, lr, generator,
                 _two_views(model, None, temperature))


def train_returns_tensors(model, data, *, steps, batch_size, temperature, lr, generator=None):
    return _loop(model, data, steps, batch_size, lr, generator,
                 _two_views(model, generator, temperature), item=False)


def train_returns_last_loss(model, data, *, steps, batch_size, temperature, lr, generator=None):
    return _loop(model, data, steps, batch_size, lr, generator,
                 _two_views(model, generator, temperature))[-1]


def train_only_the_head(model, data, *, steps, batch_size, temperature, lr, generator=None):
    return _loop(model, data, steps, batch_size, lr, generator,
                 _two_views(model, generator, temperature), params=model.projector.parameters())


def train_without_step(model, data, *, steps, batch_size, temperature, lr, generator=None):
    return _loop(model, data, steps, batch_size, lr, generator,
                 _two_views(model, generator, temperature), step=False)


def train_gradient_ascent(model, data, *, steps, batch_size, temperature, lr, generator=None):
    make = _two_views(model, generator, temperature)
    return [-v for v in _loop(model, data, steps, batch_size, lr, generator,
                              lambda x: -make(x))]


# -- linear_probe --------------------------------------------------------------------------------


def _fit(train_x, train_y, *, iters=100, standardise=True, bias=True):
    """A softmax classifier fitted by L-BFGS; returns a function from features to class scores."""
    train_x = train_x.detach().double()
    mean = train_x.mean(0) if standardise else 0.0
    scale = train_x.std() if standardise else 1.0
    classes = torch.unique(train_y)
    w = torch.zeros(train_x.shape[1], len(classes), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(len(classes), dtype=torch.float64, requires_grad=bias)
    opt = torch.optim.LBFGS([w, b] if bias else [w], max_iter=iters,
                            line_search_fn="strong_wolfe")
    xs = (train_x - mean) / scale
    target = torch.searchsorted(classes, train_y)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(xs @ w + b, target) + 1e-3 * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return lambda x: classes[(((x.detach().double() - mean) / scale) @ w + b).argmax(1)]


def probe_fits_on_test(train_feats, train_labels, test_feats, test_labels):
    predict = _fit(test_feats, test_labels)
    return (predict(test_feats) == test_labels).double().mean().item()


def probe_returns_error_rate(train_feats, train_labels, test_feats, test_labels):
    return 1.0 - linear_probe(train_feats, train_labels, test_feats, test_labels)


def probe_returns_percentage(train_feats, train_labels, test_feats, test_labels):
    return 100.0 * linear_probe(train_feats, train_labels, test_feats, test_labels)


def probe_returns_tensor(train_feats, train_labels, test_feats, test_labels):
    return torch.tensor(linear_probe(train_feats, train_labels, test_feats, test_labels))


def probe_test_statistics(train_feats, train_labels, test_feats, test_labels):
    # each set standardised with its own statistics
    def own(x):
        return (x - x.mean(0)) / x.std()
    return linear_probe(own(train_feats), train_labels, own(test_feats), test_labels)


def probe_unscaled_gradient_descent(train_feats, train_labels, test_feats, test_labels):
    x, xt = train_feats.detach(), test_feats.detach()
    classes = int(train_labels.max()) + 1
    w = torch.zeros(x.shape[1], classes, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.SGD([w, b], lr=0.1)
    for _ in range(100):
        opt.zero_grad()
        F.cross_entropy(x.float() @ w + b, train_labels).backward()
        opt.step()
    return ((xt.float() @ w + b).argmax(1) == test_labels).float().mean().item()


def probe_labels_as_indices(train_feats, train_labels, test_feats, test_labels):
    x, xt = train_feats.detach().double(), test_feats.detach().double()
    mean, scale = x.mean(0), x.std()
    classes = len(torch.unique(train_labels))
    w = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy((x - mean) / scale @ w, train_labels)
        loss.backward()
        return loss

    opt.step(closure)
    return ((((xt - mean) / scale) @ w).argmax(1) == test_labels).double().mean().item()


def probe_trains_the_encoder(train_feats, train_labels, test_feats, test_labels):
    # no detach: the classifier's loss is backpropagated into whatever made the features
    classes = torch.unique(train_labels)
    w = torch.zeros(train_feats.shape[1], len(classes), dtype=train_feats.dtype,
                    requires_grad=True)
    loss = F.cross_entropy(train_feats @ w, torch.searchsorted(classes, train_labels))
    loss.backward()
    return linear_probe(train_feats, train_labels, test_feats, test_labels)


def probe_standardises_in_place(train_feats, train_labels, test_feats, test_labels):
    mean, scale = train_feats.mean(0), train_feats.std()
    train_feats.sub_(mean).div_(scale)
    test_feats.sub_(mean).div_(scale)
    return linear_probe(train_feats, train_labels, test_feats, test_labels)


def probe_no_bias_no_centring(train_feats, train_labels, test_feats, test_labels):
    predict = _fit(train_feats, train_labels, standardise=False, bias=False)
    return (predict(test_feats) == test_labels).double().mean().item()


def probe_under_fitted(train_feats, train_labels, test_feats, test_labels):
    predict = _fit(train_feats, train_labels, iters=1)
    return (predict(test_feats) == test_labels).double().mean().item()


def probe_fits_on_train_and_test(train_feats, train_labels, test_feats, test_labels):
    predict = _fit(torch.cat([train_feats, test_feats]), torch.cat([train_labels, test_labels]))
    return (predict(test_feats) == test_labels).double().mean().item()


def probe_scores_on_train(train_feats, train_labels, test_feats, test_labels):
    # fitted on the training set, then scored there too: a training accuracy
    predict = _fit(train_feats, train_labels)
    return (predict(train_feats) == train_labels).double().mean().item()


_IN_PLACE = "in-place operation modified the caller's tensor"

CATALOGUE = [
    Botch("returns the image unchanged", "augment", augment_identity, "unchanged"),
    Botch("re-seeds inside", "augment", augment_reseeded, "re-seeded"),
    Botch("ignores the generator", "augment", augment_ignores_generator,
          "ignore the `generator` argument"),
    Botch("one transformation for the whole batch", "augment", augment_shared_transform,
          "shared by the whole batch"),
    Botch("mixes images of the batch", "augment", augment_mixes_batch, "mix information"),
    Botch("uses batch statistics", "augment", augment_batch_statistics, "mix information"),
    Botch("destroys the image", "augment", augment_destroys, "destroys the content"),
    Botch("hard-coded 8x8", "augment", augment_hard_coded_size, "hard-coded"),
    Botch("casts to float32", "augment", augment_casts_to_float32, "changes dtype"),
    Botch("changes its input in place", "augment", augment_in_place, _IN_PLACE),
    Botch("shuffles the batch", "augment", augment_shuffles_batch, "mix information"),
    Botch("linear projection head", "SimCLRModel", LinearHead, "head is linear"),
    Botch("head ends with a ReLU", "SimCLRModel", HeadEndsWithReLU, "ends with a ReLU"),
    Botch("forward skips the head", "SimCLRModel", ForwardSkipsHead, "skips the projection head"),
    Botch("representation applies the head", "SimCLRModel", RepresentationAppliesHead,
          "representation applies the projection head"),
    Botch("forward detaches h", "SimCLRModel", ForwardDetachesH, "gets no gradient"),
    Botch("forward normalises z", "SimCLRModel", ForwardNormalises, "normalises z"),
    Botch("layers kept in a Python list", "SimCLRModel", LayersInAList, "python list"),
    Botch("frozen backbone", "SimCLRModel", FrozenBackbone, "frozen"),
    Botch("backbone without parameters", "SimCLRModel", NoBackbone,
          "backbone has no trainable parameters"),
    Botch("not an nn.Module", "SimCLRModel", NotAModule, "does not subclass"),
    Botch("casts to float32 in forward", "SimCLRModel", HardCodedFloat32, "float32"),
    Botch("loss on h", "train_simclr", train_loss_on_h, "computed on h"),
    Botch("the same view twice", "train_simclr", train_same_view_twice, "same view is used twice"),
    Botch("views of different samples", "train_simclr", train_views_of_different_samples,
          "different samples"),
    Botch("views not aligned", "train_simclr", train_views_misaligned, "not aligned"),
    Botch("one view un-augmented", "train_simclr", train_one_raw_view, "un-augmented"),
    Botch("no augmentation at all", "train_simclr", train_no_augmentation,
          "augment is never applied"),
    Botch("no zero_grad", "train_simclr", train_without_zero_grad, "zero_grad is missing"),
    Botch("ignores the temperature", "train_simclr", train_ignores_temperature,
          "temperature argument is ignored"),
    Botch("ignores lr", "train_simclr", train_ignores_lr, "lr argument is ignored"),
    Botch("the same batch every step", "train_simclr", train_same_batch_every_step,
          "same samples are used at every step"),
    Botch("samples with replacement", "train_simclr", train_with_replacement, "with replacement"),
    Botch("ignores batch_size", "train_simclr", train_ignores_batch_size,
          "batch_size is ignored"),
    Botch("generator not passed on", "train_simclr", train_generator_not_passed_on,
          "generator is not passed on"),
    Botch("returns loss tensors", "train_simclr", train_returns_tensors, "loss.item()"),
    Botch("returns the last loss only", "train_simclr", train_returns_last_loss,
          "only the last loss"),
    Botch("optimises only the head", "train_simclr", train_only_the_head,
          "only the head is optimised"),
    Botch("no optimizer.step", "train_simclr", train_without_step, "parameters never change"),
    Botch("gradient ascent", "train_simclr", train_gradient_ascent, "loss rises"),
    Botch("fitted on the test set", "linear_probe", probe_fits_on_test, "fitted on the test"),
    Botch("fitted on train and test", "linear_probe", probe_fits_on_train_and_test,
          "training and test sets together"),
    Botch("scored on the training features", "linear_probe", probe_scores_on_train,
          "scored on the training features"),
    Botch("returns the error rate", "linear_probe", probe_returns_error_rate, "error rate"),
    Botch("returns a percentage", "linear_probe", probe_returns_percentage, "percentage"),
    Botch("returns a tensor", "linear_probe", probe_returns_tensor, "not a python float"),
    Botch("normalises with test statistics", "linear_probe", probe_test_statistics,
          "test set's own statistics"),
    Botch("unscaled gradient descent", "linear_probe", probe_unscaled_gradient_descent,
          "not standardised"),
    Botch("labels used as column indices", "linear_probe", probe_labels_as_indices,
          "column indices"),
    Botch("backpropagates into the encoder", "linear_probe", probe_trains_the_encoder,
          "reaches back into the encoder"),
    Botch("standardises in place", "linear_probe", probe_standardises_in_place, _IN_PLACE),
    Botch("no bias and no centring", "linear_probe", probe_no_bias_no_centring,
          "not standardised"),
    Botch("under-fitted", "linear_probe", probe_under_fitted, "clearly weaker"),
]

# Pasted into the stub's training cell by tests/test_notebooks.py, as a learner would write it.
LEARNER_PATH = {
    "solution": "02_simclr",
    "name": "loss on h",
    "graded_name": "train_simclr",
    "cell": 3,
    "expect": "the loss is computed on h",
    "source": '''
def train_simclr(model, data, *, steps, batch_size, temperature, lr, generator=None):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        x = data[torch.randperm(len(data), generator=generator)[:batch_size]]
        h1 = model.representation(augment(x, generator))
        h2 = model.representation(augment(x, generator))
        loss = nt_xent_loss(h1, h2, temperature)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
''',
}
