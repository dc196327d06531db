"""Built-in retriever ``dense``: nearest chunks by embedding similarity, inside Qdrant."""

from __future__ import annotations

from rag.query.retrieve import RetrieverContext, ScoredChunk, SearchFilter, payload_chunk


class DenseRetriever:
    """Cosine similarity between the query embedding and chunk embeddings."""

    name = "dense"

    def __init__(self, ctx: RetrieverContext) -> None:
        self.ctx = ctx

    def retrieve(self, query: str, k: int, flt: SearchFilter | None = None) -> list[ScoredChunk]:
        """Top ``k`` chunks by cosine similarity."""
        vector = self.ctx.embedder.embed([query])[0]
        hits = self.ctx.store.search_dense(vector, k, self.ctx.store_match(flt))
        return [payload_chunk(h.id, h.payload, self.name, rank, h.score) for rank, h in enumerate(hits, 1)]


def factory(ctx: RetrieverContext) -> DenseRetriever:
    """Entry point of the ``dense`` plugin."""
    return DenseRetriever(ctx)
