"""Checks for `recall_at_k(similarity, k=1)` (drill 03, stretch): the fraction of queries (rows)
whose match (candidate i for query i) has fewer than k other candidates scoring at least as high,
as a Python float. Checked on designed matrices whose answer is known by construction (each
query's match with g candidates above it and t tied with it), for ties, every k, more candidates
than queries, one query, float64 and inputs that require grad, and on the known answers in
grader/data/clip_recall.json.

A wrong value asks `_mistake`, which runs the telling matrices and compares the learner's values
with what each classic mistake (ties counted for the query, an off-by-one either way, k ignored,
rows and columns swapped, a count or a percentage) gives on them, so that one mistake gets one
diagnosis whichever check sees it first."""

from __future__ import annotations

import math

import torch

from ...checks import checklist
from ...data import load_cases
from ...inputs import randn as _randn
from ...kit import laws
from ...sandbox import Fail, call

recall_checks = checklist(
    "recall_at_k",
    drill="03_clip",
    smoke=lambda fn: fn(torch.eye(2, 3), k=1),
)

TIES_FOR = (
    "a candidate that ties with the match is not counted against it (a strict comparison): "
    "a query whose match merely ties with k or more others is counted as found"
)
LENIENT = (
    "off by one: a match with exactly k other candidates at or above it is counted as found; "
    "found means fewer than k others at or above it"
)
SELF_COUNTED = (
    "off by one the other way: the match itself is counted among the candidates at or above "
    "it (or a rank that starts at 1 is compared strictly with k), so a match in k-th place is "
    "missed and at k = 1 nothing is ever found"
)
K_IGNORED = "k is ignored: the result is recall@1 whatever k is"
SWAPPED = (
    "rows and columns are swapped: the queries are the rows of the similarity matrix and each "
    "query ranks the candidates of its own row, not the queries of a column"
)
OVER_CANDIDATES = (
    "the hits are divided by the number of candidates C, not by the number of queries Q"
)
COUNT = "the number of queries found is returned, not the fraction"
PERCENT = "a percentage is returned, not a fraction in [0, 1]"
RETURNS_TENSOR = (
    "a tensor is returned, not a Python float: the contract asks for a plain number (a 0-d "
    "tensor would keep the similarity matrix's graph and device alive in a log)"
)
HINTS = {
    TIES_FOR: "a candidate that scores exactly as high as the match is as good as the match: "
    "count it against the query",
    LENIENT: "found means fewer than k others at or above the match, not at most k",
    SELF_COUNTED: "leave the match out when you count the candidates at or above it",
    K_IGNORED: "use the k you were given: the match may be anywhere in the top k",
    SWAPPED: "each query is a row: rank the entries of its row",
    OVER_CANDIDATES: "the fraction is over the queries, the rows",
    COUNT: "divide the number of queries found by the number of queries",
    PERCENT: "return a fraction between 0 and 1, not a percentage",
    RETURNS_TENSOR: "turn the final 0-d tensor into a Python float before returning it",
}
TOL = 1e-6  # the fraction may be computed in float32 (0.2 is 0.2000000030 there)


def _recall(fn, similarity, k):
    """The learner's recall as a Python float (a tensor or another type names that mistake)."""
    try:
        out = call(fn, similarity, k=k)
    except Fail as f:
        # A crash where there are more candidates than queries, from code that ranks the
        # columns of a square matrix, is the swap, not a second mistake.
        q, c = similarity.shape
        if f.crashed and q != c and _matches(fn, SQUARE, [SWAPPED]) == SWAPPED:
            raise Fail(f"{f.message}, with {q} queries and {c} candidates", diagnosis=SWAPPED,
                       hint=HINTS[SWAPPED]) from None
        raise
    if out is None:
        raise Fail("the result is None",
                   diagnosis="the function does not return anything (a missing `return`)",
                   hint="end the function by returning the fraction")
    if isinstance(out, torch.Tensor):
        raise Fail(f"the result is a tensor ({out.dtype}, shape {tuple(out.shape)})",
                   diagnosis=RETURNS_TENSOR, hint=HINTS[RETURNS_TENSOR],
                   measured=f"torch.Tensor {tuple(out.shape)}", expected="float")
    if isinstance(out, bool) or not isinstance(out, float):
        raise Fail(f"the result is a {type(out).__name__}, not a float",
                   diagnosis="the result is not a Python float",
                   hint="return the fraction as a Python float", measured=type(out).__name__,
                   expected="float")
    if not math.isfinite(out):
        raise Fail(f"the result is {out}", diagnosis="the result is not a finite number",
                   hint="the fraction of queries found is a number between 0 and 1")
    return out


