"""Vector storage in Qdrant: the embedded engine (qdrant-edge) or a Qdrant server (qdrant-client).

Both backends hold one schema: a named dense vector ``dense`` (cosine), a named
sparse vector ``bm25`` with Qdrant's IDF modifier, and a payload with the chunk
text and metadata, indexed on ``source`` and ``file_type``. The rest of the
project talks only to the :class:`VectorStore` protocol. The large-collection settings of
``[store]`` (HNSW, on-disk, quantization, shards) are translated in ``rag/core/store_tuning.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol, Sequence

from rag.core.config import StoreConfig
from rag.core.disk import disk_full, ensure_free
from rag.core.errors import StoreError, StoreLockedError
from rag.core.redact import mask_secrets
from rag.core.store_tuning import (
    check_embedded,
    collection_settings_set,
    edge_config,
    edge_drift,
    fixed_error,
    keyword_schema,
    payload_index_drift,
    search_params,
    server_collection_options,
    server_drift,
    server_sparse_params,
)

DENSE = "dense"
SPARSE = "bm25"
INDEXED_FIELDS = ("source", "file_type", "origin")
SCROLL_BATCH = 1024
ORIGIN = "origin"  # payload key: the source id of the writer that stored a chunk (absent: the default, "")


class _Empty:
    """A match value: the field is missing, null or empty."""

    def __repr__(self) -> str:
        return "EMPTY"


EMPTY = _Empty()

# A neutral filter: every key must match; a list value matches any of its items; EMPTY, no value.
Match = Mapping[str, "str | int | bool | Sequence[str] | _Empty"]


@dataclass(frozen=True, slots=True)
class StoredPoint:
    """A chunk as the store keeps it."""

    id: str
    dense: Sequence[float]
    sparse_indices: Sequence[int]
    sparse_values: Sequence[float]
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result from the store."""

    id: str
    score: float
    payload: Mapping[str, Any]


class VectorStore(Protocol):
    """What the pipeline and the retrievers need from a Qdrant collection."""

    location: str

    def exists(self) -> bool: ...
    def create(self, dimensions: int) -> None: ...
    def upsert(self, points: Sequence[StoredPoint]) -> None: ...
    def vectors(self, ids: Sequence[str]) -> dict[str, tuple[list[float], list[int], list[float]]]: ...
    def delete_source(self, source: str, keep_version: str | None = None, origin: str = "") -> None: ...
    def scroll(
        self, with_payload: bool = True, match: Match | None = None
    ) -> Iterator[tuple[str, Mapping[str, Any]]]: ...
    def payloads(self, ids: Sequence[str]) -> dict[str, Mapping[str, Any]]: ...
    def count(self) -> int: ...
    def search_dense(self, vector: Sequence[float], limit: int, match: Match | None = None) -> list[Hit]: ...
    def search_sparse(
        self, indices: Sequence[int], values: Sequence[float], limit: int, match: Match | None = None
    ) -> list[Hit]: ...
    def flush(self) -> None: ...
    def optimize(self) -> None: ...
    def close(self) -> None: ...
    def drop(self) -> None: ...


def _build_filter(
    match: Match | None, must_not: Match | None, make_filter: Any, any_of: Any, equals: Any, is_empty: Any
) -> Any:
    """Translate neutral matches into a backend's Filter (a list value matches any of its items)."""

    def conditions(m: Match | None) -> list[Any] | None:
        if not m:
            return None
        return [
            is_empty(key) if value is EMPTY
            else any_of(key, list(value)) if isinstance(value, (list, tuple)) else equals(key, value)
            for key, value in m.items()
        ]

    if not match and not must_not:
        return None
    return make_filter(must=conditions(match), must_not=conditions(must_not))


def _stale_condition(source: str, keep_version: str | None, origin: str) -> tuple[Match, Match | None]:
    """A source's points of one writer (``origin``; "" is the default writer, whose points carry none)."""
    return {"source": source, ORIGIN: origin or EMPTY}, ({"version": keep_version} if keep_version else None)


