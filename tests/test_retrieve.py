"""Search over a real embedded collection: each retriever, fusion, filters, reranking, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from rag.core.config import Settings
from rag.core.embed import packaged_minilm_path
from rag.core.errors import ConfigError, RagError, StoreError
from rag.query.merge import merge
from rag.core.records import ScoredChunk, SearchFilter
from rag.query.retrieve import parse_filters
from rag.query.search import Searcher


def _chunk(cid: str, name: str, rank: int, score: float) -> ScoredChunk:
    return ScoredChunk(chunk_id=cid, text=cid, source="/s", score=score, scores={name: score}, ranks={name: rank})


def test_weighted_rrf_by_hand() -> None:
    dense = [_chunk("a", "dense", 1, 0.9), _chunk("b", "dense", 2, 0.8)]
    bm25 = [_chunk("b", "bm25", 1, 7.0), _chunk("c", "bm25", 2, 3.0)]
    fused = merge({"dense": dense, "bm25": bm25}, {"dense": 1.0, "bm25": 0.5}, "rrf", rrf_k=60)
    # a: 1/61 = 0.016393; b: 1/62 + 0.5/61 = 0.024326; c: 0.5/62 = 0.008065
    assert [c.chunk_id for c in fused] == ["b", "a", "c"]
    assert fused[0].score == pytest.approx(1 / 62 + 0.5 / 61)
    assert fused[0].ranks == {"dense": 2, "bm25": 1, "fused": 1}
    assert fused[0].scores["bm25"] == 7.0 and fused[0].scores["dense"] == 0.8


def test_score_fusion_by_hand() -> None:
    dense = [_chunk("a", "dense", 1, 0.9), _chunk("b", "dense", 2, 0.5)]
    bm25 = [_chunk("b", "bm25", 1, 10.0), _chunk("c", "bm25", 2, 4.0), _chunk("a", "bm25", 3, 2.0)]
    fused = merge({"dense": dense, "bm25": bm25}, None, "score")
    # min-max: dense a=1, b=0; bm25 b=1, c=0.25, a=0 -> a=1, b=1, c=0.25; tie a/b broken by id
    assert [(c.chunk_id, round(c.score, 4)) for c in fused] == [("a", 1.0), ("b", 1.0), ("c", 0.25)]


@pytest.fixture()
def collection(settings: Settings, rag_home: Path, embedder, docs: Path) -> Settings:  # type: ignore[no-untyped-def]
    Ingestor(settings, rag_home, embedder=embedder).run([docs])
    return settings


@pytest.mark.parametrize("name", ["dense", "bm25", "sparse", "hybrid"])
def test_each_retriever_finds_the_obvious_passage(collection, rag_home, name) -> None:  # type: ignore[no-untyped-def]
    searcher = Searcher(collection, rag_home, retriever=name, rerank=False)
    try:
        result = searcher.search("spider mites webbing under leaves", k=3)
    finally:
        searcher.close()
    top = result.results[0]
    assert "Spider mites" in top.text and top.source.endswith("pests.html")
    assert name in top.ranks and top.ranks[name] >= 1
    if name == "hybrid":
        assert {"dense", "sparse", "hybrid"} <= set(top.scores)


def test_filters_apply_inside_the_store(collection, rag_home) -> None:  # type: ignore[no-untyped-def]
    for name in ("dense", "bm25", "sparse", "hybrid"):
        searcher = Searcher(collection, rag_home, retriever=name, rerank=False)
        try:
            md = searcher.search("plants", k=10, flt=SearchFilter(file_types=("md",)))
            glob = searcher.search("plants water leaves", k=10, flt=parse_filters(["source=*/sub/*"]))
            none = searcher.search("plants", k=10, flt=parse_filters(["source=*.docx"]))
        finally:
            searcher.close()
        assert md.results and all(r.file_type == "md" for r in md.results), name
        assert glob.results and all("/sub/" in r.source for r in glob.results), name
        assert none.results == (), name


def test_rerank_with_a_real_cross_encoder(collection, rag_home) -> None:  # type: ignore[no-untyped-def]
    path = packaged_minilm_path()
    assert path is not None
    settings = collection.model_copy(update={"rerank": collection.rerank.model_copy(update={"model": str(path), "top_n": 4})})
    searcher = Searcher(settings, rag_home)
    try:
        result = searcher.search("how often to water succulents", k=6)
    finally:
        searcher.close()
    assert result.reranked and not result.notes
    head = result.results[:4]
    assert all("rerank" in r.scores for r in head)
    assert [r.ranks["rerank"] for r in head] == [1, 2, 3, 4]
    assert [r.score for r in head] == sorted((r.score for r in head), reverse=True)
    assert all("rerank" not in r.scores for r in result.results[4:])


def test_unloadable_reranker_keeps_fused_order(collection, rag_home) -> None:  # type: ignore[no-untyped-def]
    settings = collection.model_copy(update={"rerank": collection.rerank.model_copy(update={"model": "/no/such/model"})})
    with_note = Searcher(settings, rag_home)
    plain = Searcher(collection, rag_home, rerank=False)
    try:
        a = with_note.search("fungus gnats", k=4)
        b = plain.search("fungus gnats", k=4)
    finally:
        with_note.close()
        plain.close()
    assert not a.reranked and any("[rerank] model" in n for n in a.notes)
    assert [r.chunk_id for r in a.results] == [r.chunk_id for r in b.results]


def test_bad_input(collection, rag_home) -> None:  # type: ignore[no-untyped-def]
    searcher = Searcher(collection, rag_home, rerank=False)
    try:
        with pytest.raises(ConfigError, match="empty query"):
            searcher.search("   ", k=3)
        with pytest.raises(ConfigError, match="at most 256"):
            searcher.search("word " * 400, k=3)
        with pytest.raises(ConfigError, match="-k must be"):
            searcher.search("water", k=0)
    finally:
        searcher.close()
    with pytest.raises(ConfigError, match="unknown retriever 'nope'; available: .*bm25"):
        Searcher(collection, rag_home, retriever="nope")
    with pytest.raises(ConfigError, match="unknown field 'colour'"):
        parse_filters(["colour=red"])
    with pytest.raises(StoreError, match="does not exist"):
        Searcher(collection, rag_home, collection="missing")


def test_empty_collection_says_ingest_first(settings, rag_home, embedder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "empty").mkdir()
    Ingestor(settings, rag_home, embedder=embedder).run([tmp_path / "empty"])
    with pytest.raises(RagError, match="is empty; run `rag ingest"):
        Searcher(settings, rag_home)


def test_query_threads_do_not_leak_to_the_caller(collection, rag_home) -> None:  # type: ignore[no-untyped-def]
    import torch

    before = torch.get_num_threads()
    want = 1 if before != 1 else 2
    settings = collection.model_copy(update={"embedding": collection.embedding.model_copy(
        update={"query_threads": want})})
    searcher = Searcher(settings, rag_home, rerank=False)
    try:
        assert torch.get_num_threads() == before
        assert searcher.search("water", k=3).results
        assert torch.get_num_threads() == before
    finally:
        searcher.close()
