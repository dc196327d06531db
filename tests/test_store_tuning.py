"""The large-collection settings of [store]: what each backend is asked for, search with them, and
what happens when an existing collection differs (docs/scale.md).

Real components: the embedded engine on temp dirs and qdrant-client's local mode. Local mode keeps
only the vectors' ``on_disk`` of these settings, so what the server would receive is checked on the
request we build (``ServerStore.create_request``), and the comparison with an existing server
collection on ``get_collection``'s answer with the values a server reports.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe
from qdrant_client import models

from rag.core.config import StoreConfig, load_settings
from rag.core.errors import ConfigError, StoreError
from rag.core.store import (
    DENSE,
    SPARSE,
    EdgeStore,
    ServerStore,
    StoredPoint,
    open_store,
)
from rag.core.store_tuning import edge_config, payload_index_drift, search_params, server_drift

LARGE: dict[str, object] = {
    "hnsw_m": 32, "hnsw_ef_construct": 200, "hnsw_ef": 128, "on_disk_vectors": True, "on_disk_payload": True,
    "quantization": "int8", "quantization_always_ram": True, "quantization_oversampling": 2.0}
CLUSTER: dict[str, object] = {"shard_number": 6, "replication_factor": 2, "write_consistency_factor": 1}


def _server(name: str, **settings: object) -> ServerStore:
    return ServerStore(StoreConfig(backend="qdrant", url=":memory:", **settings), f"tuning-{name}-{uuid.uuid4().hex[:8]}")


def _points(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, list[StoredPoint]]:
    vectors = np.random.default_rng(seed).normal(size=(n, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, [StoredPoint(point_uuid_of(i), vectors[i].tolist(), [i % 7], [1.0], {"source": f"/d/{i % 5}.txt"})
                     for i in range(n)]


def point_uuid_of(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


# -- defaults change nothing --------------------------------------------------------------------


def test_defaults_send_exactly_what_was_sent_before() -> None:
    config = StoreConfig()
    assert _server("defaults").create_request(384) == {
        "vectors_config": {DENSE: models.VectorParams(size=384, distance=models.Distance.COSINE)},
        "sparse_vectors_config": {SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
    }
    before = qe.EdgeConfig(
        vectors={DENSE: qe.EdgeVectorParams(size=384, distance=qe.Distance.Cosine)},
        sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
    )
    assert repr(edge_config(config, qe, DENSE, SPARSE, 384)) == repr(before)
    assert search_params(config, models.SearchParams, models.QuantizationSearchParams) is None
    assert search_params(config, qe.SearchParams, qe.QuantizationSearchParams) is None


# -- what each backend is asked for ---------------------------------------------------------------


def test_server_create_request_carries_every_setting() -> None:
    store = _server("create", **LARGE, **CLUSTER)
    assert store.create_request(384) == {
        "vectors_config": {DENSE: models.VectorParams(size=384, distance=models.Distance.COSINE, on_disk=True)},
        "sparse_vectors_config": {SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        "hnsw_config": models.HnswConfigDiff(m=32, ef_construct=200),
        "quantization_config": models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=True)),
        "on_disk_payload": True,
        "shard_number": 6,
        "replication_factor": 2,
        "write_consistency_factor": 1,
    }
    assert store._search_params == models.SearchParams(
        hnsw_ef=128, quantization=models.QuantizationSearchParams(rescore=True, oversampling=2.0))
    # local mode accepts the whole request; of these settings it keeps only the vectors' on_disk
    store.create(384)
    assert store.client.get_collection(store.name).config.params.vectors[DENSE].on_disk is True
    store.drop()


def test_edge_collection_is_created_with_the_settings(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "qdrant", StoreConfig(**LARGE))
    store.create(384)
    store.close()
    assert json.loads((tmp_path / "qdrant" / "edge_config.json").read_text()) == {
        "on_disk_payload": True,
        "vectors": {DENSE: {"size": 384, "distance": "Cosine", "on_disk": True}},
        "sparse_vectors": {SPARSE: {"modifier": "idf"}},
        "hnsw_config": {"m": 32, "ef_construct": 200, "full_scan_threshold": 10000, "max_indexing_threads": 0},
        "quantization_config": {"scalar": {"type": "int8", "always_ram": True}},
    }


def test_cluster_settings_are_refused_by_the_embedded_engine(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"shard_number = 6, replication_factor = 2 applies only to a Qdrant server"):
        open_store(StoreConfig(**CLUSTER), tmp_path, "default")
    open_store(StoreConfig(shard_number=1, replication_factor=1), tmp_path, "default").close()  # one shard is what it is


def test_write_consistency_above_replication_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[store]\nreplication_factor = 2\nwrite_consistency_factor = 3\n")
    with pytest.raises(ConfigError, match="must not exceed replication_factor"):
        load_settings(tmp_path, environ={})


# -- search with HNSW ef and int8 rescoring ---------------------------------------------------------


def test_edge_int8_rescored_hnsw_search_finds_the_exact_top_results(tmp_path: Path) -> None:
    """A real HNSW graph and int8 vectors (built by optimize) return the exact top 5, with exact scores."""
    config = StoreConfig(hnsw_m=16, hnsw_ef_construct=64, hnsw_ef=128, quantization="int8", quantization_always_ram=True,
                         quantization_oversampling=4.0)
    path = tmp_path / "qdrant"
    ours = edge_config(config, qe, DENSE, SPARSE, 32)
    engine_config = qe.EdgeConfig(  # ours, with a test-only indexing threshold: index even a small collection
        vectors=ours.vectors, sparse_vectors=ours.sparse_vectors, hnsw_config=ours.hnsw_config,
        quantization_config=ours.quantization_config, optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1))
    qe.EdgeShard.create(str(path), engine_config).close()
    store = EdgeStore(path, config)
    vectors, points = _points(2000, 32)
    store.upsert(points)
    store.optimize()
    segments = [json.loads(p.read_text())["config"]["vector_data"][DENSE] for p in (path / "segments").glob("*/segment.json")]
    assert any(s["index"]["type"] == "hnsw" and s["quantization_config"] for s in segments)

    unscored = EdgeStore(path, config.model_copy(update={"quantization_rescore": False}))  # the same shard
    drift = []
    for q in range(0, 2000, 250):
        exact = np.argsort(-(vectors @ vectors[q]))[:5]
        hits = store.search_dense(vectors[q].tolist(), 5)
        assert [h.id for h in hits] == [point_uuid_of(int(i)) for i in exact]
        assert [h.score for h in hits] == pytest.approx([float(vectors[i] @ vectors[q]) for i in exact], abs=1e-5)
        drift += [abs(h.score - float(vectors[int(h.id.replace("-", ""), 16) - 1] @ vectors[q]))
                  for h in unscored.search_dense(vectors[q].tolist(), 5)]
    assert max(drift) > 1e-4  # without rescoring the scores are the int8 ones: the quantized vectors were searched
    unscored.close()
    store.close()


@pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning")
def test_server_search_with_the_settings_matches_without(tmp_path: Path) -> None:
    vectors, points = _points(300, 16, seed=1)
    tuned, default = _server("tuned", **LARGE), _server("default")
    for store in (tuned, default):
        store.create(16)
        store.upsert(points)
    for q in (0, 7, 123):
        hits = tuned.search_dense(vectors[q].tolist(), 5)  # local mode searches exactly; it accepts the parameters
        assert [(h.id, round(h.score, 6)) for h in hits] == [
            (h.id, round(h.score, 6)) for h in default.search_dense(vectors[q].tolist(), 5)]
    tuned.drop()
    default.drop()


# -- an existing collection that differs ------------------------------------------------------------


def test_edge_reopen_applies_changes_in_place_and_keeps_unset_ones(tmp_path: Path) -> None:
    path = tmp_path / "qdrant"
    store = EdgeStore(path, StoreConfig(on_disk_vectors=True))
    store.create(8)
    store.upsert(_points(20, 8)[1])
    store.close()

    def saved() -> dict:  # type: ignore[type-arg]
        return json.loads((path / "edge_config.json").read_text())

    EdgeStore(path, StoreConfig(hnsw_m=32, quantization="int8")).close()
    after = saved()
    assert after["hnsw_config"]["m"] == 32 and after["quantization_config"] == {"scalar": {"type": "int8"}}
    assert after["vectors"][DENSE]["on_disk"] is True  # not set this time: kept

    EdgeStore(path, StoreConfig()).close()  # nothing set: opened as it is
    assert saved() == after
    reopened = EdgeStore(path, StoreConfig(hnsw_m=32))
    assert reopened.count() == 20
    reopened.close()


def test_edge_cannot_remove_quantization(tmp_path: Path) -> None:
    path = tmp_path / "qdrant"
    store = EdgeStore(path, StoreConfig(quantization="int8"))
    store.create(8)
    store.close()
    with pytest.raises(StoreError, match=r"quantization is int8, \[store\] asks for none .*delete the folder"):
        EdgeStore(path, StoreConfig(quantization="none"))


def _server_info(**params: object) -> models.CollectionInfo:
    """``get_collection``'s answer for a collection made by rag on a 3-node server (6 shards, 2 replicas)."""
    store = _server("info")
    store.create(384)
    info = store.client.get_collection(store.name)
    store.drop()
    reported = info.config.params.model_copy(update={
        "shard_number": 6, "replication_factor": 2, "write_consistency_factor": 1, "on_disk_payload": True, **params})
    return info.model_copy(update={"config": info.config.model_copy(update={"params": reported})})


