"""Retrievers: the protocol, the records they return, and plugin discovery.

A retriever is anything with ``name`` and ``retrieve(query, k, filter)``. Built-in
and third-party retrievers are found the same way, through the entry-point group
``rag.retrievers``: each entry point names a factory ``factory(ctx) -> Retriever``.
A plugin that fails to load is reported by name and the others keep working.
Set ``RAG_RETRIEVERS=dense,bm25`` to restrict which plugins load.

The records a retriever works with, ``ScoredChunk`` and ``SearchFilter``, live in
``rag.core.records``; plugins may import them from here, with ``payload_chunk``.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

from rag.core.config import Settings
from rag.core.embed import Embedder
from rag.core.errors import ConfigError, RagError, StoreError
from rag.core.home import CollectionPaths, collection_paths
from rag.core.records import ScoredChunk, SearchFilter
from rag.core.store import Match, VectorStore, open_store

ENTRY_POINT_GROUP = "rag.retrievers"
FILTERABLE_FIELDS = ("source", "file_type", "page", "page_end", "chunk_index", "headings", "file_hash")
NUMERIC_FIELDS = ("page", "page_end", "chunk_index")


@runtime_checkable
class Retriever(Protocol):
    """Returns the top ``k`` chunks for a query, best first, with ``scores[name]`` and ``ranks[name]`` set."""

    name: str

    def retrieve(self, query: str, k: int, flt: SearchFilter | None = None) -> list[ScoredChunk]: ...


class RetrieverContext:
    """What a retriever factory may use: settings, the collection's store, embedder and BM25 index."""

    def __init__(self, settings: Settings, home: Path, collection: str, store: VectorStore | None = None) -> None:
        self.settings = settings
        self.home = home
        self.collection = collection
        self.paths: CollectionPaths = collection_paths(home, collection)
        self._store = store

    @cached_property
    def store(self) -> VectorStore:
        if self._store is None:
            if not self.paths.manifest.exists():
                raise StoreError(
                    f"collection '{self.collection}' does not exist under {self.home}; run `rag ingest PATH "
                    f"--collection {self.collection}` first"
                )
            self._store = open_store(self.settings.store, self.paths.root, self.collection)
        return self._store

    @cached_property
    def embedder(self) -> Embedder:
        from rag.core.embed import get_embedder

        cfg = self.settings.embedding
        return get_embedder(cfg.model, cfg.device, cfg.batch_size)

    @cached_property
    def sources(self) -> list[str]:
        """Every ingested source path (from the manifest), for glob filters."""
        from rag.core.manifest import Manifest

        manifest = Manifest(self.paths.manifest)
        try:
            return sorted(manifest.files())
        finally:
            manifest.close()

    def generation(self) -> int | None:
        """The collection's change counter (bumped by every ingest), None for a collection older than it."""
        from rag.core.bm25 import GENERATION
        from rag.core.manifest import Manifest

        if not self.paths.manifest.exists():
            return None
        manifest = Manifest(self.paths.manifest)
        try:
            raw = manifest.get_meta(GENERATION)
        finally:
            manifest.close()
        return None if raw is None else int(raw)

    def store_match(self, flt: SearchFilter | None) -> Match | None:
        """Translate a filter into store conditions (a glob becomes the matching source list)."""
        if flt is None or flt.is_empty():
            return None
        match: dict[str, Any] = dict(flt.fields)
        if flt.file_types:
            match["file_type"] = [t.lower().lstrip(".") for t in flt.file_types]
        if flt.source_globs:
            chosen = [s for s in self.sources if any(_glob(s, g) for g in flt.source_globs)]
            match["source"] = chosen or ["\x00no-match"]
        return match

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def _glob(source: str, pattern: str) -> bool:
    """Match a source path against a glob; a pattern without '/' also matches the file name."""
    if fnmatch.fnmatchcase(source, pattern):
        return True
    if "/" not in pattern:
        return fnmatch.fnmatchcase(os.path.basename(source), pattern)
    return fnmatch.fnmatchcase(source, "*/" + pattern.lstrip("/"))


