"""Large-collection settings of ``[store]``, translated for each backend (docs/scale.md).

Pure functions: what a collection is created with, what each dense search asks for, and how an
existing collection's stored settings compare with the configuration. An unset setting (None)
leaves the engine's default at creation and is never compared with an existing collection, so
the defaults send exactly what was sent before these settings existed.

What cannot change on an existing collection (a server collection's ``shard_number`` and
``replication_factor``; an embedded collection's quantization, once made, cannot be removed) is
reported as a :class:`StoreError`; the rest is applied in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rag.core.config import StoreConfig
from rag.core.errors import ConfigError, StoreError

# Qdrant's defaults, used to compare a stored value that was never set with a configured one,
# and to fill the HNSW fields the embedded engine requires together.
HNSW_M = 16
HNSW_EF_CONSTRUCT = 100
HNSW_FULL_SCAN_THRESHOLD = 10_000
ON_DISK_VECTORS = False
ON_DISK_PAYLOAD = True  # measured: the embedded engine memory-maps payloads when nothing is said
SPARSE_INDEX_ON_DISK = False  # both engines read the sparse inverted index into RAM when nothing is said

CLUSTER_SETTINGS = ("shard_number", "replication_factor", "write_consistency_factor")


@dataclass(frozen=True, slots=True)
class Drift:
    """How an existing collection differs from the configuration."""

    fixed: tuple[str, ...] = ()  # differences Qdrant cannot change in place, one phrase each
    changes: tuple[str, ...] = ()  # differences applied in place, one phrase each
    update: Mapping[str, Any] = field(default_factory=dict)  # the server's update_collection arguments


def collection_settings_set(config: StoreConfig) -> bool:
    """Whether any setting that shapes a collection (not only its searches) is set."""
    return any(
        getattr(config, key) is not None
        for key in ("hnsw_m", "hnsw_ef_construct", "on_disk_vectors", "on_disk_payload", "quantization",
                    "quantization_always_ram", "sparse_index_on_disk", "payload_index_on_disk", *CLUSTER_SETTINGS)
    )


def check_embedded(config: StoreConfig) -> None:
    """Refuse cluster settings on the embedded engine, which keeps a collection in one shard on one machine."""
    wrong = [f"{key} = {getattr(config, key)}" for key in CLUSTER_SETTINGS if (getattr(config, key) or 1) > 1]
    if wrong:
        raise ConfigError(
            f"[store] {', '.join(wrong)} applies only to a Qdrant server: the embedded engine (backend = \"edge\") "
            "keeps a collection in one shard on one machine; remove the setting, or set backend = \"qdrant\" and "
            "url (see docs/scale.md)"
        )


def search_params(config: StoreConfig, search_cls: Any, quantization_cls: Any) -> Any:
    """Dense-search parameters (``hnsw_ef``, int8 rescoring) for either backend's classes; None when none are set."""
    quantization = None
    if config.quantization == "int8":
        quantization = quantization_cls(
            rescore=config.quantization_rescore, oversampling=config.quantization_oversampling
        )
    if config.hnsw_ef is None and quantization is None:
        return None
    return search_cls(hnsw_ef=config.hnsw_ef, quantization=quantization)


# -- a Qdrant server (qdrant-client) -------------------------------------------------------------


def server_collection_options(config: StoreConfig, models: Any) -> dict[str, Any]:
    """The ``create_collection`` arguments the settings add, besides the vectors (only those set)."""
    options: dict[str, Any] = {}
    hnsw = {k: v for k, v in (("m", config.hnsw_m), ("ef_construct", config.hnsw_ef_construct)) if v is not None}
    if hnsw:
        options["hnsw_config"] = models.HnswConfigDiff(**hnsw)
    if config.quantization == "int8":
        options["quantization_config"] = _server_int8(config, models)
    for key in ("on_disk_payload", *CLUSTER_SETTINGS):
        if getattr(config, key) is not None:
            options[key] = getattr(config, key)
    return options


