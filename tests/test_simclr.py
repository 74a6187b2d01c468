"""Drill 02's checks judge behaviour, not one way of writing it.

Correct implementations that differ from the reference (a loop instead of a batched warp, a CNN
with batch norm and dropout, views concatenated into one forward pass, epochs instead of random
batches, scikit-learn or Adam for the probe) must pass every check; grading must leave the
learner's namespace as it found it; untouched stubs are reported as not implemented.
"""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import grader
from grader.report import TODO
from tests.nbtools import SOLUTIONS, load_graded

REF = load_graded(SOLUTIONS / "02_simclr.ipynb")


augment = REF["augment"]
nt_xent_loss = REF["nt_xent_loss"]


def augment_pad_and_crop_loop(x, generator=None):
    """Integer shifts of up to one pixel, image by image, then noise and pixel dropout."""
    n, _, height, width = x.shape
    padded = F.pad(x, (1, 1, 1, 1))
    offsets = torch.randint(0, 3, (n, 2), generator=generator)
    out = torch.stack([padded[i, :, dy:dy + height, dx:dx + width]
                       for i, (dy, dx) in enumerate(offsets.tolist())])
    out = out + 0.1 * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return out * (torch.rand(x.shape, generator=generator, dtype=x.dtype) > 0.15)


def augment_roll_and_erase(x, generator=None):
    """Wrap-around shifts and a random 3x3 erased patch per image, clamped to [0, 1]."""
    n, _, height, width = x.shape
    shifts = torch.randint(-1, 2, (n, 2), generator=generator).tolist()
    out = torch.stack([torch.roll(x[i], tuple(s), dims=(-2, -1)) for i, s in enumerate(shifts)])
    top = torch.randint(0, height - 2, (n,), generator=generator).tolist()
    left = torch.randint(0, width - 2, (n,), generator=generator).tolist()
    mask = torch.ones_like(out)
    for i in range(n):
        mask[i, :, top[i]:top[i] + 3, left[i]:left[i] + 3] = 0
    return (out * mask).clamp(0, 1)


class ConvModelWithBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.projector = nn.Sequential(nn.Linear(32, 32), nn.BatchNorm1d(32), nn.ReLU(),
                                       nn.Dropout(0.1), nn.Linear(32, 16))

    def representation(self, x):
        return self.backbone(x)

    def forward(self, x):
        return self.projector(self.backbone(x))


def train_one_forward_pass(model, data, *, steps, batch_size, temperature, lr, generator=None):
    """Both views in one forward pass, z normalised before the loss, keyword arguments."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        x = data[torch.randperm(len(data), generator=generator)[:batch_size]]
        views = torch.cat([augment(x, generator=generator), augment(x, generator=generator)])
        z1, z2 = F.normalize(model(views), dim=1).chunk(2)
        loss = nt_xent_loss(z1, z2, temperature=temperature)
        optimizer.zero_grad(set_to_none=False)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def train_in_epochs(model, data, *, steps, batch_size, temperature, lr, generator=None):
    """Shuffled passes over the data, AdamW, gradient clipping, zero_grad before the forward."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    losses, order, start = [], None, len(data)
    for _ in range(steps):
        if start + batch_size > len(data):
            order, start = torch.randperm(len(data), generator=generator), 0
        x = data[order[start:start + batch_size]]
        start += batch_size
        optimizer.zero_grad()
        loss = nt_xent_loss(model(augment(x, generator)), model(augment(x, generator)),
                            temperature)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        losses.append(loss.item())
    return losses


def probe_scikit_learn(train_feats, train_labels, test_feats, test_labels):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train_x, test_x = train_feats.detach().numpy(), test_feats.detach().numpy()
    scaler = StandardScaler().fit(train_x)
    classifier = LogisticRegression(max_iter=2000).fit(scaler.transform(train_x),
                                                       train_labels.numpy())
    return classifier.score(scaler.transform(test_x), test_labels.numpy())


def probe_adam_with_nn_linear(train_feats, train_labels, test_feats, test_labels):
    """Per-dimension standardisation, an nn.Linear drawn from the global generator, Adam."""
    x, test_x = train_feats.detach().float(), test_feats.detach().float()
    mean, std = x.mean(0), x.std(0) + 1e-6
    x, test_x = (x - mean) / std, (test_x - mean) / std
    classes, target = torch.unique(train_labels, return_inverse=True)
    linear = nn.Linear(x.shape[1], len(classes))
    optimizer = torch.optim.Adam(linear.parameters(), lr=0.05)
    with torch.enable_grad():
        for _ in range(300):
            optimizer.zero_grad()
            F.cross_entropy(linear(x), target).backward()
            optimizer.step()
    with torch.no_grad():
        return (classes[linear(test_x).argmax(1)] == test_labels).float().mean().item()