def parse_filters(items: Sequence[str]) -> SearchFilter:
    """Parse ``--filter`` values: ``source=GLOB``, ``type=pdf`` (or ``file_type``), ``FIELD=VALUE``."""
    globs: list[str] = []
    types: list[str] = []
    fields: dict[str, str | int | bool] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ConfigError(f"bad filter {item!r}; use FIELD=VALUE, e.g. source='*.pdf' or type=md or page=3")
        if key in ("source", "path"):
            globs.append(value)
        elif key in ("type", "file_type"):
            types.append(value)
        elif key in NUMERIC_FIELDS:
            if not value.lstrip("-").isdigit():
                raise ConfigError(f"bad filter {item!r}: {key} is a number, e.g. {key}=3")
            fields[key] = int(value)
        elif key in FILTERABLE_FIELDS:
            fields[key] = value
        else:
            raise ConfigError(
                f"cannot filter on unknown field {key!r}; filterable fields: source, type, "
                + ", ".join(f for f in FILTERABLE_FIELDS if f not in ("source", "file_type"))
            )
    return SearchFilter(tuple(globs), tuple(types), fields)


@dataclass(frozen=True, slots=True)
class PluginFailure:
    """A retriever plugin that could not be loaded."""

    name: str
    error: str


BUILTIN_RETRIEVERS = frozenset({"dense", "bm25", "sparse", "hybrid"})


def discover_retrievers() -> tuple[dict[str, Callable[[RetrieverContext], Retriever]], list[PluginFailure]]:
    """Load every retriever factory from the entry-point group; failures are collected, not raised.

    Built-ins win over a third-party plugin of the same name (which is reported).
    ``RAG_RETRIEVERS`` restricts which third-party plugins load; built-ins always load.
    """
    return _discover(os.environ.get("RAG_RETRIEVERS", ""), tuple(sys.path))


@lru_cache(maxsize=8)
def _discover(
    restriction: str, search_path: tuple[str, ...]
) -> tuple[dict[str, Callable[[RetrieverContext], Retriever]], list[PluginFailure]]:
    allowed = {n.strip() for n in restriction.split(",") if n.strip()}
    factories: dict[str, Callable[[RetrieverContext], Retriever]] = {}
    failures: list[PluginFailure] = []
    points = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: not ep.value.startswith("plugins."))
    for ep in points:
        builtin = ep.value.startswith("plugins.") and ep.name in BUILTIN_RETRIEVERS
        if allowed and not builtin and ep.name not in allowed:
            continue
        if ep.name in factories:
            failures.append(PluginFailure(ep.name, f"{ep.value} ignored: the name is already taken"))
            continue
        try:
            factory = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the others down
            failures.append(PluginFailure(ep.name, f"{type(exc).__name__}: {exc}"))
            continue
        if not callable(factory):
            failures.append(PluginFailure(ep.name, "entry point is not callable"))
            continue
        factories[ep.name] = factory
    return factories, failures


def make_retriever(name: str, ctx: RetrieverContext) -> Retriever:
    """Build the named retriever, or explain which ones exist."""
    factories, failures = discover_retrievers()
    if name not in factories:
        broken = {f.name: f.error for f in failures}
        if name in broken:
            raise RagError(f"retriever plugin '{name}' failed to load: {broken[name]}")
        raise ConfigError(f"unknown retriever '{name}'; available: {', '.join(sorted(factories))}")
    try:
        retriever = factories[name](ctx)
    except RagError:
        raise
    except Exception as exc:  # noqa: BLE001 - a plugin's own failure becomes one clear line
        raise RagError(f"retriever plugin '{name}' failed to start: {type(exc).__name__}: {exc}") from None
    if not isinstance(retriever, Retriever):
        raise RagError(f"retriever plugin '{name}' does not implement retrieve(query, k, flt)")
    return retriever


def payload_chunk(chunk_id: str, payload: Mapping[str, Any], name: str, rank: int, score: float) -> ScoredChunk:
    """A ScoredChunk from a store payload (see ``Chunk.payload``), as retriever ``name`` ranked it.

    Keys a payload lacks leave their fields ``None`` (or empty), so a plugin may pass a partial one.
    """
    file_type = payload.get("file_type")
    return ScoredChunk(
        chunk_id=chunk_id,
        text=str(payload.get("text", "")),
        source=str(payload.get("source", "")),
        score=score,
        scores={name: score},
        ranks={name: rank},
        start=_int(payload.get("start")),
        end=_int(payload.get("end")),
        page=_int(payload.get("page")),
        page_end=_int(payload.get("page_end")),
        headings=tuple(str(h) for h in payload.get("headings") or ()),
        file_type=None if file_type is None else str(file_type),
        chunk_index=_int(payload.get("chunk_index")),
    )


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