def server_sparse_params(config: StoreConfig, models: Any) -> Any:
    """The sparse vector's params: Qdrant's IDF modifier, and the index placement when set."""
    if config.sparse_index_on_disk is None:
        return models.SparseVectorParams(modifier=models.Modifier.IDF)
    return models.SparseVectorParams(
        modifier=models.Modifier.IDF, index=models.SparseIndexParams(on_disk=config.sparse_index_on_disk))


def keyword_schema(config: StoreConfig, keyword_type: Any, params_cls: Any, **kind: Any) -> Any:
    """A keyword payload index's schema for either backend: the plain type, or params with the placement."""
    if config.payload_index_on_disk is None:
        return keyword_type
    return params_cls(**kind, on_disk=config.payload_index_on_disk)


def index_on_disk(params: Any) -> bool:
    """Whether a payload index's (or sparse index's) reported params put it on disk (either backend)."""
    if params is None:
        return False
    memory = getattr(params, "memory", None)
    if memory is not None:
        return str(getattr(memory, "value", memory)).lower().split(".")[-1] in ("cold", "cached")
    return bool(getattr(params, "on_disk", False))


def payload_index_drift(config: StoreConfig, schema: Mapping[str, Any], fields: tuple[str, ...]) -> tuple[str, ...]:
    """The payload indexes (of ``fields``) whose placement differs from ``[store] payload_index_on_disk``.

    ``schema``: the collection's payload schema (name -> info with ``params``); an index the
    collection lacks is not reported (it is created with the setting).
    """
    wanted = config.payload_index_on_disk
    if wanted is None:
        return ()
    return tuple(name for name in fields if name in schema
                 and index_on_disk(getattr(schema[name], "params", None)) != wanted)


def _server_int8(config: StoreConfig, models: Any) -> Any:
    return models.ScalarQuantization(
        scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=config.quantization_always_ram)
    )


def _quantization_name(stored: Any) -> str:
    """'none', 'int8', or the kind of another quantization, from a stored config (server model or edge JSON)."""
    if stored is None:
        return "none"
    if isinstance(stored, Mapping):
        scalar = stored.get("scalar")
        if scalar is not None:
            return str(scalar.get("type", "int8")).lower()
        return next(iter(stored), "other")
    scalar = getattr(stored, "scalar", None)
    if scalar is not None:
        return str(getattr(scalar.type, "value", scalar.type)).lower()
    return type(stored).__name__


def _always_ram(stored: Any) -> bool | None:
    if isinstance(stored, Mapping):
        return (stored.get("scalar") or {}).get("always_ram")
    scalar = getattr(stored, "scalar", None)
    return getattr(scalar, "always_ram", None)


def _differs(stored: Any, wanted: Any) -> bool:
    return wanted is not None and stored != wanted