def test_server_shards_and_replicas_cannot_change() -> None:
    info = _server_info()
    drift = server_drift(StoreConfig(shard_number=3, replication_factor=3), info, models, DENSE)
    assert drift.fixed == (
        "shard_number is 6, [store] asks for 3 (fixed when the collection is created)",
        "replication_factor is 2, [store] asks for 3 (changing it does not copy existing shards)",
    )
    assert server_drift(StoreConfig(**CLUSTER), info, models, DENSE) == server_drift(StoreConfig(), info, models, DENSE)
    assert not server_drift(StoreConfig(**CLUSTER), info, models, DENSE).fixed


def test_server_updates_the_rest_in_place() -> None:
    info = _server_info()
    config = StoreConfig(hnsw_m=32, hnsw_ef_construct=100, on_disk_vectors=True, on_disk_payload=False,
                         quantization="int8", write_consistency_factor=2, replication_factor=2)
    drift = server_drift(config, info, models, DENSE)
    assert not drift.fixed
    assert drift.update == {
        "collection_params": models.CollectionParamsDiff(write_consistency_factor=2, on_disk_payload=False),
        "vectors_config": {DENSE: models.VectorParamsDiff(on_disk=True)},
        "hnsw_config": models.HnswConfigDiff(m=32),  # ef_construct 100 is what the collection has
        "quantization_config": models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8)),
    }
    quantized = info.model_copy(update={"config": info.config.model_copy(update={
        "quantization_config": drift.update["quantization_config"]})})
    assert server_drift(StoreConfig(quantization="int8"), quantized, models, DENSE).update == {}
    assert server_drift(StoreConfig(quantization="none"), quantized, models, DENSE).update == {
        "quantization_config": models.Disabled.DISABLED}


