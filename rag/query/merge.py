"""Merging ranked lists into one: the fusion of retrievers, expansions and collections.

One entry point, :func:`merge`, with named policies:

* ``rrf``: weighted reciprocal rank fusion, ``sum_r w_r / (rrf_k + rank_r)``, each rank as the
  ranking records it (``ranks[name]``). For rankings of different kinds (dense and BM25; a query
  and its expansions): a merged chunk keeps every ranking's scores and ranks.
* ``score``: weighted sum of min-max normalised scores, ``sum_r w_r * minmax(scores[name])_r``;
  otherwise as ``rrf``.
* ``max_rrf``: the best ``w_r / (rrf_k + position_r)`` over the rankings. For rankings of the
  same kind (one per collection): a chunk found in several keeps the record of the first
  ranking that found it, and equal scores go to the earlier ranking's chunk.

Ties are otherwise broken by chunk id, so every order is deterministic. Multi-hop retrieval
accumulates its own amounts hop by hop but scales and labels with :func:`minmax` and :func:`labelled`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Literal, Mapping, Sequence

from rag.core.records import ScoredChunk

FUSED = "fused"

Policy = Literal["rrf", "score", "max_rrf"]
POLICIES: tuple[str, ...] = ("rrf", "score", "max_rrf")

# amounts(name, ranking, weight, rrf_k) -> one amount per chunk of the ranking, in its order
Amounts = Callable[[str, Sequence[ScoredChunk], float, float], list[float]]


def minmax(chunks: Sequence[ScoredChunk], score: Callable[[ScoredChunk], float]) -> dict[str, float]:
    """Each chunk's ``score(chunk)`` scaled to 0..1 within ``chunks`` (1 for all when they are equal)."""
    values = [score(c) for c in chunks]
    if not values:
        return {}
    lo, hi = min(values), max(values)
    span = hi - lo
    return {c.chunk_id: ((score(c) - lo) / span if span > 0 else 1.0) for c in chunks}


def labelled(chunks: Sequence[ScoredChunk], scores: Sequence[float], label: str) -> list[ScoredChunk]:
    """``chunks`` in this order, each with its score from ``scores`` and its position, both under ``label`` too."""
    return [replace(c, score=s, scores={**c.scores, label: s}, ranks={**c.ranks, label: rank})
            for rank, (c, s) in enumerate(zip(chunks, scores), 1)]


def _rrf_amounts(name: str, ranking: Sequence[ScoredChunk], weight: float, rrf_k: float) -> list[float]:
    """``weight / (rrf_k + rank)`` with the rank the ranking recorded under its name."""
    return [weight / (rrf_k + c.ranks[name]) for c in ranking]


def _score_amounts(name: str, ranking: Sequence[ScoredChunk], weight: float, rrf_k: float) -> list[float]:
    """``weight * minmax(score)`` with the score the ranking recorded under its name."""
    scaled = minmax(ranking, lambda c: c.scores[name])
    return [weight * scaled[c.chunk_id] for c in ranking]


def _position_rrf_amounts(name: str, ranking: Sequence[ScoredChunk], weight: float, rrf_k: float) -> list[float]:
    """``weight / (rrf_k + position)``: the position in the list is the rank."""
    return [weight / (rrf_k + rank) for rank, _ in enumerate(ranking, 1)]


@dataclass(frozen=True, slots=True)
class _Rule:
    """How a policy merges: each chunk's amount per ranking, how amounts combine, which record and tie win."""

    amounts: Amounts
    combine: Callable[[float, float], float]
    keep_all_scores: bool  # True: a merged chunk keeps every ranking's scores and ranks; False: the first record
    ties_to_first_ranking: bool  # True: equal scores go to the chunk an earlier ranking found


_RULES: dict[str, _Rule] = {
    "rrf": _Rule(_rrf_amounts, lambda total, amount: total + amount, True, False),
    "score": _Rule(_score_amounts, lambda total, amount: total + amount, True, False),
    "max_rrf": _Rule(_position_rrf_amounts, max, False, True),
}


def merge(
    rankings: Mapping[str, Sequence[ScoredChunk]],
    weights: Mapping[str, float] | None = None,
    policy: Policy = "rrf",
    rrf_k: float = 60.0,
    label: str = FUSED,
) -> list[ScoredChunk]:
    """Merge rankings (name -> results best first) into one list, best first, as ``policy`` says.

    ``weights`` weigh each ranking's amounts (1 for a name it lacks); ``rrf_k`` damps the top
    ranks of the RRF policies. Each merged chunk gets its merged score as ``score`` and under
    ``label``, with its merged rank under ``label`` too.
    """
    rule = _RULES[policy]
    weights = weights or {}
    total: dict[str, float] = {}
    records: dict[str, ScoredChunk] = {}
    first: dict[str, int] = {}  # position of the first ranking that found the chunk
    for position, (name, ranking) in enumerate(rankings.items()):
        for c, amount in zip(ranking, rule.amounts(name, ranking, float(weights.get(name, 1.0)), rrf_k)):
            total[c.chunk_id] = rule.combine(total.get(c.chunk_id, 0.0), amount)
            first.setdefault(c.chunk_id, position)
            prev = records.get(c.chunk_id)
            if prev is None:
                records[c.chunk_id] = c
            elif rule.keep_all_scores:
                records[c.chunk_id] = replace(prev, scores={**prev.scores, **c.scores}, ranks={**prev.ranks, **c.ranks})
    if rule.ties_to_first_ranking:
        order = sorted(total, key=lambda cid: (-total[cid], first[cid], cid))
    else:
        order = sorted(total, key=lambda cid: (-total[cid], cid))
    return labelled([records[cid] for cid in order], [total[cid] for cid in order], label)