_OPEN_SHARDS: dict[str, list[Any]] = {}  # path -> [shard, number of EdgeStore objects using it]


class EdgeStore:
    """The embedded default: Qdrant's own engine in-process (qdrant-edge-py), on local disk.

    The engine locks its write-ahead log per process, so EdgeStore objects on the same
    path within one process share one open shard. The first to open it applies the ``[store]``
    settings that differ from the collection's (the engine rewrites its config; HNSW and
    quantization are built by :meth:`optimize`).
    """

    def __init__(self, path: Path, config: StoreConfig | None = None) -> None:
        import qdrant_edge as qe

        self._qe = qe
        self.config = config or StoreConfig()
        check_embedded(self.config)
        self._search_params = search_params(self.config, qe.SearchParams, qe.QuantizationSearchParams)
        self.path = path
        self.location = str(path)
        self._shard: Any = None
        if self.exists():
            self._shard = self._load()
            self._apply_payload_indexes()

    def _damaged(self, exc: BaseException) -> StoreError:
        text = str(exc)
        if "No space left" in text or "ENOSPC" in text:
            return disk_full(self.path)
        return StoreError(
            f"the store of collection '{self.path.parent.name}' at {self.path} is damaged ({text[:200]}); "
            f"run `rag doctor` to check it, then re-ingest the collection"
        )

    def _engine(self, fn: Any, *args: Any) -> Any:
        """Call the engine; its errors (a damaged segment, a full disk) become one-line StoreErrors."""
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - the engine raises plain Exception
            raise self._damaged(exc) from None

    def _load(self) -> Any:
        key = str(self.path.resolve())
        if key in _OPEN_SHARDS:
            _OPEN_SHARDS[key][1] += 1
            return _OPEN_SHARDS[key][0]
        ensure_free(self.path)  # the engine maps files: on a full disk it would die of SIGBUS, not raise
        new_config = self._settings_to_apply()
        try:
            if new_config is None:
                shard = self._qe.EdgeShard.load(str(self.path))
            else:
                shard = self._qe.EdgeShard.load(str(self.path), new_config)
            _OPEN_SHARDS[key] = [shard, 1]
            return shard
        except Exception as exc:  # noqa: BLE001 - the engine raises plain Exception
            if "WouldBlock" in str(exc):
                raise StoreLockedError(
                    f"the store at {self.path} is open in another process (an ingest may be running); "
                    "wait for it to finish and try again"
                ) from None
            if "incompatible" in str(exc).lower():
                raise StoreError(
                    f"the store at {self.path} cannot take the [store] settings: {str(exc)[:200]}; set them back, "
                    f"or delete the folder {self.path} and run `rag ingest` again"
                ) from None
            raise self._damaged(exc) from None

    def _settings_to_apply(self) -> Any:
        """The engine config to reopen with when ``[store]`` asks for settings the collection lacks, else None."""
        if not collection_settings_set(self.config):
            return None
        try:
            stored = json.loads((self.path / "edge_config.json").read_text(encoding="utf-8"))
            dimensions = int(stored["vectors"][DENSE]["size"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # no readable config: open as it is; a damaged store is reported by the engine
        drift = edge_drift(self.config, stored, DENSE, SPARSE)
        if drift.fixed:
            raise fixed_error(self.path.parent.name, str(self.path), drift.fixed, f"delete the folder {self.path}")
        if not drift.changes:
            return None
        return edge_config(self.config, self._qe, DENSE, SPARSE, dimensions, stored)

    def exists(self) -> bool:
        """Whether the collection has been created."""
        return (self.path / "edge_config.json").exists() or (self.path / "segments").is_dir()

    def create(self, dimensions: int) -> None:
        """Create the collection with the project schema."""
        qe = self._qe
        ensure_free(self.path.parent)
        self.path.mkdir(parents=True, exist_ok=True)
        config = edge_config(self.config, qe, DENSE, SPARSE, dimensions)
        self._shard = qe.EdgeShard.create(str(self.path), config)
        _OPEN_SHARDS[str(self.path.resolve())] = [self._shard, 1]
        for name in INDEXED_FIELDS:
            self._shard.update(qe.UpdateOperation.create_field_index(name, self._keyword_schema()))
        self._shard.flush()

    def _keyword_schema(self) -> Any:
        return keyword_schema(self.config, self._qe.PayloadSchemaType.Keyword, self._qe.KeywordIndexParams)

    def _apply_payload_indexes(self) -> None:
        """Rebuild the payload indexes whose placement differs from ``[store] payload_index_on_disk``."""
        if self.config.payload_index_on_disk is None:
            return
        qe = self._qe
        info = self._engine(self._shard.info)
        for name in payload_index_drift(self.config, info.payload_schema, INDEXED_FIELDS):
            self._engine(self._shard.update, qe.UpdateOperation.delete_field_index(name))
            self._engine(self._shard.update, qe.UpdateOperation.create_field_index(name, self._keyword_schema()))

    @property
    def shard(self) -> Any:
        if self._shard is None:
            raise StoreError(f"no collection at {self.path}; run `rag ingest` first")
        return self._shard

    def _filter(self, match: Match | None, must_not: Match | None = None) -> Any:
        qe = self._qe
        return _build_filter(
            match, must_not, qe.Filter,
            lambda key, values: qe.FieldCondition(key=key, match=qe.MatchAny(values)),
            lambda key, value: qe.FieldCondition(key=key, match=qe.MatchValue(value)),
            lambda key: qe.IsEmptyCondition(key=key),
        )

    def upsert(self, points: Sequence[StoredPoint]) -> None:
        """Insert or replace points by id."""
        qe = self._qe
        if not points:
            return
        self._engine(
            self.shard.update,
            qe.UpdateOperation.upsert_points(
                [
                    qe.Point(
                        id=p.id,
                        vector={
                            DENSE: [float(x) for x in p.dense],
                            SPARSE: qe.SparseVector(indices=list(p.sparse_indices), values=list(p.sparse_values)),
                        },
                        payload=dict(p.payload),
                    )
                    for p in points
                ]
            ),
        )

    def vectors(self, ids: Sequence[str]) -> dict[str, tuple[list[float], list[int], list[float]]]:
        """Stored vectors of those ids that exist."""
        out: dict[str, tuple[list[float], list[int], list[float]]] = {}
        for start in range(0, len(ids), SCROLL_BATCH):
            records = self._engine(
                self.shard.retrieve, list(ids[start:start + SCROLL_BATCH]), False, True
            )
            for rec in records:
                sparse = rec.vector.get(SPARSE)
                out[str(rec.id)] = (
                    list(rec.vector[DENSE]),
                    list(sparse.indices) if sparse else [],
                    [float(v) for v in sparse.values] if sparse else [],
                )
        return out

    def delete_source(self, source: str, keep_version: str | None = None, origin: str = "") -> None:
        """Delete a source's points of writer ``origin``, except those already rewritten with ``version`` = ``keep_version``."""
        must, must_not = _stale_condition(source, keep_version, origin)
        self._engine(self.shard.update, self._qe.UpdateOperation.delete_points_by_filter(self._filter(must, must_not)))

    def scroll(
        self, with_payload: bool = True, match: Match | None = None
    ) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """Every point id (and payload) matching ``match``, in id order."""
        offset = None
        flt = self._filter(match)
        while True:
            records, offset = self._engine(
                self.shard.scroll,
                self._qe.ScrollRequest(
                    offset=offset, limit=SCROLL_BATCH, with_payload=with_payload, with_vector=False, filter=flt
                ),
            )
            for rec in records:
                yield str(rec.id), (rec.payload or {})
            if offset is None:
                break

    def payloads(self, ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """Payloads of those ids that exist."""
        out: dict[str, Mapping[str, Any]] = {}
        for start in range(0, len(ids), SCROLL_BATCH):
            records = self._engine(self.shard.retrieve, list(ids[start:start + SCROLL_BATCH]), True, False)
            for rec in records:
                out[str(rec.id)] = rec.payload or {}
        return out

    def count(self) -> int:
        """Number of points."""
        if self._shard is None:
            return 0
        return int(self._engine(self._shard.count, self._qe.CountRequest(exact=True)))

    def _hits(self, points: Any) -> list[Hit]:
        return [Hit(id=str(p.id), score=float(p.score), payload=p.payload or {}) for p in points]

    def search_dense(self, vector: Sequence[float], limit: int, match: Match | None = None) -> list[Hit]:
        """Nearest chunks by cosine similarity."""
        qe = self._qe
        request = qe.QueryRequest(
            limit=limit,
            with_payload=True,
            query=qe.Query.Nearest([float(x) for x in vector], using=DENSE),
            filter=self._filter(match),
            params=self._search_params,
        )
        return self._hits(self._engine(self.shard.query, request))

    def search_sparse(
        self, indices: Sequence[int], values: Sequence[float], limit: int, match: Match | None = None
    ) -> list[Hit]:
        """Best chunks by sparse dot product with the store's IDF modifier (BM25 inside the engine)."""
        qe = self._qe
        if not indices:
            return []
        request = qe.QueryRequest(
            limit=limit,
            with_payload=True,
            query=qe.Query.Nearest(qe.SparseVector(indices=list(indices), values=list(values)), using=SPARSE),
            filter=self._filter(match),
        )
        return self._hits(self._engine(self.shard.query, request))

    def flush(self) -> None:
        """Persist pending changes."""
        if self._shard is not None:
            self._engine(self._shard.flush)

    def optimize(self) -> None:
        """Merge segments and build the HNSW graph (and int8 vectors) with the collection's settings; blocks.

        Until it runs, the embedded engine searches by exact brute force and the HNSW and
        quantization settings have no effect.
        """
        if self._shard is not None:
            self._engine(self._shard.optimize)

    def close(self) -> None:
        """Flush and release the engine (and its WAL lock) once no other user in this process holds it."""
        if self._shard is not None:
            self._engine(self._shard.flush)
            entry = _OPEN_SHARDS.get(str(self.path.resolve()))
            if entry is not None and entry[0] is self._shard:
                entry[1] -= 1
                if entry[1] <= 0:
                    del _OPEN_SHARDS[str(self.path.resolve())]
                    self._shard.close()
            else:
                self._shard.close()
            self._shard = None

    def drop(self) -> None:
        """Delete the collection's files."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)


_MEMORY_CLIENTS: dict[str, Any] = {}


class ServerStore:
    """A collection on a Qdrant server (or qdrant-client's local ``:memory:`` mode, used by tests)."""

    def __init__(self, config: StoreConfig, collection: str) -> None:
        from qdrant_client import QdrantClient, models

        self._models = models
        self.config = config
        self._search_params = search_params(config, models.SearchParams, models.QuantizationSearchParams)
        self._checked = not collection_settings_set(config)  # compared with the collection on first use
        self.name = f"{config.collection_prefix}{collection}"
        self._secrets: list[str] = []
        url = config.url.strip()
        if not url:
            raise StoreError("store backend 'qdrant' needs a server URL; set [store] url (or RAG_STORE_URL)")
        if url == ":memory:":
            self.client = _MEMORY_CLIENTS.setdefault(url, QdrantClient(location=":memory:"))
        else:
            api_key = os.environ.get(config.api_key_env) or None
            self._secrets = [api_key] if api_key else []
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self.client = QdrantClient(url=url, api_key=api_key, timeout=int(config.timeout_s))
            for w in caught:  # e.g. "Api key is used with an insecure connection": re-issued without the source line
                warnings.warn(mask_secrets(str(w.message), self._secrets), w.category, stacklevel=2)
        self.location = f"{url} (collection {self.name})"
        self._url = url

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._checked:
            self._checked = True
            self._apply_settings()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = fn(*args, **kwargs)
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - network and server errors become one clear line
            detail = mask_secrets(" ".join(str(exc).split()), self._secrets)  # servers may echo the request
            raise StoreError(
                f"Qdrant server at {self._url} failed: {type(exc).__name__}: {detail[:200]}; "
                "check that it runs (docker compose up -d) and that [store] url is right"
            ) from None
        for w in caught:
            warnings.warn(mask_secrets(str(w.message), self._secrets), w.category, stacklevel=2)
        return result

    def _apply_settings(self) -> None:
        """Compare an existing collection with the ``[store]`` settings that are set: refuse what cannot
        change (shards, replicas), update the rest in place (``update_collection``)."""
        if not self._call(self.client.collection_exists, self.name):
            return
        info = self._call(self.client.get_collection, self.name)
        drift = server_drift(self.config, info, self._models, DENSE, SPARSE)
        if drift.fixed:
            raise fixed_error(self.name, self._url, drift.fixed,
                              f"delete it on the server (DELETE {self._url}/collections/{self.name})")
        if drift.update:
            self._call(self.client.update_collection, self.name, **drift.update)
        for name in payload_index_drift(self.config, info.payload_schema or {}, INDEXED_FIELDS):
            self._call(self.client.delete_payload_index, self.name, name)
            self._call(self.client.create_payload_index, self.name, name, self._keyword_schema())

    def _keyword_schema(self) -> Any:
        m = self._models
        return keyword_schema(self.config, m.PayloadSchemaType.KEYWORD, m.KeywordIndexParams, type=m.KeywordIndexType.KEYWORD)

    def exists(self) -> bool:
        """Whether the collection exists on the server."""
        return bool(self._call(self.client.collection_exists, self.name))

    def create_request(self, dimensions: int) -> dict[str, Any]:
        """The ``create_collection`` arguments: the project schema and the ``[store]`` settings that are set."""
        m = self._models
        return {
            "vectors_config": {
                DENSE: m.VectorParams(size=dimensions, distance=m.Distance.COSINE, on_disk=self.config.on_disk_vectors)
            },
            "sparse_vectors_config": {SPARSE: server_sparse_params(self.config, m)},
            **server_collection_options(self.config, m),
        }

    def create(self, dimensions: int) -> None:
        """Create the collection with the project schema (another writer may have created it a moment before)."""
        try:
            self._call(self.client.create_collection, self.name, **self.create_request(dimensions))
        except StoreError:
            if not self.exists():  # two writers starting at once: the one that lost the race uses the collection
                raise
        for name in INDEXED_FIELDS:
            self._call(self.client.create_payload_index, self.name, name, self._keyword_schema())

    def _filter(self, match: Match | None, must_not: Match | None = None) -> Any:
        m = self._models
        return _build_filter(
            match, must_not, m.Filter,
            lambda key, values: m.FieldCondition(key=key, match=m.MatchAny(any=values)),
            lambda key, value: m.FieldCondition(key=key, match=m.MatchValue(value=value)),
            lambda key: m.IsEmptyCondition(is_empty=m.PayloadField(key=key)),
        )

    def upsert(self, points: Sequence[StoredPoint]) -> None:
        """Insert or replace points by id (waits for the server to apply them)."""
        m = self._models
        if not points:
            return
        structs = [
            m.PointStruct(
                id=p.id,
                vector={
                    DENSE: [float(x) for x in p.dense],
                    SPARSE: m.SparseVector(indices=list(p.sparse_indices), values=list(p.sparse_values)),
                },
                payload=dict(p.payload),
            )
            for p in points
        ]
        self._call(self.client.upsert, self.name, points=structs, wait=True)

    def vectors(self, ids: Sequence[str]) -> dict[str, tuple[list[float], list[int], list[float]]]:
        """Stored vectors of those ids that exist."""
        out: dict[str, tuple[list[float], list[int], list[float]]] = {}
        for start in range(0, len(ids), SCROLL_BATCH):
            records = self._call(
                self.client.retrieve, self.name, list(ids[start:start + SCROLL_BATCH]), with_payload=False, with_vectors=True
            )
            for rec in records:
                vec = rec.vector or {}
                sparse = vec.get(SPARSE)
                out[str(rec.id)] = (
                    list(vec[DENSE]),
                    list(sparse.indices) if sparse else [],
                    list(sparse.values) if sparse else [],
                )
        return out

    def delete_source(self, source: str, keep_version: str | None = None, origin: str = "") -> None:
        """Delete a source's points of writer ``origin``, except those already rewritten with ``version`` = ``keep_version``."""
        must, must_not = _stale_condition(source, keep_version, origin)
        selector = self._models.FilterSelector(filter=self._filter(must, must_not))
        self._call(self.client.delete, self.name, points_selector=selector, wait=True)

    def scroll(
        self, with_payload: bool = True, match: Match | None = None
    ) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """Every point id (and payload) matching ``match``, in id order."""
        offset = None
        flt = self._filter(match)
        while True:
            records, offset = self._call(
                self.client.scroll, self.name, scroll_filter=flt, limit=SCROLL_BATCH, offset=offset,
                with_payload=with_payload,
            )
            for rec in records:
                yield str(rec.id), (rec.payload or {})
            if offset is None:
                break

    def payloads(self, ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """Payloads of those ids that exist."""
        out: dict[str, Mapping[str, Any]] = {}
        for start in range(0, len(ids), SCROLL_BATCH):
            records = self._call(
                self.client.retrieve, self.name, list(ids[start:start + SCROLL_BATCH]), with_payload=True
            )
            for rec in records:
                out[str(rec.id)] = rec.payload or {}
        return out

    def count(self) -> int:
        """Number of points."""
        if not self.exists():
            return 0
        return int(self._call(self.client.count, self.name, exact=True).count)

    def _hits(self, response: Any) -> list[Hit]:
        return [Hit(id=str(p.id), score=float(p.score), payload=p.payload or {}) for p in response.points]

    def search_dense(self, vector: Sequence[float], limit: int, match: Match | None = None) -> list[Hit]:
        """Nearest chunks by cosine similarity."""
        response = self._call(
            self.client.query_points,
            self.name,
            query=[float(x) for x in vector],
            using=DENSE,
            limit=limit,
            with_payload=True,
            query_filter=self._filter(match),
            search_params=self._search_params,
        )
        return self._hits(response)

    def search_sparse(
        self, indices: Sequence[int], values: Sequence[float], limit: int, match: Match | None = None
    ) -> list[Hit]:
        """Best chunks by sparse dot product with the server's IDF modifier."""
        if not indices:
            return []
        response = self._call(
            self.client.query_points,
            self.name,
            query=self._models.SparseVector(indices=list(indices), values=list(values)),
            using=SPARSE,
            limit=limit,
            with_payload=True,
            query_filter=self._filter(match),
        )
        return self._hits(response)

    def flush(self) -> None:
        """Upserts already wait for the server; nothing to do."""

    def optimize(self) -> None:
        """The server's own optimizers build indexes in the background; nothing to do."""

    def close(self) -> None:
        """Close the connection (a shared :memory: client stays open)."""
        if self._url != ":memory:":
            self.client.close()

    def drop(self) -> None:
        """Delete the collection on the server."""
        if self.exists():
            self._call(self.client.delete_collection, self.name)


def writers(store: VectorStore) -> dict[str, dict[str, int]]:
    """Per writer of a collection (``[ingest] source_id``; "" the default): the files and chunks it stored.

    Reads every point's payload: a scan of the collection.
    """
    files: dict[str, set[str]] = {}
    chunks: dict[str, int] = {}
    for _, payload in store.scroll(with_payload=True):
        origin = str(payload.get(ORIGIN) or "")
        files.setdefault(origin, set()).add(str(payload.get("source", "")))
        chunks[origin] = chunks.get(origin, 0) + 1
    return {o: {"files": len(files[o]), "chunks": chunks[o]} for o in sorted(files)}


def open_store(config: StoreConfig, collection_dir: Path, collection: str) -> VectorStore:
    """The configured backend for one collection."""
    if config.backend == "edge":
        return EdgeStore(collection_dir / "qdrant", config)
    return ServerStore(config, collection)


def point_uuid(key: str) -> str:
    """A stable UUID for a key string (Qdrant ids must be integers or UUIDs)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "rag-chunk:" + key))