def test_server_store_opens_an_existing_collection_with_new_settings() -> None:
    """Through ServerStore: the comparison runs on first use and the in-place update is accepted."""
    first = _server("reopen")
    first.create(8)
    first.upsert(_points(10, 8)[1])
    again = ServerStore(StoreConfig(backend="qdrant", url=":memory:", hnsw_m=32, quantization="int8",
                                    on_disk_vectors=True), first.name.removeprefix("rag_"))
    assert again.count() == 10
    first.drop()


# -- what opening a collection reads into RAM: the sparse index and the payload indexes ----------------

ON_DISK_INDEXES: dict[str, object] = {"sparse_index_on_disk": True, "payload_index_on_disk": True}


def _edge_payload_placement(path: Path) -> dict[str, bool | None]:
    shard = qe.EdgeShard.load(str(path))
    try:
        return {name: info.params.on_disk if info.params is not None else None
                for name, info in shard.info().payload_schema.items()}
    finally:
        shard.close()


def _sparse_index_types(path: Path) -> set[str]:
    return {json.loads(p.read_text())["config"]["sparse_vector_data"][SPARSE]["index"]["index_type"]
            for p in (path / "segments").glob("*/segment.json")}


def _indexed_edge(path: Path, config: StoreConfig) -> tuple[np.ndarray, EdgeStore]:
    """A collection of 3,000 points with its segments built (an indexing threshold low enough for a test)."""
    ours = edge_config(config, qe, DENSE, SPARSE, 16)
    qe.EdgeShard.create(str(path), qe.EdgeConfig(
        vectors=ours.vectors, sparse_vectors=ours.sparse_vectors,
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1))).close()
    store = EdgeStore(path, config)
    vectors, points = _points(3000, 16, seed=3)
    store.upsert([StoredPoint(p.id, p.dense, [i % 50, 50 + i % 7], [1.0, 0.5], p.payload) for i, p in enumerate(points)])
    store.optimize()
    return vectors, store


