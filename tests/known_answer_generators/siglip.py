"""Known answers for siglip_loss: random float64 towers at several scales and biases (SigLIP's
start among them), the loss and the gradients with respect to all four inputs."""

import math

import torch

SOLUTION = "08_siglip"


def make(ns) -> dict:
    loss_fn = ns["siglip_loss"]
    g = torch.Generator().manual_seed(8080)
    cases = []
    for n, d, t, b in [(3, 4, 10.0, -10.0), (5, 6, 2.5, 0.7), (1, 3, 4.0, -1.0),
                       (6, 5, math.e, -3.5)]:
        leaves = {"image_emb": torch.randn(n, d, generator=g, dtype=torch.float64),
                  "text_emb": torch.randn(n, d, generator=g, dtype=torch.float64),
                  "logit_scale": torch.tensor(t, dtype=torch.float64),
                  "logit_bias": torch.tensor(b, dtype=torch.float64)}
        for leaf in leaves.values():
            leaf.requires_grad_()
        loss = loss_fn(*leaves.values())
        loss.backward()
        case = {name: leaf.tolist() for name, leaf in leaves.items()}
        case["loss"] = loss.item()
        case.update({f"grad_{name}": leaf.grad.tolist() for name, leaf in leaves.items()})
        cases.append(case)
    return {"siglip_loss": {"cases": cases}}
