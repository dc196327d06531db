"""Built-in retriever ``hybrid`` (the default): fuses other retrievers, dense + BM25 unless configured."""

from __future__ import annotations

from rag.query.merge import merge
from rag.query.retrieve import Retriever, RetrieverContext, ScoredChunk, SearchFilter, make_retriever


class HybridRetriever:
    """Runs each configured retriever and fuses their rankings (weighted RRF or normalised scores)."""

    name = "hybrid"

    def __init__(self, ctx: RetrieverContext, parts: list[Retriever] | None = None) -> None:
        cfg = ctx.settings.retrieval
        self.config = cfg
        self.parts = parts if parts is not None else [make_retriever(n, ctx) for n in cfg.hybrid if n != "hybrid"]

    def retrieve(self, query: str, k: int, flt: SearchFilter | None = None) -> list[ScoredChunk]:
        """Top ``k`` fused chunks; each keeps every part's rank and score."""
        depth = max(k, self.config.candidates)
        rankings = {part.name: part.retrieve(query, depth, flt) for part in self.parts}
        return merge(rankings, self.config.weights, self.config.fusion, self.config.rrf_k, label=self.name)[:k]


def factory(ctx: RetrieverContext) -> HybridRetriever:
    """Entry point of the ``hybrid`` plugin."""
    return HybridRetriever(ctx)
