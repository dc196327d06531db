"""Fusion of several retrievers' rankings: weighted reciprocal rank fusion or normalised scores."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal, Mapping, Sequence

from rag.query.retrieve import ScoredChunk

FUSED = "fused"


def _minmax(results: Sequence[ScoredChunk], name: str) -> dict[str, float]:
    scores = [r.scores[name] for r in results]
    if not scores:
        return {}
    lo, hi = min(scores), max(scores)
    span = hi - lo
    return {r.chunk_id: ((r.scores[name] - lo) / span if span > 0 else 1.0) for r in results}


def fuse(
    rankings: Mapping[str, Sequence[ScoredChunk]],
    weights: Mapping[str, float] | None = None,
    method: Literal["rrf", "score"] = "rrf",
    rrf_k: float = 60.0,
    label: str = FUSED,
) -> list[ScoredChunk]:
    """Merge rankings (retriever name -> results best first) into one list, best first.

    rrf: ``sum_r w_r / (rrf_k + rank_r)``; score: ``sum_r w_r * minmax(score_r)``.
    Each fused chunk keeps every retriever's rank and score, plus its fused ones under ``label``.
    Ties are broken by chunk id, so the order is deterministic.
    """
    weights = weights or {}
    fused: dict[str, float] = {}
    merged: dict[str, ScoredChunk] = {}
    for name, results in rankings.items():
        w = float(weights.get(name, 1.0))
        normalised = _minmax(results, name) if method == "score" else {}
        for r in results:
            rank = r.ranks[name]
            contribution = w / (rrf_k + rank) if method == "rrf" else w * normalised[r.chunk_id]
            fused[r.chunk_id] = fused.get(r.chunk_id, 0.0) + contribution
            if r.chunk_id in merged:
                prev = merged[r.chunk_id]
                merged[r.chunk_id] = replace(
                    prev, scores={**prev.scores, **r.scores}, ranks={**prev.ranks, **r.ranks}
                )
            else:
                merged[r.chunk_id] = r
    order = sorted(fused, key=lambda cid: (-fused[cid], cid))
    return [
        replace(
            merged[cid],
            score=fused[cid],
            scores={**merged[cid].scores, label: fused[cid]},
            ranks={**merged[cid].ranks, label: rank},
        )
        for rank, cid in enumerate(order, 1)
    ]
