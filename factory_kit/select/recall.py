"""Eval-driven selection: recall pool rows per evaluation item, never a copy of one.

For every evaluation item the ``top_k`` most similar pool rows (exact inner product on unit
vectors, faiss ``IndexFlatIP``) at or above ``min_similarity`` are recalled; rows recalled by
several items are kept once. A row is never taken (recalled, mixed in at random, or put in the
control arm) when it

- shares a long character span with an evaluation item (n-gram decontamination, on by
  default: a similarity ceiling alone keeps re-lettered and re-punctuated copies), or
- is at or above ``max_similarity`` to any evaluation item (a near-copy);

an item whose best rows were dropped recalls the next ones instead (the search widens until
``top_k`` are found, the floor is reached or the pool runs out). ``random_ratio`` of the
output is random pool rows; the control arm is a random sample of the same size, so the two
can be trained and compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from factory_kit.core.errors import FactoryKitError
from factory_kit.select.contam import Matcher
from factory_kit.select.options import Options
from factory_kit.select.sources import EvalItem, Pool

HIST_SAMPLE = 5000  # pool rows scored for the histogram's background
SEARCH_ENTRIES = 4_000_000  # items x k per search call: bounds the result arrays (~50 MB)
ASSESS_BLOCK = 8192  # rows scored against every item at once


@dataclass
class Pick:
    row: int
    item: int  # best-matching eval item (over all items)
    score: float
    arm: str  # recall | random | control


@dataclass
class Drop:
    row: int
    rule: str  # ngram | question | max_similarity
    item: int
    score: float
    span: str = ""
    stage: str = "recall"  # recall | random | control


@dataclass
class Result:
    picks: list[Pick]
    control: list[Pick]
    drops: list[Drop]
    per_item: list[dict[str, Any]]
    counts: dict[str, Any]
    background: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))


class _Judge:
    """Best item, score and verdict of pool rows, worked out once per row and remembered."""

    def __init__(self, pool: Pool, items: list[EvalItem], P: np.ndarray, E: np.ndarray, opts: Options,
                 E_question: np.ndarray | None = None):
        self.pool, self.P, self.E, self.opts, self.Eq = pool, P, E, opts, E_question
        self.matcher = Matcher(items, opts.ngram) if opts.decontaminate else None
        self.best_item: dict[int, int] = {}
        self.best_score: dict[int, float] = {}
        self.verdict: dict[int, Drop | None] = {}

    def assess(self, rows, stage: str) -> None:
        new = [int(r) for r in dict.fromkeys(rows) if int(r) not in self.verdict]
        for start in range(0, len(new), ASSESS_BLOCK):  # bounds the (rows x items) score block
            self._assess(new[start:start + ASSESS_BLOCK], stage)

    def _assess(self, new: list[int], stage: str) -> None:
        scores = self.P[new] @ self.E.T
        best = scores.argmax(axis=1)
        near = scores.max(axis=1)
        if self.Eq is not None:  # a copy of the bare question scores high against it, not against q+options
            near = np.maximum(near, (self.P[new] @ self.Eq.T).max(axis=1))
        texts = self.pool.full_text(new) if self.matcher is not None else {}
        ceiling = self.opts.max_similarity
        for r, j, s, c in zip(new, best.tolist(), scores[np.arange(len(new)), best].tolist(), near.tolist()):
            self.best_item[r], self.best_score[r] = j, s
            hit = self.matcher.find(texts[r]) if self.matcher is not None else None
            if hit is not None:
                self.verdict[r] = Drop(r, hit.rule, hit.item, s, hit.span, stage)
            elif ceiling is not None and c >= ceiling:
                self.verdict[r] = Drop(r, "max_similarity", j, c, "", stage)
            else:
                self.verdict[r] = None

    def pick(self, r: int, arm: str) -> Pick:
        return Pick(r, self.best_item[r], self.best_score[r], arm)


def _walk(judge: _Judge, D: np.ndarray, I: np.ndarray, opts: Options, dropped: set[int]) -> tuple[list, str]:
    """One item's recalled (row, score) pairs from its ranked candidates, and why it stopped."""
    taken: list[tuple[int, float]] = []
    for s, r in zip(D.tolist(), I.tolist()):
        if r < 0:
            return taken, "pool"
        if opts.min_similarity is not None and s < opts.min_similarity:
            return taken, "floor"
        if judge.verdict[r] is not None:
            dropped.add(r)
            continue
        taken.append((r, s))
        if len(taken) == opts.top_k:
            return taken, "full"
    return taken, "more"