def test_edge_indexes_on_disk_are_created_so_and_search_the_same(tmp_path: Path) -> None:
    """With both settings the engine memory-maps the sparse index and the payload indexes; every search
    (dense, sparse, filtered by source) returns what the default collection returns."""
    vectors, mapped = _indexed_edge(tmp_path / "mapped", StoreConfig(**ON_DISK_INDEXES))
    _, default = _indexed_edge(tmp_path / "default", StoreConfig())
    for store in (mapped, default):  # the payload indexes are made by create(); here by hand, as create() would
        for name in ("source", "file_type", "origin"):
            store.shard.update(qe.UpdateOperation.create_field_index(name, store._keyword_schema()))
    # the built segments' sparse index (the appendable segment that takes new points is always in RAM)
    assert _sparse_index_types(tmp_path / "mapped") - {"MutableRam"} == {"Mmap"}
    assert _sparse_index_types(tmp_path / "default") - {"MutableRam"} == {"ImmutableRam"}
    assert json.loads((tmp_path / "mapped" / "edge_config.json").read_text())["sparse_vectors"][SPARSE]["on_disk"] is True
    source = {"source": "/d/3.txt"}
    for q in (0, 17, 2999):
        for search in (lambda s: s.search_dense(vectors[q].tolist(), 8),
                       lambda s: s.search_sparse([q % 50, 50 + q % 7], [1.0, 1.0], 8),
                       lambda s: s.search_dense(vectors[q].tolist(), 5, match=source)):
            assert [(h.id, round(h.score, 5)) for h in search(mapped)] == [(h.id, round(h.score, 5)) for h in search(default)]
    mapped.close()
    default.close()
    assert _edge_payload_placement(tmp_path / "mapped") == {"source": True, "file_type": True, "origin": True}
    assert _edge_payload_placement(tmp_path / "default") == {"source": None, "file_type": None, "origin": None}


def test_edge_create_puts_the_payload_indexes_on_disk(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "qdrant", StoreConfig(payload_index_on_disk=True))
    store.create(8)
    store.close()
    assert _edge_payload_placement(tmp_path / "qdrant") == {"source": True, "file_type": True, "origin": True}


