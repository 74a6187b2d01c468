"""Drill 01, a learner's correct answers: log-sum-exp by hand, a mask of -inf added, einsum."""


SOLUTION = "01_nt_xent"
# What the demo prints once its claims hold (it asserts them first).
DEMO_SAYS = r"the gap widened by "

# A learner's correct answers, deliberately unlike the solution: norms by hand, the diagonal
# removed by adding -inf, the positive picked with gather and log-sum-exp by hand; InfoNCE with
# einsum and the positive's log-probability taken from a log_softmax.
LEARNER = {
    "nt_xent_loss": '''
import torch


def nt_xent_loss(z1, z2, temperature=0.5):
    n = len(z1)
    both = torch.cat((z1, z2))
    unit = both / both.norm(dim=-1, keepdim=True)
    scores = unit @ unit.t() / temperature
    scores = scores + torch.diag(torch.full((2 * n,), float("-inf"), dtype=scores.dtype,
                                            device=scores.device))
    twin = torch.cat((torch.arange(n, 2 * n), torch.arange(n))).to(scores.device)
    positive = scores.gather(1, twin[:, None]).squeeze(1)
    return (torch.logsumexp(scores, dim=1) - positive).mean()
''',
    "info_nce_loss": '''
import torch


def info_nce_loss(query, positive_key, negative_keys, temperature=0.1):
    q = query / torch.linalg.vector_norm(query, dim=1, keepdim=True)
    k = positive_key / torch.linalg.vector_norm(positive_key, dim=1, keepdim=True)
    m = negative_keys / torch.linalg.vector_norm(negative_keys, dim=1, keepdim=True)
    positive = torch.einsum("nd,nd->n", q, k)[:, None]
    negatives = torch.einsum("nd,md->nm", q, m)
    log_p = torch.log_softmax(torch.cat((positive, negatives), dim=1) / temperature, dim=1)
    return -log_p[:, 0].mean()
''',
}
DEFINES = {"nt_xent_loss": "def nt_xent_loss", "info_nce_loss": "def info_nce_loss"}
