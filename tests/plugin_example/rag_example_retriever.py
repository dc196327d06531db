"""Example third-party retriever ``keyword``: ranks chunks by how often they contain the query's words.

Registered in the entry-point group ``rag.retrievers`` as ``keyword = rag_example_retriever:factory``.
"""

from __future__ import annotations

import re

from rag.query.retrieve import RetrieverContext, ScoredChunk, SearchFilter, payload_chunk

WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lower-cased word tokens."""
    return WORD.findall(text.lower())


class KeywordRetriever:
    """Counts occurrences of the query's words in each chunk (filters are applied inside the store)."""

    name = "keyword"

    def __init__(self, ctx: RetrieverContext) -> None:
        self.ctx = ctx

    def retrieve(self, query: str, k: int, flt: SearchFilter | None = None) -> list[ScoredChunk]:
        """Top ``k`` chunks by query-word count; chunks without any query word are not returned."""
        wanted = set(words(query))
        if not wanted or k <= 0:
            return []
        hits: list[tuple[int, str, dict]] = []
        for chunk_id, payload in self.ctx.store.scroll(with_payload=True, match=self.ctx.store_match(flt)):
            count = sum(1 for w in words(str(payload.get("text", ""))) if w in wanted)
            if count:
                hits.append((count, chunk_id, dict(payload)))
        hits.sort(key=lambda h: (-h[0], h[1]))
        return [
            payload_chunk(chunk_id, payload, self.name, rank, float(count))
            for rank, (count, chunk_id, payload) in enumerate(hits[:k], 1)
        ]


def factory(ctx: RetrieverContext) -> KeywordRetriever:
    """Entry point of the ``keyword`` plugin."""
    return KeywordRetriever(ctx)
