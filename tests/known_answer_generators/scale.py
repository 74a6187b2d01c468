"""Known answers for drill 09: chunked_nt_xent_loss's cases hold nt_xent_loss's values and
gradients (the full loss, pasted into the drill from drill 01) at several chunk sizes;
gather_with_grad's and distributed_clip_loss's cases hold a global batch split over ranks and
what each rank's code gives in the simulated process group of grader/drills/scale/_world.py."""

import torch

SOLUTION = "09_scale"


def _chunked(ns):
    loss_fn = ns["nt_xent_loss"]
    g = torch.Generator().manual_seed(909)
    cases = []
    for n, d, tau, chunk in [(3, 4, 0.5, 1), (5, 3, 0.1, 3), (4, 6, 0.07, 5), (6, 5, 0.3, 64)]:
        z1 = torch.randn(n, d, generator=g, dtype=torch.float64).requires_grad_()
        z2 = torch.randn(n, d, generator=g, dtype=torch.float64).requires_grad_()
        loss = loss_fn(z1, z2, temperature=tau)
        loss.backward()
        cases.append({"z1": z1.tolist(), "z2": z2.tolist(), "temperature": tau,
                      "chunk_size": chunk, "loss": loss.item(), "grad_z1": z1.grad.tolist(),
                      "grad_z2": z2.grad.tolist()})
    return {"cases": cases}


def _gather(ns):
    from grader.drills.scale._world import run_ranks

    fn = ns["gather_with_grad"]
    g = torch.Generator().manual_seed(910)
    cases = []
    for world, n, d in [(2, 2, 3), (3, 1, 4), (4, 2, 2)]:
        t = torch.randn(world * n, d, generator=g, dtype=torch.float64)
        w = torch.randn(world, world * n, d, generator=g, dtype=torch.float64)

        def body(rank, t=t, w=w, n=n):
            mine = t[rank * n:(rank + 1) * n].clone().requires_grad_()
            out = fn(mine)
            (w[rank] * out).sum().backward()
            return out.detach(), mine.grad

        results, _ = run_ranks(world, body)
        cases.append({"world_size": world, "t": t.tolist(), "upstream": w.tolist(),
                      "out": [o.tolist() for o, _ in results],
                      "grad": [gr.tolist() for _, gr in results]})
    return {"cases": cases}


def _clip(ns):
    from grader.drills.scale._world import run_ranks

    loss_fn, fn = ns["clip_loss"], ns["distributed_clip_loss"]
    g = torch.Generator().manual_seed(911)
    cases = []
    for world, n, d, scale in [(2, 3, 4, 5.0), (4, 2, 3, 14.0), (3, 1, 5, 2.5)]:
        image = torch.randn(world * n, d, generator=g, dtype=torch.float64)
        text = torch.randn(world * n, d, generator=g, dtype=torch.float64)
        s = torch.tensor(scale, dtype=torch.float64)
        leaves = [x.clone().requires_grad_() for x in (image, text, s)]
        loss = loss_fn(*leaves)
        loss.backward()

        def body(rank, image=image, text=text, s=s, n=n):
            i = image[rank * n:(rank + 1) * n].clone().requires_grad_()
            t = text[rank * n:(rank + 1) * n].clone().requires_grad_()
            sc = s.clone().requires_grad_()
            share = fn(i, t, sc)
            share.backward()
            return share.item()

        shares, _ = run_ranks(world, body)
        cases.append({"world_size": world, "image_emb": image.tolist(), "text_emb": text.tolist(),
                      "logit_scale": scale, "shares": shares, "loss": loss.item(),
                      "grad_image_emb": leaves[0].grad.tolist(),
                      "grad_text_emb": leaves[1].grad.tolist(),
                      "grad_logit_scale": leaves[2].grad.item()})
    return {"cases": cases}


def make(ns) -> dict:
    return {"chunked_nt_xent": _chunked(ns), "gather_with_grad": _gather(ns),
            "distributed_clip": _clip(ns)}