ALTERNATIVES = [
    ("augment", augment_pad_and_crop_loop),
    ("augment", augment_roll_and_erase),
    ("SimCLRModel", ConvModelWithBatchNorm),
    ("train_simclr", train_one_forward_pass),
    ("train_simclr", train_in_epochs),
    ("linear_probe", probe_scikit_learn),
    ("linear_probe", probe_adam_with_nn_linear),
]


@pytest.mark.parametrize("name, obj", ALTERNATIVES, ids=lambda v: getattr(v, "__name__", v))
def test_a_correct_implementation_written_differently_passes(name, obj):
    report = grader.check(name, obj)
    assert report.passed, str(report)


def test_grading_train_simclr_restores_the_learners_functions():
    namespace = {}
    exec(
        "def augment(x, generator=None):\n    return x + 1.0\n\n"
        "def nt_xent_loss(z1, z2, temperature=0.5):\n    raise RuntimeError('broken')\n\n"
        "def train_simclr(model, data, *, steps, batch_size, temperature, lr, generator=None):\n"
        "    return [nt_xent_loss(model(augment(data)), model(augment(data))).item()]\n",
        namespace,
    )
    augment_before, loss_before = namespace["augment"], namespace["nt_xent_loss"]
    report = grader.check("train_simclr", namespace["train_simclr"])
    assert not report.passed
    assert namespace["augment"] is augment_before
    assert namespace["nt_xent_loss"] is loss_before


def _stub_namespace():
    namespace = {}
    exec(
        "import torch.nn as nn\n"
        "def augment(x, generator=None):\n    raise NotImplementedError('implement `augment`')\n"
        "class SimCLRModel(nn.Module):\n"
        "    def __init__(self, in_dim=64, hidden_dim=512, h_dim=256, z_dim=64):\n"
        "        super().__init__()\n"
        "        raise NotImplementedError('implement `__init__`')\n"
        "def train_simclr(model, data, *, steps, batch_size, temperature, lr, generator=None):\n"
        "    raise NotImplementedError('implement `train_simclr`')\n"
        "def linear_probe(train_feats, train_labels, test_feats, test_labels):\n"
        "    raise NotImplementedError('implement `linear_probe`')\n",
        namespace,
    )
    return namespace


@pytest.mark.parametrize("name", ["augment", "SimCLRModel", "train_simclr", "linear_probe"])
def test_an_untouched_stub_is_reported_as_not_implemented(name, capsys):
    obj = _stub_namespace()[name]
    report = grader.check(name, obj)
    assert all(r.status == TODO for r in report.results), str(report)
    assert grader.ready(name, obj) is False
    assert f"Implement `{name}` first" in capsys.readouterr().out


def test_train_simclr_waits_for_the_loss_it_calls():
    """A finished loop whose nt_xent_loss is still a stub is 'not implemented', not a crash."""
    namespace = load_graded(SOLUTIONS / "02_simclr.ipynb")  # a fresh copy to modify
    exec("def nt_xent_loss(z1, z2, temperature=0.5):\n    raise NotImplementedError\n", namespace)
    report = grader.check("train_simclr", namespace["train_simclr"])
    assert report.results[0].status == TODO, str(report)


# A correct augmentation (it passes every augment check) that makes the 40-step problem hard:
# shifts of up to two pixels and a 4x4 cutout. Before the checks used their own augmentation,
# it made a correct training loop fail "lowers the loss" (3.443 -> 3.434).
HARD_BUT_CORRECT_AUGMENT = (
    "def augment(x, generator=None):\n"
    "    n, _, h, w = x.shape\n"
    "    s = torch.randint(-2, 3, (n, 2), generator=generator).tolist()\n"
    "    x = torch.stack([torch.roll(x[i], tuple(v), dims=(-2, -1)) for i, v in enumerate(s)])\n"
    "    t = torch.randint(0, h - 3, (n,), generator=generator).tolist()\n"
    "    left = torch.randint(0, w - 3, (n,), generator=generator).tolist()\n"
    "    m = torch.ones_like(x)\n"
    "    for i in range(n):\n"
    "        m[i, :, t[i]:t[i] + 4, left[i]:left[i] + 4] = 0\n"
    "    return x * m\n"
)
TINY_NOISE_AUGMENT = (  # correct in form, but it barely changes an image
    "def augment(x, generator=None):\n"
    "    return x + 0.01 * torch.randn(x.shape, generator=generator, dtype=x.dtype)\n"
)


@pytest.mark.parametrize("source", [HARD_BUT_CORRECT_AUGMENT, TINY_NOISE_AUGMENT],
                         ids=["shifts and cutout", "tiny noise"])
def test_train_simclr_is_not_judged_by_the_strength_of_the_learners_augment(source):
    namespace = load_graded(SOLUTIONS / "02_simclr.ipynb")  # a fresh copy to modify
    exec("import torch\n" + source, namespace)
    report = grader.check("train_simclr", namespace["train_simclr"])
    assert report.passed, str(report)  # the training loop is correct, whatever augment does
