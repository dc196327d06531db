"""Built-in retriever ``bm25``: Okapi BM25 (rank-bm25's scoring) over the index built beside the store at ingest."""

from __future__ import annotations

from functools import cached_property

import numpy as np

from rag.core.bm25 import Bm25Index
from rag.core.errors import StoreError
from rag.core.lexical import Analyzer
from rag.query.retrieve import RetrieverContext, ScoredChunk, SearchFilter, payload_chunk


class Bm25Retriever:
    """Okapi BM25 (rank-bm25's formula); filters select the allowed chunk ids inside the store first."""

    name = "bm25"

    def __init__(self, ctx: RetrieverContext) -> None:
        self.ctx = ctx

    @cached_property
    def index(self) -> Bm25Index:
        analyzer = Analyzer(self.ctx.settings.bm25.language, self.ctx.settings.bm25.stopwords)
        index = Bm25Index.load(self.ctx.paths.bm25, analyzer)
        stored = self.ctx.store.count()
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