def _recall(judge: _Judge, n: int, opts: Options) -> tuple[list[list], list[str], set[int]]:
    """Per item, its top_k allowed rows. Rows found to be copies leave the index (it is rebuilt
    without them) and the items that lost rows search again, with a doubling k: memory stays
    bounded even when most candidates are copies."""
    import faiss

    P, E = judge.P, judge.E
    m = E.shape[0]
    taken: list[list] = [[] for _ in range(m)]
    why = ["more"] * m
    dropped: set[int] = set()
    allowed = np.ones(n, dtype=bool)
    k = min(n, opts.top_k * 2 + 8)
    todo = list(range(m))
    index, ids = None, np.arange(n)
    while todo:
        if index is None:
            ids = np.flatnonzero(allowed)
            index = faiss.IndexFlatIP(P.shape[1])
            index.add(np.ascontiguousarray(P[ids] if len(ids) < n else P, dtype=np.float32))
        kk = min(len(ids), k, max(opts.top_k * 2 + 8, SEARCH_ENTRIES // len(todo)))
        D, I = index.search(E[todo], kk) if kk else (np.zeros((len(todo), 0)), np.zeros((len(todo), 0), dtype=int))
        G = np.where(I >= 0, ids[np.maximum(I, 0)], -1)
        judge.assess(G[G >= 0].ravel().tolist(), "recall")
        for row_d, row_g, j in zip(D, G, todo):
            taken[j], why[j] = _walk(judge, row_d, row_g, opts, dropped)
            if why[j] == "more" and kk >= len(ids):
                why[j] = "pool"
        newly = [r for r in dropped if allowed[r]]
        if newly:
            allowed[newly] = False
            index = None
        todo = [j for j in todo if why[j] == "more"]
        k = min(n, k * 2)
    return taken, why, dropped


def _draw(judge: _Judge, order: np.ndarray, want: int, skip: set[int], stage: str, arm: str) -> list[Pick]:
    """The first ``want`` rows of ``order`` that are not in ``skip`` and not dropped."""
    out: list[Pick] = []
    pos = 0
    while len(out) < want and pos < len(order):
        chunk = [int(r) for r in order[pos:pos + max(64, int((want - len(out)) * 1.25))] if int(r) not in skip]
        pos += max(64, int((want - len(out)) * 1.25))
        judge.assess(chunk, stage)
        for r in chunk:
            if judge.verdict[r] is None and len(out) < want:
                out.append(judge.pick(r, arm))
    return out


def select(pool: Pool, items: list[EvalItem], P: np.ndarray, E: np.ndarray, opts: Options,
           E_question: np.ndarray | None = None) -> Result:
    """Recall, decontaminate, mix in random rows, draw the control arm. P, E: unit rows (E: the
    items' question + options, what recall ranks by); the ceiling also looks at ``E_question``
    (bare questions), where a copy of a question alone scores high."""
    opts.check()
    n = len(pool)
    judge = _Judge(pool, items, P, E, opts, E_question)
    taken, why, dropped_rows = _recall(judge, n, opts)

    recalled = sorted({r for pairs in taken for r, _ in pairs})
    if not recalled:
        floor = f" at or above --min-similarity {opts.min_similarity}" if opts.min_similarity is not None else ""
        raise FactoryKitError(f"no pool row recalled{floor} ({len(dropped_rows)} dropped as copies of eval items); "
                              + ("lower --min-similarity or " if floor else "raise --max-similarity (it drops rows "
                                 "at or above it) or ") + "check that the pool and eval set share a language/topic")
    picks = [judge.pick(r, "recall") for r in recalled]
    want_random = round(len(recalled) * opts.random_ratio / (1 - opts.random_ratio))
    rng = np.random.default_rng(opts.seed)
    picks += _draw(judge, rng.permutation(n), want_random, set(recalled), "random", "random")
    control_order = np.random.default_rng([opts.seed, 1]).permutation(n)
    control = _draw(judge, control_order, len(picks), set(), "control", "control")
    sample = control_order[:HIST_SAMPLE]
    background = (P[sample] @ E.T).max(axis=1) if len(sample) else np.zeros(0, dtype=np.float32)

    drops = [d for d in judge.verdict.values() if d is not None]
    per_item = [{"id": item.id, "subject": item.subject, "recalled": len(pairs), "stopped": why[j],
                 "top_score": round(pairs[0][1], 4) if pairs else None}
                for j, (item, pairs) in enumerate(zip(items, taken))]
    counts = _counts(picks, control, drops, dropped_rows, taken, why, n, len(items), opts, want_random)
    return Result(sorted(picks, key=lambda p: p.row), sorted(control, key=lambda p: p.row), drops,
                  per_item, counts, background)


def _counts(picks, control, drops, dropped_rows, taken, why, n, m, opts, want_random) -> dict[str, Any]:
    by_rule: dict[str, int] = {}
    for d in drops:
        if d.row in dropped_rows:
            by_rule[d.rule] = by_rule.get(d.rule, 0) + 1
    recalled = sum(1 for p in picks if p.arm == "recall")
    pairs = sum(len(t) for t in taken)
    warnings = []
    if len(picks) >= n - len(dropped_rows):
        warnings.append(f"the selection holds every usable pool row ({len(picks)} of {n}): nothing was left out, so "
                        "the random control arm is the same data; lower --top-k or select from a larger pool")
    return {
        "warnings": warnings,
        "pool_rows": n, "eval_items": m, "recall_pairs": pairs, "recalled_rows": recalled,
        "recalled_by_several_items": pairs - recalled,
        "dropped_in_recall": by_rule,
        "dropped_in_random_draws": sum(1 for d in drops if d.stage != "recall"),
        "items_full": why.count("full"), "items_short_by_floor": why.count("floor"),
        "items_short_by_pool": why.count("pool"),
        "random_rows": sum(1 for p in picks if p.arm == "random"), "random_wanted": want_random,
        "output_rows": len(picks), "control_rows": len(control),
    }
