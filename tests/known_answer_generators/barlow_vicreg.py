"""Known answers for barlow_twins_loss and vicreg_loss: random float64 views (correlated, with
different means and spreads per dimension), several lambdas and sets of coefficients, the loss
and the gradients with respect to both views."""

import torch

SOLUTION = "07_barlow_vicreg"


def make(ns) -> dict:
    g = torch.Generator().manual_seed(7070)
    barlow, vicreg = [], []
    settings = [(4, 3, 5e-3, (25.0, 25.0, 1.0)), (6, 5, 0.1, (1.0, 2.0, 3.0)),
                (9, 2, 1.0, (25.0, 25.0, 1.0)), (5, 8, 5e-3, (0.5, 10.0, 0.2))]
    for n, d, lambd, coeffs in settings:
        z1 = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.linspace(0.3, 2.0, d) + 1
        noise = torch.randn(n, d, generator=g, dtype=torch.float64)
        z2 = (0.7 * z1 + 0.5 * noise).detach()
        z1, z2 = z1.requires_grad_(), z2.requires_grad_()
        loss = ns["barlow_twins_loss"](z1, z2, lambd)
        loss.backward()
        barlow.append({"z1": z1.tolist(), "z2": z2.tolist(), "lambd": lambd,
                       "loss": loss.item(), "grad_z1": z1.grad.tolist(),
                       "grad_z2": z2.grad.tolist()})
        z1, z2 = z1.detach().requires_grad_(), z2.detach().requires_grad_()
        loss = ns["vicreg_loss"](z1, z2, *coeffs)
        loss.backward()
        vicreg.append({"z1": z1.tolist(), "z2": z2.tolist(), "coeffs": list(coeffs),
                       "loss": loss.item(), "grad_z1": z1.grad.tolist(),
                       "grad_z2": z2.grad.tolist()})
    return {"barlow_twins_loss": {"cases": barlow}, "vicreg_loss": {"cases": vicreg}}
