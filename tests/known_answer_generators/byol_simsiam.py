"""Known answers for byol_loss and simsiam_loss: random float64 predictions and targets, the
loss and the gradients with respect to the predictions."""

import torch

SOLUTION = "06_byol_simsiam"


def make(ns) -> dict:
    g = torch.Generator().manual_seed(6060)
    byol, simsiam = [], []
    for n, d in [(3, 4), (5, 2), (1, 6), (6, 8)]:
        p = torch.randn(n, d, generator=g, dtype=torch.float64).requires_grad_()
        z = torch.randn(n, d, generator=g, dtype=torch.float64)
        loss = ns["byol_loss"](p, z)
        loss.backward()
        byol.append({"p": p.tolist(), "z": z.tolist(), "loss": loss.item(),
                     "grad_p": p.grad.tolist()})
        p1, p2 = (torch.randn(n, d, generator=g, dtype=torch.float64).requires_grad_()
                  for _ in range(2))
        z1, z2 = (torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(2))
        loss = ns["simsiam_loss"](p1, p2, z1, z2)
        loss.backward()
        simsiam.append({"p1": p1.tolist(), "p2": p2.tolist(), "z1": z1.tolist(),
                        "z2": z2.tolist(), "loss": loss.item(), "grad_p1": p1.grad.tolist(),
                        "grad_p2": p2.grad.tolist()})
    return {"byol_loss": {"cases": byol}, "simsiam_loss": {"cases": simsiam}}
