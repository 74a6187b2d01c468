"""Drill 02 from the learner's side: a learner's own correct code, written differently from the
solution, passes every check quickly, and pasted into the stub it runs the demo and clears its
bar (SimCLR's h beats raw pixels and a random encoder at 5 labels per digit)."""


from tests.nbtools import SOLUTIONS, read

SOLUTION = "02_simclr"
# What the demo prints once its claims hold (it asserts them first).
DEMO_SAYS = r"SimCLR h - .*h wins on"

# The given top of the augment cell (the primitives, not graded), as the stub shows it: a learner
# writes below it.
_MARKER = "# Yours: the random parameters, and the view."
_GIVEN = next(c.source for c in read(SOLUTIONS / f"{SOLUTION}.ipynb").cells
              if "def affine_warp(" in c.source).split(_MARKER)[0]

# A learner's answers, deliberately unlike the solution's: the warp's parameters drawn in one
# block and split, the factor broadcast by indexing, GELU instead of ReLU, log-sum-exp by hand
# in the loss, both views in one forward pass, scikit-learn for the probe.
LEARNER = {
    "augment": _GIVEN + '''

def random_crop(x, generator=None):
    n = x.shape[0]
    draws = uniform(4 * n, -1.0, 1.0, x, generator).view(n, 4)
    zoom = 1 + 0.15 * draws[:, 0]
    turn = draws[:, 1] * math.pi / 15
    return affine_warp(x, zoom, turn, 0.12 * draws[:, 2:])


def jitter_contrast(x, generator=None):
    return x * uniform(len(x), 0.7, 1.3, x, generator)[:, None, None, None]


def augment(x, generator=None):
    for transform in (random_crop, jitter_contrast, add_noise, drop_pixels):
        x = transform(x, generator)
    return x
''',
    "SimCLRModel": '''
import torch.nn as nn


class SimCLRModel(nn.Module):
    def __init__(self, in_dim=64, hidden_dim=512, h_dim=256, z_dim=64):
        super().__init__()
        self.backbone = nn.Sequential(nn.Flatten(start_dim=1), nn.Linear(in_dim, hidden_dim),
                                      nn.GELU(), nn.Linear(hidden_dim, h_dim), nn.GELU())
        self.projector = nn.Sequential(nn.Linear(h_dim, h_dim), nn.GELU(),
                                       nn.Linear(h_dim, z_dim))

    def representation(self, x):
        return self.backbone(x)

    def forward(self, x):
        h = self.representation(x)
        return self.projector(h)
''',
    "nt_xent_loss": '''
import torch


def nt_xent_loss(z1, z2, temperature=0.5):
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    n = len(z1)
    sim = z @ z.T / temperature
    sim = sim - torch.diag(torch.full((2 * n,), float("inf"), dtype=z.dtype, device=z.device))
    rows = torch.arange(2 * n, device=z.device)
    return (torch.logsumexp(sim, dim=1) - sim[rows, (rows + n) % (2 * n)]).mean()
''',
    "train_simclr": '''
import torch


def train_simclr(model, data, *, steps, batch_size, temperature, lr, generator=None):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        batch = data[torch.randperm(len(data), generator=generator)[:batch_size]]
        views = torch.cat([augment(batch, generator=generator),
                           augment(batch, generator=generator)])
        z1, z2 = model(views).chunk(2)
        loss = nt_xent_loss(z1, z2, temperature=temperature)
        optimizer.zero_grad(set_to_none=False)
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
    return history
''',
    "linear_probe": '''
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler


def linear_probe(train_feats, train_labels, test_feats, test_labels):
    train_x, test_x = train_feats.detach().cpu().numpy(), test_feats.detach().cpu().numpy()
    scaler = StandardScaler().fit(train_x)
    classifier = LogisticRegression(max_iter=1000).fit(scaler.transform(train_x),
                                                       train_labels.cpu().numpy())
    return float(classifier.score(scaler.transform(test_x), test_labels.cpu().numpy()))
''',
}
GRADED = ["augment", "SimCLRModel", "train_simclr", "linear_probe"]
DEFINES = {"augment": "def augment(", "SimCLRModel": "class SimCLRModel",
           "nt_xent_loss": "def nt_xent_loss", "train_simclr": "def train_simclr",
           "linear_probe": "def linear_probe"}
