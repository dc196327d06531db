"""Query expansion: the LLM writes alternative queries (multi-query) or a hypothetical answer passage (HyDE).

Both are off by default (``[query] expand = "none"``). The expansions are searched beside the
query itself and every ranking is fused by reciprocal rank, so an unhelpful expansion can only
push results down, never remove what the query found on its own. A HyDE passage is searched by
meaning alone: it is written like the documents, not like a question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from rag.core import prompts
from rag.core.config import QueryConfig
from rag.query.merge import labelled, merge
from rag.core.records import ScoredChunk

if TYPE_CHECKING:
    from rag.core.llm import Llm

HYDE_MAX_TOKENS = 160
_NUMBERING = re.compile(r"^\s*(?:[-*•]|\d+[.)]|q\d*:|query\s*\d*:)\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Expansion:
    """What the expansion step added to the query: alternative queries and/or a hypothetical passage."""

    mode: str
    queries: tuple[str, ...] = ()
    passage: str = ""
    llm_calls: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` shape (under ``retrieval``)."""
        return {"mode": self.mode, "queries": list(self.queries), "passage": self.passage, "llm_calls": self.llm_calls}


def multi_query_messages(query: str, n: int) -> list[dict[str, str]]:
    """Chat messages asking for ``n`` differently worded search queries for ``query``."""
    return [
        {"role": "system", "content": prompts.MULTI_QUERY_SYSTEM.format(n=n)},
        {"role": "user", "content": query.strip()},
    ]


def hyde_messages(query: str) -> list[dict[str, str]]:
    """Chat messages asking for a short passage that would answer ``query`` (facts may be invented)."""
    return [
        {"role": "system", "content": prompts.HYDE_SYSTEM},
        {"role": "user", "content": query.strip()},
    ]


def parse_queries(reply: str, query: str, n: int) -> tuple[str, ...]:
    """Up to ``n`` distinct queries from an LLM reply (one per line), without numbering or the query itself."""
    seen = {" ".join(query.lower().split())}
    out: list[str] = []
    for line in reply.splitlines():
        text = _NUMBERING.sub("", line).strip().strip('"').strip()
        key = " ".join(text.lower().split())
        if len(key) < 3 or key in seen or key.endswith(":"):
            continue
        seen.add(key)
        out.append(text)
        if len(out) == n:
            break
    return tuple(out)


def expand_query(query: str, config: QueryConfig, llm: Llm) -> Expansion:
    """The expansions ``[query] expand`` asks for (one LLM call), or none."""
    if config.expand == "multi":
        reply = llm.chat(multi_query_messages(query, config.n), max_tokens=40 * config.n, temperature=0.0)
        return Expansion("multi", queries=parse_queries(reply, query, config.n), llm_calls=1)
    if config.expand == "hyde":
        passage = " ".join(llm.chat(hyde_messages(query), max_tokens=HYDE_MAX_TOKENS, temperature=0.0).split())
        return Expansion("hyde", passage=passage, llm_calls=1)
    return Expansion("none")


def search_expanded(
    query: str, expansion: Expansion, k: int, search: Callable[[str, int], Sequence[ScoredChunk]],
    retrieve: Callable[[str, int, str | None], Sequence[ScoredChunk]], rrf_k: float = 60.0,
) -> list[ScoredChunk]:
    """The query's own ranking fused (RRF) with the rankings of its expansions.

    ``search(text, k)`` is the validated user-query search; ``retrieve(text, k, retriever)``
    searches derived text (``retriever`` None: the default one). Without expansions the query's
    ranking comes back unchanged.
    """
    own = list(search(query, k))
    extra: list[tuple[str, Sequence[ScoredChunk]]] = [(f"q{i}", retrieve(q, k, None))
                                                      for i, q in enumerate(expansion.queries, 1)]
    if expansion.passage:
        extra.append(("hyde", retrieve(expansion.passage, k, "dense")))
    if not extra:
        return own
    # each ranking gets its own entry in ``scores``/``ranks``, so that the merge can tell them apart
    rankings = {name: labelled(chunks, [c.score for c in chunks], name) for name, chunks in [("query", own), *extra]}
    return merge(rankings, policy="rrf", rrf_k=rrf_k, label="expanded")[:k]
