"""Known answers for moco_loss: random float64 queries, keys and unit queue keys, the loss and
the gradient with respect to the queries."""

import torch

SOLUTION = "05_moco"


def make(ns) -> dict:
    loss_fn = ns["moco_loss"]
    g = torch.Generator().manual_seed(5150)
    cases = []
    for n, size, d, tau in [(3, 5, 4, 0.07), (4, 8, 3, 0.2), (1, 3, 5, 0.5), (5, 12, 6, 0.1)]:
        q = torch.randn(n, d, generator=g, dtype=torch.float64).requires_grad_()
        k = torch.randn(n, d, generator=g, dtype=torch.float64)
        queue = torch.randn(size, d, generator=g, dtype=torch.float64)
        queue = queue / queue.norm(dim=1, keepdim=True)
        loss = loss_fn(q, k, queue, temperature=tau)
        loss.backward()
        cases.append({"q": q.tolist(), "k": k.tolist(), "queue_keys": queue.tolist(),
                      "temperature": tau, "loss": loss.item(), "grad_q": q.grad.tolist()})
    return {"moco_loss": {"cases": cases}}
