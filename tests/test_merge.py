"""Merging ranked lists: each named policy against hand-computed orders and scores."""

from __future__ import annotations

import pytest

from rag.core.records import ScoredChunk
from rag.query.merge import POLICIES, labelled, merge, minmax


def _ranking(name: str, *hits: tuple[str, float], ranks: tuple[int, ...] = ()) -> list[ScoredChunk]:
    """A ranking as a retriever returns it: ``scores[name]`` and ``ranks[name]`` (the position unless given)."""
    ranks = ranks or tuple(range(1, len(hits) + 1))
    return [ScoredChunk(chunk_id=cid, text=cid, source=f"/{cid}", score=s, scores={name: s}, ranks={name: r})
            for (cid, s), r in zip(hits, ranks)]


A = _ranking("A", ("a", 10.0), ("b", 0.0))
B = _ranking("B", ("b", 3.0), ("c", 1.0))


@pytest.mark.parametrize("policy, rankings, weights, rrf_k, expected", [
    # rrf: sum of w / (k + rank); b is in both lists
    ("rrf", {"A": A, "B": B}, None, 1.0, [("b", 1 / 3 + 1 / 2), ("a", 1 / 2), ("c", 1 / 3)]),
    ("rrf", {"A": A, "B": B}, {"A": 1.0, "B": 0.2}, 1.0, [("a", 1 / 2), ("b", 1 / 3 + 0.2 / 2), ("c", 0.2 / 3)]),
    # rrf reads the rank each ranking recorded, not the position in the list
    ("rrf", {"A": _ranking("A", ("a", 1.0), ("b", 0.5), ranks=(4, 2))}, None, 0.0, [("b", 1 / 2), ("a", 1 / 4)]),
    # equal scores: by chunk id
    ("rrf", {"A": _ranking("A", ("b", 1.0)), "B": _ranking("B", ("a", 1.0))}, None, 60.0, [("a", 1 / 61), ("b", 1 / 61)]),
    # score: sum of w * min-max scaled scores (A: a=1, b=0; B: b=1, c=0)
    ("score", {"A": A, "B": B}, None, 60.0, [("a", 1.0), ("b", 1.0), ("c", 0.0)]),
    ("score", {"A": A, "B": B}, {"A": 2.0}, 60.0, [("a", 2.0), ("b", 1.0), ("c", 0.0)]),
    # one score, or all equal: each scales to 1
    ("score", {"A": _ranking("A", ("x", 5.0), ("y", 5.0))}, None, 60.0, [("x", 1.0), ("y", 1.0)]),
    # max_rrf: the best w / (k + position); b's 1/2 from B beats its 1/3 from A
    ("max_rrf", {"A": A, "B": B}, None, 1.0, [("a", 1 / 2), ("b", 1 / 2), ("c", 1 / 3)]),
    # max_rrf: equal scores go to the earlier ranking's chunk, before the chunk id
    ("max_rrf", {"A": _ranking("A", ("x", 1.0), ("y", 0.5)), "B": _ranking("B", ("w", 1.0), ("z", 0.5))}, None, 0.0,
     [("x", 1.0), ("w", 1.0), ("y", 1 / 2), ("z", 1 / 2)]),
    # max_rrf ranks by position, whatever rank a list recorded
    ("max_rrf", {"A": _ranking("A", ("a", 1.0), ("b", 0.5), ranks=(4, 2))}, None, 0.0, [("a", 1.0), ("b", 1 / 2)]),
    ("rrf", {}, None, 60.0, []),
    ("max_rrf", {"A": [], "B": B}, None, 1.0, [("b", 1 / 2), ("c", 1 / 3)]),
])
def test_policy_orders_and_scores(policy: str, rankings: dict[str, list[ScoredChunk]], weights: dict[str, float] | None,
                                  rrf_k: float, expected: list[tuple[str, float]]) -> None:
    merged = merge(rankings, weights, policy, rrf_k)  # type: ignore[arg-type]
    assert [c.chunk_id for c in merged] == [cid for cid, _ in expected]
    assert [c.score for c in merged] == pytest.approx([s for _, s in expected])
    assert [c.ranks["fused"] for c in merged] == list(range(1, len(expected) + 1))
    assert all(c.scores["fused"] == c.score for c in merged)


@pytest.mark.parametrize("policy", ["rrf", "score"])
def test_fusion_keeps_every_rankings_scores_and_ranks(policy: str) -> None:
    b = next(c for c in merge({"A": A, "B": B}, policy=policy, label="hybrid") if c.chunk_id == "b")  # type: ignore[arg-type]
    assert b.scores == {"A": 0.0, "B": 3.0, "hybrid": b.score}
    assert b.ranks == {"A": 2, "B": 1, "hybrid": b.ranks["hybrid"]}


def test_max_rrf_keeps_the_first_rankings_record() -> None:
    b = next(c for c in merge({"A": A, "B": B}, policy="max_rrf", label="collections") if c.chunk_id == "b")
    assert b.scores == {"A": 0.0, "collections": 1 / 61} and b.ranks == {"A": 2, "collections": 2}


def test_every_named_policy_merges() -> None:
    for policy in POLICIES:
        assert {c.chunk_id for c in merge({"A": A, "B": B}, policy=policy)} == {"a", "b", "c"}  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        merge({"A": A}, policy="mean")  # type: ignore[arg-type]


def test_minmax_and_labelled() -> None:
    assert minmax(B, lambda c: c.score) == {"b": 1.0, "c": 0.0}
    assert minmax(_ranking("A", ("x", 2.0), ("y", 2.0)), lambda c: c.score) == {"x": 1.0, "y": 1.0}
    assert minmax([], lambda c: c.score) == {}
    out = labelled(list(reversed(B)), [0.7, 0.2], "hop")
    assert [(c.chunk_id, c.score, c.scores["hop"], c.ranks["hop"]) for c in out] == [("c", 0.7, 0.7, 1), ("b", 0.2, 0.2, 2)]
    assert out[1].scores["B"] == 3.0 and out[1].ranks["B"] == 1
