"""Built-in retriever ``bm25``: Okapi BM25 (rank-bm25's scoring) over the index kept beside the store.

The index is rebuilt from the store by the ingest (small collections, or when retrieval is
configured to use bm25) or else here, by the first search after a change. Above ``[bm25]
max_chunks`` this retriever refuses and names ``sparse``, which scales with the engine.
"""

from __future__ import annotations

import threading
from functools import cached_property

import numpy as np

from rag.core.bm25 import Bm25Index, in_step, sync_from_store, too_big
from rag.core.errors import StoreError
from rag.core.lexical import Analyzer
from rag.query.retrieve import RetrieverContext, ScoredChunk, SearchFilter, payload_chunk


_BUILDING = threading.Lock()


class Bm25Retriever:
    """Okapi BM25 (rank-bm25's formula); filters select the allowed chunk ids inside the store first."""

    name = "bm25"

    def __init__(self, ctx: RetrieverContext) -> None:
        self.ctx = ctx

    @cached_property
    def index(self) -> Bm25Index:
        """The collection's index, rebuilt from the store first when it is not in step with it."""
        cfg = self.ctx.settings.bm25
        analyzer = Analyzer(cfg.language, cfg.stopwords)
        stored = self.ctx.store.count()
        if stored > cfg.max_chunks:
            raise too_big(self.ctx.collection, stored, cfg.max_chunks)
        folder = self.ctx.paths.bm25
        with _BUILDING:  # one rebuild at a time in a process (a server's threads share collections)
            generation = self.ctx.generation()
            if not in_step(folder, generation, stored) or Bm25Index.problem(folder) is not None:
                sync_from_store(self.ctx.store, folder, analyzer, cfg.k1, cfg.b, generation)
            index = Bm25Index.load(folder, analyzer)
        if index.info.count != stored:
            raise StoreError(
                f"the BM25 index of '{self.ctx.collection}' holds {index.info.count} chunks but the store holds "
                f"{stored}; rerun `rag ingest` to bring them back in step"
            )
        return index

    @cached_property
    def _positions(self) -> dict[str, int]:
        return {cid: i for i, cid in enumerate(self.index.ids)}

    def retrieve(self, query: str, k: int, flt: SearchFilter | None = None) -> list[ScoredChunk]:
        """Top ``k`` chunks by BM25 score (chunks without any query term are not returned)."""
        index = self.index
        terms = index.analyzer.tokens(query)
        if not index.ids or not terms:
            return []
        scores = index.scores(terms)
        match = self.ctx.store_match(flt)
        if match is not None:
            allowed = np.zeros(len(scores), dtype=bool)
            for cid, _ in self.ctx.store.scroll(with_payload=False, match=match):
                pos = self._positions.get(cid)
                if pos is not None:
                    allowed[pos] = True
            scores = np.where(allowed, scores, 0.0)
        top = np.argsort(-scores, kind="stable")[:k]
        top = [int(i) for i in top if scores[i] > 0]
        payloads = self.ctx.store.payloads([index.ids[i] for i in top])
        out = []
        for rank, i in enumerate(top, 1):
            cid = index.ids[i]
            if cid in payloads:
                out.append(payload_chunk(cid, payloads[cid], self.name, rank, float(scores[i])))
        return out


def factory(ctx: RetrieverContext) -> Bm25Retriever:
    """Entry point of the ``bm25`` plugin."""
    return Bm25Retriever(ctx)
