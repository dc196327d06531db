"""Search: validate the query, retrieve (hybrid by default), rerank, and keep every stage's scores."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.core.config import Settings
from rag.core.errors import ConfigError, RagError, StoreError
from rag.core.records import ScoredChunk, SearchFilter
from rag.query.graph import EntityGraph, GraphCache
from rag.query.retrieve import Retriever, RetrieverContext, discover_retrievers, make_retriever
from rag.core.threads import torch_threads

MAX_K = 1000
EMPTY_QUERY = "empty query; type some words to search for"


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Ranked chunks for one query, with timings (ms) and notes such as 'reranker unavailable'."""

    query: str
    results: tuple[ScoredChunk, ...]
    retriever: str
    reranked: bool
    timings_ms: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` shape."""
        return {
            "query": self.query,
            "retriever": self.retriever,
            "reranked": self.reranked,
            "results": [
                {
                    "rank": rank,
                    "chunk_id": r.chunk_id,
                    "source": r.source,
                    "page": r.page,
                    "headings": list(r.headings),
                    "start": r.start,
                    "end": r.end,
                    "text": r.text,
                    "score": r.score,
                    "scores": dict(r.scores),
                    "ranks": dict(r.ranks),
                }
                for rank, r in enumerate(self.results, 1)
            ],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "notes": list(self.notes),
        }


class Searcher:
    """Holds a collection's retriever (and reranker) open across queries."""

    def __init__(
        self, settings: Settings, home: Path, collection: str = "default", retriever: str | None = None,
        rerank: bool | None = None,
    ) -> None:
        self.settings = settings
        self.ctx = RetrieverContext(settings, home, collection)
        if self.ctx.store.count() == 0:
            raise StoreError(
                f"collection '{collection}' is empty; run `rag ingest PATH --collection {collection}` first"
            )
        self.retriever_name = retriever or settings.retrieval.retriever
        self.retriever: Retriever = make_retriever(self.retriever_name, self.ctx)
        self.use_rerank = settings.rerank.enabled if rerank is None else rerank
        self.notes: list[str] = [
            f"retriever plugin '{f.name}' failed to load ({f.error}); the others still work"
            for f in discover_retrievers()[1]
        ]
        self._reranker: Any = None
        self._graphs = GraphCache(self.ctx.paths)
        if self.use_rerank:
            from rag.query.rerank import get_reranker

            self._reranker, why = get_reranker(settings.rerank)
            if why:
                self.notes.append(why)

    def use_models(self, embedder: Any, wrap_reranker: Any) -> None:
        """Search with ``embedder`` and ``wrap_reranker(reranker)`` instead of this process's cached models.

        A server uses this to run the model calls of many requests on one thread, batched.
        """
        self.ctx.embedder = embedder
        if self._reranker is not None:
            self._reranker = wrap_reranker(self._reranker)

    def entity_graph(self) -> EntityGraph | None:
        """The collection's entity graph (``[multihop] mode = "graph"``): from its file, kept in step with every change.

        None when the collection holds more than ``[multihop] graph_max_chunks`` chunks.
        """
        return self._graphs.get(self.ctx.store, self.ctx.generation(), self.settings.multihop.graph_max_chunks)

    def check_query(self, query: str) -> str:
        """Reject empty queries and queries longer than the embedding model reads."""
        query = query.strip()
        if not query:
            raise ConfigError(EMPTY_QUERY)
        parts = self.settings.retrieval.hybrid if self.retriever_name == "hybrid" else [self.retriever_name]
        if all(p in ("bm25", "sparse") for p in parts):  # lexical retrievers read any length
            return query
        limit = int(self.ctx.embedder.info.max_seq_length)
        tokens = self.ctx.embedder.count_tokens(query)
        if tokens > limit:
            raise ConfigError(
                f"query is {tokens} tokens but the embedding model reads at most {limit}; shorten the query"
            )
        return query

    def search(self, query: str, k: int = 10, flt: SearchFilter | None = None) -> SearchResult:
        """The top ``k`` chunks for ``query``."""
        if k <= 0 or k > MAX_K:
            raise ConfigError(f"-k must be between 1 and {MAX_K} (got {k})")
        query = self.check_query(query)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        depth = max(k, self.settings.rerank.top_n) if self._reranker is not None else k
        try:
            with torch_threads(self.settings.embedding.query_threads):
                results = self.retriever.retrieve(query, depth, flt)
        except RagError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's failure becomes one clear line
            raise RagError(
                f"retriever '{self.retriever_name}' failed: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None
        timings["retrieve"] = (time.perf_counter() - t0) * 1000
        reranked = False
        if self._reranker is not None and results:
            t1 = time.perf_counter()
            results = self._reranker.rerank(query, results, self.settings.rerank.top_n)
            timings["rerank"] = (time.perf_counter() - t1) * 1000
            reranked = True
        timings["total"] = (time.perf_counter() - t0) * 1000
        return SearchResult(query, tuple(results[:k]), self.retriever_name, reranked, timings, tuple(self.notes))

    def close(self) -> None:
        """Release the store."""
        self.ctx.close()


def search(
    query: str, settings: Settings, home: Path, collection: str = "default", k: int = 10,
    retriever: str | None = None, rerank: bool | None = None, flt: SearchFilter | None = None,
) -> SearchResult:
    """One-shot search (opens and closes the collection)."""
    if not query.strip():  # before any model is loaded
        raise ConfigError(EMPTY_QUERY)
    searcher = Searcher(settings, home, collection, retriever, rerank)
    try:
        return searcher.search(query, k, flt)
    finally:
        searcher.close()
