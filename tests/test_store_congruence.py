"""The embedded engine (qdrant-edge) and the server API (qdrant-client) agree on the same data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ingest.pipeline import Ingestor
from rag.core.config import StoreConfig
from rag.core.lexical import Analyzer, bm25_document_weights, query_weights
from rag.core.store import EdgeStore, ServerStore, StoredPoint, point_uuid
from tests.test_pipeline import store_state

TEXTS = [
    "Water succulents every two weeks in summer.",
    "Fiddle-leaf figs drop leaves when moved.",
    "Spider mites leave fine webbing under leaves.",
    "Fungus gnats breed in wet soil; let it dry.",
    "Cacti want four to six hours of direct sun.",
    "Repot in spring, one pot size up, with bark and perlite.",
    "Yellow sticky traps catch adult fungus gnats.",
    "Raise humidity to discourage spider mites.",
]


@pytest.fixture()
def stores(tmp_path: Path):  # type: ignore[no-untyped-def]
    edge = EdgeStore(tmp_path / "edge")
    server = ServerStore(StoreConfig(backend="qdrant", url=":memory:"), f"congruence-{tmp_path.name}")
    yield edge, server
    edge.close()
    server.drop()


def _points(embedder) -> list[StoredPoint]:  # type: ignore[no-untyped-def]
    analyzer = Analyzer()
    vectors = embedder.embed(TEXTS)
    avgdl = float(np.mean([len(analyzer.tokens(t)) for t in TEXTS]))
    points = []
    for i, (text, vec) in enumerate(zip(TEXTS, vectors)):
        idx, val = bm25_document_weights(analyzer.tokens(text), avgdl, 1.2, 0.75)
        points.append(StoredPoint(point_uuid(f"t{i}"), vec, idx, val,
                                  {"text": text, "source": f"/d/{i % 3}.txt", "file_type": "txt", "file_hash": "h",
                                   "version": f"v{i % 2}"}))
    return points


def test_same_results_on_same_data(stores, embedder) -> None:  # type: ignore[no-untyped-def]
    edge, server = stores
    points = _points(embedder)
    for store in (edge, server):
        store.create(384)
        store.upsert(points)
        store.flush()
    assert edge.count() == server.count() == len(TEXTS)
    assert sorted(i for i, _ in edge.scroll()) == sorted(i for i, _ in server.scroll())

    analyzer = Analyzer()
    for query in ["how often to water", "insects in the soil", "spider mites webbing", "sunlight for cactus"]:
        qv = embedder.embed([query])[0]
        e = edge.search_dense(qv, 5)
        s = server.search_dense(qv, 5)
        assert [h.id for h in e] == [h.id for h in s], query
        assert np.allclose([h.score for h in e], [h.score for h in s], atol=1e-5)
        idx, val = query_weights(analyzer.tokens(query))
        e = edge.search_sparse(idx, val, 5)
        s = server.search_sparse(idx, val, 5)
        assert [h.id for h in e] == [h.id for h in s], query
        assert np.allclose([h.score for h in e], [h.score for h in s], atol=1e-4)
        ef = edge.search_dense(qv, 5, match={"source": "/d/1.txt"})
        sf = server.search_dense(qv, 5, match={"source": "/d/1.txt"})
        assert [h.id for h in ef] == [h.id for h in sf] and all(h.payload["source"] == "/d/1.txt" for h in ef)

    for store in (edge, server):
        store.delete_source("/d/0.txt")
        store.flush()
    assert edge.count() == server.count() == len(TEXTS) - 3
    for store in (edge, server):  # a rewritten file: only its points of another version go
        store.delete_source("/d/1.txt", keep_version="v1")
        store.flush()
    left = {i for i, _ in edge.scroll(match={"source": "/d/1.txt"})}
    assert left == {i for i, _ in server.scroll(match={"source": "/d/1.txt"})} == {points[1].id, points[7].id}
    assert edge.count() == server.count() == len(TEXTS) - 4
    vec_e = edge.vectors([points[1].id, points[0].id])
    vec_s = server.vectors([points[1].id, points[0].id])
    assert set(vec_e) == set(vec_s) == {points[1].id}
    assert np.allclose(vec_e[points[1].id][0], vec_s[points[1].id][0], atol=1e-6)


def test_pipeline_on_server_backend_matches_embedded(tmp_path, settings, embedder, docs) -> None:  # type: ignore[no-untyped-def]
    server_settings = settings.model_copy(update={"store": StoreConfig(backend="qdrant", url=":memory:",
                                                                       collection_prefix=f"t{tmp_path.name}_")})
    edge_home, server_home = tmp_path / "edge-home", tmp_path / "server-home"
    a = Ingestor(settings, edge_home, embedder=embedder).run([docs])
    b = Ingestor(server_settings, server_home, embedder=embedder).run([docs])
    assert a.chunks_total == b.chunks_total
    edge_state = store_state(settings, edge_home)
    server_state = store_state(server_settings, server_home)
    assert edge_state.keys() == server_state.keys()
    assert {k: v["text"] for k, v in edge_state.items()} == {k: v["text"] for k, v in server_state.items()}
    again = Ingestor(server_settings, server_home, embedder=embedder).run([docs])
    assert again.chunks_embedded == 0 and again.files_unchanged == 3