def server_drift(config: StoreConfig, info: Any, models: Any, dense: str, sparse_name: str = "") -> Drift:
    """Compare a server collection (``get_collection``'s answer) with the settings that are set.

    A value the server does not report (None; qdrant-client's local mode keeps none of these)
    is not compared.
    """
    params = info.config.params
    fixed: list[str] = []
    changes: list[str] = []
    update: dict[str, Any] = {}

    for key, why in (("shard_number", "fixed when the collection is created"),
                     ("replication_factor", "changing it does not copy existing shards")):
        stored, wanted = getattr(params, key, None), getattr(config, key)
        if stored is not None and _differs(stored, wanted):
            fixed.append(f"{key} is {stored}, [store] asks for {wanted} ({why})")

    collection_diff: dict[str, Any] = {}
    for key in ("write_consistency_factor", "on_disk_payload"):
        stored, wanted = getattr(params, key, None), getattr(config, key)
        if stored is not None and _differs(stored, wanted):
            collection_diff[key] = wanted
            changes.append(f"{key} {stored} -> {wanted}")
    if collection_diff:
        update["collection_params"] = models.CollectionParamsDiff(**collection_diff)

    vectors = params.vectors if isinstance(params.vectors, Mapping) else {}
    vector = vectors.get(dense)
    if vector is not None and config.on_disk_vectors is not None:
        stored_on_disk = ON_DISK_VECTORS if vector.on_disk is None else vector.on_disk
        if stored_on_disk != config.on_disk_vectors:
            update["vectors_config"] = {dense: models.VectorParamsDiff(on_disk=config.on_disk_vectors)}
            changes.append(f"on_disk_vectors {stored_on_disk} -> {config.on_disk_vectors}")

    sparse = (params.sparse_vectors or {}).get(sparse_name) if sparse_name else None
    if sparse is not None and config.sparse_index_on_disk is not None:
        stored_sparse = index_on_disk(getattr(sparse, "index", None))
        if stored_sparse != config.sparse_index_on_disk:
            update["sparse_vectors_config"] = {
                sparse_name: models.SparseVectorParams(
                    modifier=models.Modifier.IDF, index=models.SparseIndexParams(on_disk=config.sparse_index_on_disk))}
            changes.append(f"sparse_index_on_disk {stored_sparse} -> {config.sparse_index_on_disk}")

    hnsw = info.config.hnsw_config
    hnsw_diff: dict[str, int] = {}
    for key, wanted in (("m", config.hnsw_m), ("ef_construct", config.hnsw_ef_construct)):
        stored = getattr(hnsw, key, None)
        if stored is not None and _differs(stored, wanted):
            hnsw_diff[key] = wanted  # type: ignore[assignment]
            changes.append(f"hnsw_{key} {stored} -> {wanted}")
    if hnsw_diff:
        update["hnsw_config"] = models.HnswConfigDiff(**hnsw_diff)

    stored_q = info.config.quantization_config
    if config.quantization == "none" and stored_q is not None:
        update["quantization_config"] = models.Disabled.DISABLED
        changes.append(f"quantization {_quantization_name(stored_q)} -> none")
    elif config.quantization == "int8" and (
        _quantization_name(stored_q) != "int8" or _differs(_always_ram(stored_q), config.quantization_always_ram)
    ):
        update["quantization_config"] = _server_int8(config, models)
        changes.append(f"quantization {_quantization_name(stored_q)} -> int8")
    return Drift(fixed=tuple(fixed), changes=tuple(changes), update=update)


def fixed_error(name: str, where: str, fixed: tuple[str, ...], recreate: str) -> StoreError:
    """The error for settings an existing collection cannot take; ``recreate`` says how to start it anew."""
    return StoreError(
        f"collection '{name}' at {where} cannot take the [store] settings: {'; '.join(fixed)}. Set them in "
        f"[store] to the collection's values to keep it, or {recreate} and run `rag ingest` again, which "
        "re-creates it with the new settings and re-ingests every file (see docs/scale.md)"
    )


# -- the embedded engine (qdrant-edge) ------------------------------------------------------------


def _edge_view(stored: Mapping[str, Any], dense: str, sparse: str = "") -> dict[str, Any]:
    """The settings an embedded collection's ``edge_config.json`` holds, with engine defaults filled in."""
    vector = (stored.get("vectors") or {}).get(dense) or {}
    hnsw = stored.get("hnsw_config") or {}
    quantization = stored.get("quantization_config")
    return {
        "on_disk_vectors": vector.get("on_disk", ON_DISK_VECTORS) or False,
        "on_disk_payload": stored.get("on_disk_payload", ON_DISK_PAYLOAD),
        "hnsw_m": hnsw.get("m", HNSW_M),
        "hnsw_ef_construct": hnsw.get("ef_construct", HNSW_EF_CONSTRUCT),
        "quantization": _quantization_name(quantization),
        "quantization_always_ram": _always_ram(quantization),
        "sparse_index_on_disk": _edge_sparse_on_disk(stored, sparse),
    }


