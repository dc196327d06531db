"""Built-in retriever ``sparse``: BM25 scored inside Qdrant from sparse vectors.

Chunks carry BM25 term weights as a sparse vector and the collection applies
Qdrant's IDF modifier, so a server or cluster deployment needs no client-side index.
"""

from __future__ import annotations

from rag.core.lexical import Analyzer, query_weights
from rag.query.retrieve import RetrieverContext, ScoredChunk, SearchFilter, payload_chunk


class SparseRetriever:
    """BM25 by sparse dot product in the vector store."""

    name = "sparse"

    def __init__(self, ctx: RetrieverContext) -> None:
        self.ctx = ctx
        self.analyzer = Analyzer(ctx.settings.bm25.language, ctx.settings.bm25.stopwords)

    def retrieve(self, query: str, k: int, flt: SearchFilter | None = None) -> list[ScoredChunk]:
        """Top ``k`` chunks by in-engine BM25."""
        indices, values = query_weights(self.analyzer.tokens(query))
        hits = self.ctx.store.search_sparse(indices, values, k, self.ctx.store_match(flt))
        return [payload_chunk(h.id, h.payload, self.name, rank, h.score) for rank, h in enumerate(hits, 1)]


def factory(ctx: RetrieverContext) -> SparseRetriever:
    """Entry point of the ``sparse`` plugin."""
    return SparseRetriever(ctx)