class Ranked:
    """A (len(g), c) float64 matrix in which query i's match (column i, score 0.5) has g[i] other
    candidates above it (0.9) and t[i] tied with it (0.5); the rest score 0.1. The right recall
    is known by construction: query i is found when g[i] + t[i] < k."""

    def __init__(self, g, t, c):
        self.g, self.t = torch.tensor(g), torch.tensor(t)
        q = len(g)
        self.sim = torch.full((q, c), 0.1, dtype=torch.float64)
        for i in range(q):
            others = [(i + 1 + j) % c for j in range(c - 1)]
            self.sim[i, i] = 0.5
            for j in others[:g[i]]:
                self.sim[i, j] = 0.9
            for j in others[g[i]:g[i] + t[i]]:
                self.sim[i, j] = 0.5

    def values(self, k):
        """{mistake: value} for the classic mistakes at k, with "" the right value."""
        g, t = self.g, self.t
        q, c = self.sim.shape
        hit = (g + t < k).double()
        # the swap ranks the first q columns' entries among the q queries
        col = self.sim[:, :q].T
        diag = col.diagonal()
        chit = ((col >= diag[:, None]).sum(1) - 1 < k).double()
        return {
            "": hit.mean().item(),
            TIES_FOR: (g < k).double().mean().item(),
            LENIENT: (g + t <= k).double().mean().item(),
            SELF_COUNTED: (g + t + 1 < k).double().mean().item(),
            K_IGNORED: (g + t < 1).double().mean().item(),
            SWAPPED: chit.mean().item(),
            OVER_CANDIDATES: hit.sum().item() / c,
            COUNT: hit.sum().item(),
            PERCENT: 100 * hit.mean().item(),
        }


# Square matrices on which every mistake but OVER_CANDIDATES gives its own values; then one with
# more candidates than queries, for that one (and for a swap that only crashes there).
SQUARE = [(Ranked([0, 1, 0, 2, 1, 0], [0, 0, 1, 1, 2, 4], 6), k) for k in (1, 2, 3)]
WIDE = [(Ranked([0, 1, 2], [0, 0, 1], 7), k) for k in (1, 3)]


def _matches(fn, probes, candidates):
    try:
        got = [_recall(fn, case.sim.clone(), k) for case, k in probes]
    except Fail:
        return None
    expected = [case.values(k) for case, k in probes]
    for mistake in candidates:
        if all(abs(v - e[mistake]) <= TOL for v, e in zip(got, expected)):
            return mistake
    return None


def _mistake(fn):
    """The classic mistake the learner's values on the telling matrices are the signature of,
    or None."""
    square = [TIES_FOR, LENIENT, SELF_COUNTED, K_IGNORED, SWAPPED, COUNT, PERCENT]
    found = _matches(fn, SQUARE, square)
    if found is None and _matches(fn, SQUARE, [""]) == "":
        found = _matches(fn, WIDE, [OVER_CANDIDATES])
    return found


def _check(fn, case, k, what):
    """Compare the learner's recall on a Ranked case at k with the value known by construction."""
    got = _recall(fn, case.sim.clone(), k)
    expected = case.values(k)[""]
    if abs(got - expected) > TOL:
        mistake = _mistake(fn)
        raise Fail(f"{what}: recall@{k} = {got:.4g}", diagnosis=mistake,
                   hint=HINTS.get(mistake), measured=f"{got:.4g}", expected=f"{expected:.4g}",
                   conclusive=mistake is not None)
    return got


