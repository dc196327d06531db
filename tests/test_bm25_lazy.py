"""The bm25 retriever's index when ingest should cost only what the change costs (issue 24, point 1).

Above ``[bm25] rebuild_at_ingest_max_chunks`` (0 here, so every collection counts as large) an
ingest leaves the index alone and the first bm25 search after a change rebuilds it; the
collection's change counter (manifest meta ``generation``) tells a stale index even when the
number of chunks did not change. Above ``[bm25] max_chunks`` the retriever refuses and names
sparse. Real embedded Qdrant and the packaged MiniLM.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.doctor import doctor
from ingest.pipeline import Ingestor
from rag.core.bm25 import GENERATION, Bm25Index
from rag.core.config import Settings
from rag.core.errors import ConfigError
from rag.core.home import collection_paths
from rag.core.manifest import Manifest
from rag.query.search import search
from tests.conftest import write

LAZY = {"chunking": {"chunk_size": 300, "chunk_overlap": 50}, "bm25": {"rebuild_at_ingest_max_chunks": 0},
        "rerank": {"enabled": False}}


def generation(home: Path) -> int:
    manifest = Manifest(collection_paths(home, "default").manifest)
    try:
        return int(manifest.get_meta(GENERATION) or 0)
    finally:
        manifest.close()


def bm25_sources(settings: Settings, home: Path, query: str) -> list[str]:
    return [Path(r.source).name for r in search(query, settings, home, k=3, retriever="bm25").results]


def test_large_collections_leave_the_index_to_the_first_bm25_search(rag_home: Path, tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    settings = Settings.model_validate(LAZY)
    folder = tmp_path / "docs"
    write(folder / "kiln.txt", "The kiln fires stoneware at twelve hundred degrees for nine hours.")
    write(folder / "loom.txt", "A floor loom weaves wool blankets with a twill pattern.")
    write(folder / "forge.txt", "The forge heats iron bars until they glow orange.")
    write(folder / "lathe.txt", "A wood lathe turns maple bowls on a spindle.")
    paths = collection_paths(rag_home, "default")

    report = Ingestor(settings, rag_home, embedder=embedder).run([folder])
    assert report.files_added == 4 and not report.bm25_rebuilt and Bm25Index.read_info(paths.bm25) is None
    first = generation(rag_home)
    assert first >= 2  # counted before and after the write

    assert bm25_sources(settings, rag_home, "stoneware kiln") == ["kiln.txt"]  # built on first use
    info = Bm25Index.read_info(paths.bm25)
    assert info is not None and info.count == report.chunks_total and info.generation == first

    # the same number of chunks, other words: the counter, not the count, says the index is stale
    write(folder / "kiln.txt", "The kiln fires porcelain at thirteen hundred degrees for eleven hours.")
    again = Ingestor(settings, rag_home, embedder=embedder).run([folder])
    assert again.files_updated == 1 and not again.bm25_rebuilt and again.chunks_total == report.chunks_total
    assert generation(rag_home) > first
    assert bm25_sources(settings, rag_home, "porcelain") == ["kiln.txt"]
    assert bm25_sources(settings, rag_home, "stoneware") == []
    assert Bm25Index.read_info(paths.bm25).generation == generation(rag_home)  # type: ignore[union-attr]

    # a deleted file is a change too; doctor calls the stale index fine (it is rebuilt on use)
    (folder / "loom.txt").unlink()
    Ingestor(settings, rag_home, embedder=embedder).run([folder])
    (finding,) = [f for f in doctor(settings, rag_home, repair=False) if f.part == "bm25"]
    assert finding.state == "ok" and "first bm25 search rebuilds it" in finding.message
    assert bm25_sources(settings, rag_home, "wool loom") == []


def test_configured_bm25_is_kept_in_step_by_ingest_and_too_big_a_collection_names_sparse(
        rag_home: Path, tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "docs"
    write(folder / "kiln.txt", "The kiln fires stoneware at twelve hundred degrees for nine hours.")
    write(folder / "forge.txt", "The forge heats iron bars until they glow orange.")
    write(folder / "lathe.txt", "A wood lathe turns maple bowls on a spindle.")
    uses_bm25 = Settings.model_validate({**LAZY, "retrieval": {"hybrid": ["dense", "bm25"]}})
    report = Ingestor(uses_bm25, rag_home, embedder=embedder).run([folder])
    assert report.bm25_rebuilt  # the configured retrieval needs it at once

    small = Settings.model_validate({**LAZY, "bm25": {"max_chunks": 1}})
    write(folder / "loom.txt", "A floor loom weaves wool blankets with a twill pattern.")
    Ingestor(small, rag_home, embedder=embedder).run([folder])
    with pytest.raises(ConfigError, match=r"more than the bm25 retriever serves \(\[bm25\] max_chunks = 1.*sparse"):
        search("kiln", small, rag_home, retriever="bm25")
    assert [Path(r.source).name for r in search("stoneware kiln", small, rag_home, k=1, retriever="sparse").results] \
        == ["kiln.txt"]


def test_ingest_of_a_collection_over_index_min_chunks_builds_the_engines_index(rag_home: Path, tmp_path: Path,
                                                                                 embedder) -> None:  # type: ignore[no-untyped-def]
    """Without it the embedded engine searches by brute force forever; the build is the engine's own (optimize)."""
    import json

    import qdrant_edge as qe

    from rag.core.store import DENSE, SPARSE
    from rag.core.store_tuning import edge_config

    def hnsw_segments(settings: Settings) -> int:
        root = collection_paths(rag_home, "default").root / "qdrant" / "segments"
        return sum(json.loads(p.read_text())["config"]["vector_data"][DENSE]["index"]["type"] == "hnsw"
                   for p in root.glob("*/segment.json"))

    folder = tmp_path / "docs"
    for i in range(6):
        write(folder / f"n{i}.txt", f"Note {i}: the heron{i} nests by the reed bed and fishes at dawn. " * 6)
    # the engine's own indexing threshold lowered so that a collection this small gets a graph at all
    path = collection_paths(rag_home, "default").root / "qdrant"
    ours = edge_config(Settings().store, qe, DENSE, SPARSE, 384)
    qe.EdgeShard.create(str(path), qe.EdgeConfig(
        vectors=ours.vectors, sparse_vectors=ours.sparse_vectors, hnsw_config=ours.hnsw_config,
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1))).close()
    off = Settings.model_validate({**LAZY, "store": {"index_min_chunks": 0}})
    Ingestor(off, rag_home, embedder=embedder).run([folder])
    assert hnsw_segments(off) == 0  # never built: exact search
    on = Settings.model_validate({**LAZY, "store": {"index_min_chunks": 1}})
    write(folder / "n0.txt", "Note zero was rewritten: the heron left.")
    Ingestor(on, rag_home, embedder=embedder).run([folder])
    assert hnsw_segments(on) >= 1
    assert [Path(r.source).name for r in search("heron3 reed bed", on, rag_home, k=1).results] == ["n3.txt"]
