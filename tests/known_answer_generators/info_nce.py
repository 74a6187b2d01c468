"""Known answers for info_nce_loss: random float64 queries, keys and negatives, the loss and
the three gradients."""

import torch

SOLUTION = "01_nt_xent"


def make(ns) -> dict:
    loss_fn = ns["info_nce_loss"]
    g = torch.Generator().manual_seed(4321)
    cases = []
    for n, m, d, tau in [(3, 4, 5, 0.1), (4, 6, 3, 0.5), (2, 3, 4, 1.0), (5, 8, 2, 0.07)]:
        q, k, neg = (torch.randn(rows, d, generator=g, dtype=torch.float64).requires_grad_()
                     for rows in (n, n, m))
        loss = loss_fn(q, k, neg, temperature=tau)
        loss.backward()
        cases.append({
            "query": q.tolist(), "positive_key": k.tolist(), "negative_keys": neg.tolist(),
            "temperature": tau, "loss": loss.item(), "grad_query": q.grad.tolist(),
            "grad_positive_key": k.grad.tolist(), "grad_negative_keys": neg.grad.tolist(),
        })
    return {"info_nce": {"cases": cases}}