@recall_checks.add(
    "returns a Python float in [0, 1]",
    diagnosis="the result is not a Python float in [0, 1]",
    hint="the fraction of queries whose match is found, as a plain number",
)
def recall_float(fn):
    out = _recall(fn, _randn(5, 7, seed=330), 2)
    if not 0.0 <= out <= 1.0:
        mistake = _mistake(fn)
        raise Fail(f"recall@2 = {out:.4g}", diagnosis=mistake, hint=HINTS.get(mistake),
                   measured=f"{out:.4g}", expected="a fraction in [0, 1]",
                   conclusive=mistake is not None)
    return f"recall@2 = {out:.3f} on a random 5 x 7 matrix"


laws.leaves_inputs_unchanged(
    recall_checks, run=_recall, hint="read the similarity matrix; build new tensors if you "
    "need them", inputs=lambda: [(_randn(4, 6, seed=331), 2), (_randn(3, 3, seed=332), 1)])


@recall_checks.add(
    "perfect retrieval scores 1; a match ranked last scores 0",
    diagnosis="the extreme cases are wrong",
    hint="a query is found when its match is among its row's k best",
)
def recall_extremes(fn):
    _check(fn, Ranked([0, 0, 0, 0], [0, 0, 0, 0], 4), 1, "the match is the best in every row")
    last = Ranked([3, 3, 3, 3], [0, 0, 0, 0], 4)
    _check(fn, last, 1, "the match is the worst in every row")
    _check(fn, last, 3, "the match is the worst in every row")
    _check(fn, last, 4, "k = C: every match is in the top C")
    return "1.0 for perfect pairs; 0.0, then 1.0 at k = C, when every match is last"


@recall_checks.add(
    "counts a candidate that ties with the match against it",
    diagnosis=TIES_FOR,
    hint=HINTS[TIES_FOR],
)
def recall_ties(fn):
    same = Ranked([0, 0, 0, 0], [3, 3, 3, 3], 4)
    for k in (1, 3, 4):
        _check(fn, same, k, "every candidate ties with the match")
    _check(fn, Ranked([0, 1, 0, 0], [1, 0, 2, 0], 4), 2, "some matches tie with others")
    return "all tied: 0 below k = C, 1 at k = C"


@recall_checks.add(
    "follows k: a match in place r is found from k = r on",
    diagnosis="the result does not follow k as it should",
    hint="a match with r candidates above it is found exactly when r is less than k",
)
def recall_follows_k(fn):
    places = Ranked([0, 1, 2, 3, 4], [0, 0, 0, 0, 0], 5)
    got = [_check(fn, places, k, "matches in places 1 to 5") for k in range(1, 6)]
    return "recall@1..5 = " + ", ".join(f"{v:.1f}" for v in got)


@recall_checks.add(
    "ranks each query's row, with more candidates than queries",
    diagnosis=SWAPPED,
    hint=HINTS[SWAPPED],
)
def recall_rows(fn):
    for case, k in WIDE:
        _check(fn, case, k, f"{case.sim.shape[0]} queries, {case.sim.shape[1]} candidates")
    return "3 queries against 7 candidates"


@recall_checks.add(
    "works on one query, on float64, and on a matrix that requires grad",
    diagnosis="valid inputs of an unusual kind break the function",
    hint="stay in torch until the final number: no numpy on a tensor that requires grad, no "
    "squeeze that drops a single query",
)
def recall_edge_inputs(fn):
    one = Ranked([1], [0], 3)  # the match second of three
    _check(fn, one, 2, "one query")
    _check(fn, one, 1, "one query")
    sim = _randn(4, 5, seed=333).requires_grad_(True)
    _recall(fn, sim, 2)
    return "one query, float64 and a grad-tracking matrix all work"


@recall_checks.add(
    "matches known answers",
    diagnosis="the recall differs from the reference on fixed inputs",
    hint="if the other checks pass, look at how ties and k enter the count",
)
def recall_known_answers(fn):
    for case in load_cases("clip_recall"):
        sim = torch.tensor(case["similarity"], dtype=torch.float64)
        got = _recall(fn, sim, case["k"])
        if abs(got - case["recall"]) > TOL:
            raise Fail(f"a {tuple(sim.shape)} case at k = {case['k']}: recall {got:.4g}",
                       measured=f"{got:.4g}", expected=f"{case['recall']:.4g}",
                       conclusive=False)
    return "all stored cases match"