def _edge_sparse_on_disk(stored: Mapping[str, Any], sparse: str) -> bool:
    params = (stored.get("sparse_vectors") or {}).get(sparse) or {}
    if params.get("memory") is not None:
        return str(params["memory"]).lower() in ("cold", "cached")
    return bool(params.get("on_disk", SPARSE_INDEX_ON_DISK))


def edge_drift(config: StoreConfig, stored: Mapping[str, Any], dense: str, sparse: str = "") -> Drift:
    """How an embedded collection differs from the settings that are set.

    The engine rewrites its config when a shard is loaded with a new one, but keeps a top-level
    setting it is given no value for: quantization, once built, cannot be removed in place.
    """
    have = _edge_view(stored, dense, sparse)
    fixed: list[str] = []
    changes: list[str] = []
    for key, value in have.items():
        wanted = getattr(config, key)
        if key == "quantization_always_ram" and config.quantization != "int8":
            continue
        if not _differs(value, wanted):
            continue
        if key == "quantization" and wanted == "none":
            fixed.append(f"quantization is {value}, [store] asks for none (the embedded engine cannot remove it)")
        else:
            changes.append(f"{key} {value} -> {wanted}")
    return Drift(fixed=tuple(fixed), changes=tuple(changes))


def edge_config(config: StoreConfig, qe: Any, dense: str, sparse: str, dimensions: int,
                stored: Mapping[str, Any] | None = None) -> Any:
    """The engine's ``EdgeConfig``: the settings that are set, over ``stored`` (an existing collection's) for the rest.

    With nothing set and nothing stored it is exactly the project schema the store always created.
    """
    stored = stored or {}
    vector = (stored.get("vectors") or {}).get(dense) or {}
    on_disk = config.on_disk_vectors if config.on_disk_vectors is not None else vector.get("on_disk")
    on_disk_payload = config.on_disk_payload if config.on_disk_payload is not None else stored.get("on_disk_payload")
    sparse_stored = (stored.get("sparse_vectors") or {}).get(sparse) or {}
    sparse_on_disk = (config.sparse_index_on_disk if config.sparse_index_on_disk is not None
                      else (_edge_sparse_on_disk(stored, sparse) if sparse_stored.keys() & {"on_disk", "memory"} else None))

    hnsw_stored = dict(stored.get("hnsw_config") or {})
    hnsw = None
    if hnsw_stored or config.hnsw_m is not None or config.hnsw_ef_construct is not None:
        hnsw = qe.HnswIndexConfig(
            m=config.hnsw_m if config.hnsw_m is not None else hnsw_stored.get("m", HNSW_M),
            ef_construct=(config.hnsw_ef_construct if config.hnsw_ef_construct is not None
                          else hnsw_stored.get("ef_construct", HNSW_EF_CONSTRUCT)),
            full_scan_threshold=hnsw_stored.get("full_scan_threshold", HNSW_FULL_SCAN_THRESHOLD),
            max_indexing_threads=hnsw_stored.get("max_indexing_threads", 0),
        )

    quantization = None
    stored_q = stored.get("quantization_config")
    kind = config.quantization or _quantization_name(stored_q)
    if kind == "int8":
        always_ram = (config.quantization_always_ram if config.quantization == "int8"
                      and config.quantization_always_ram is not None else _always_ram(stored_q))
        quantization = qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, always_ram=always_ram)
    elif kind != "none":
        raise StoreError(
            f"the embedded collection uses {kind} quantization, which rag did not create and cannot keep while "
            "changing other [store] settings; set quantization = \"none\" or \"int8\", or leave the settings as they are"
        )

    return qe.EdgeConfig(
        vectors={dense: qe.EdgeVectorParams(size=dimensions, distance=qe.Distance.Cosine, on_disk=on_disk)},
        sparse_vectors={sparse: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf, on_disk=sparse_on_disk)},
        on_disk_payload=on_disk_payload,
        hnsw_config=hnsw,
        quantization_config=quantization,
    )