def test_edge_existing_collection_moves_its_indexes_in_place(tmp_path: Path) -> None:
    """A collection made without the settings: reopened with them, its payload indexes are rebuilt on disk at
    once and its sparse index at the next index build; reopened with them off, both come back to RAM."""
    path = tmp_path / "qdrant"
    vectors, store = _indexed_edge(path, StoreConfig())
    for name in ("source", "file_type", "origin"):
        store.shard.update(qe.UpdateOperation.create_field_index(name, store._keyword_schema()))
    assert _sparse_index_types(path) - {"MutableRam"} == {"ImmutableRam"}

    def found(s: EdgeStore) -> list[object]:
        return [[(h.id, round(h.score, 5)) for h in hits] for hits in (
            s.search_dense(vectors[5].tolist(), 50, match={"source": "/d/2.txt"}),
            s.search_sparse([5, 55], [1.0, 1.0], 20))]

    expected = found(store)
    store.close()
    moved = EdgeStore(path, StoreConfig(**ON_DISK_INDEXES))
    assert found(moved) == expected and len(expected[0]) == 50
    moved.optimize()
    assert found(moved) == expected
    moved.close()
    assert _sparse_index_types(path) - {"MutableRam"} == {"Mmap"}
    assert _edge_payload_placement(path) == {"source": True, "file_type": True, "origin": True}
    assert json.loads((path / "edge_config.json").read_text())["sparse_vectors"][SPARSE]["on_disk"] is True

    back = EdgeStore(path, StoreConfig(sparse_index_on_disk=False, payload_index_on_disk=False))
    back.optimize()
    assert found(back) == expected and back.count() == 3000
    back.close()
    assert _sparse_index_types(path) - {"MutableRam"} == {"ImmutableRam"}
    assert _edge_payload_placement(path) == {"source": False, "file_type": False, "origin": False}


def test_server_indexes_on_disk_in_the_request_and_in_place() -> None:
    store = _server("indexes", **ON_DISK_INDEXES)
    request = store.create_request(8)
    assert request["sparse_vectors_config"] == {SPARSE: models.SparseVectorParams(
        modifier=models.Modifier.IDF, index=models.SparseIndexParams(on_disk=True))}
    assert store._keyword_schema() == models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, on_disk=True)
    store.create(8)  # local mode takes the on-disk keyword params (it warns that it ignores payload indexes)
    store.upsert(_points(10, 8)[1])
    info = store.client.get_collection(store.name)
    assert info.config.params.sparse_vectors[SPARSE].index.on_disk is True
    # reopened with the sparse index in RAM: updated in place (the modifier kept)
    again = ServerStore(StoreConfig(backend="qdrant", url=":memory:", sparse_index_on_disk=False),
                        store.name.removeprefix("rag_"))
    assert again.count() == 10
    sparse = store.client.get_collection(store.name).config.params.sparse_vectors[SPARSE]
    assert sparse.index.on_disk is False and sparse.modifier == models.Modifier.IDF
    store.drop()


def test_server_payload_indexes_that_differ_are_named() -> None:
    """What a server reports for each payload index decides which are rebuilt (local mode reports none)."""
    def reported(on_disk: bool | None) -> models.PayloadIndexInfo:
        params = None if on_disk is None else models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, on_disk=on_disk)
        return models.PayloadIndexInfo(data_type=models.PayloadSchemaType.KEYWORD, params=params, points=0)

    schema = {"source": reported(None), "file_type": reported(True), "origin": reported(False)}
    fields = ("source", "file_type", "origin")
    assert payload_index_drift(StoreConfig(payload_index_on_disk=True), schema, fields) == ("source", "origin")
    assert payload_index_drift(StoreConfig(payload_index_on_disk=False), schema, fields) == ("file_type",)
    assert payload_index_drift(StoreConfig(), schema, fields) == ()
    assert payload_index_drift(StoreConfig(payload_index_on_disk=True), {}, fields) == ()
