"""Routing: which collection(s) a question goes to, and searching several collections as one.

Collections may carry a one-paragraph description (``rag collections describe NAME TEXT``),
kept in ``<home>/collections/<name>/description.txt``. When none has one, nothing is routed
and questions go to the ``default`` collection as before. Otherwise the cheap default router
embeds the query and every description (a collection without one is described by its name)
and picks the collections whose cosine is within ``[route] margin`` of the best; the ``llm``
router asks the model instead and falls back to embeddings when its reply names no collection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from rag.core import prompts
from rag.core.config import RouteConfig
from rag.core.errors import ConfigError, StoreError
from rag.core.home import collection_paths, list_collections
from rag.query.merge import merge
from rag.core.records import ScoredChunk
from rag.query.graph import GraphWalk
from rag.query.retrieve import Retriever, make_retriever, payload_chunk
from rag.query.search import Searcher

if TYPE_CHECKING:
    from rag.core.embed import Embedder
    from rag.core.llm import Llm

DESCRIPTION_FILE = "description.txt"
MAX_DESCRIPTION_CHARS = 2000
MERGED = "collections"
DEFAULT_COLLECTION = "default"


@dataclass(frozen=True, slots=True)
class Route:
    """Where a question went: the chosen collections (best first), how, and each candidate's score."""

    collections: tuple[str, ...]
    mode: str
    scores: Mapping[str, float] = field(default_factory=dict)
    llm_calls: int = 0
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` shape (under ``retrieval``)."""
        return {"collections": list(self.collections), "mode": self.mode,
                "scores": {k: round(v, 4) for k, v in self.scores.items()}, "llm_calls": self.llm_calls,
                "note": self.note}

    def describe(self) -> str:
        """One line for ``--explain``: ``notes (embedding 0.61), default (0.55)``."""
        parts = []
        for i, name in enumerate(self.collections):
            score = self.scores.get(name)
            label = (f"{self.mode} " if i == 0 else "") + (f"{score:.2f}" if score is not None else "")
            parts.append(f"{name} ({label.strip()})" if label.strip() else name)
        text = ", ".join(parts)
        if self.mode in ("fixed", "none"):
            text += f" [{self.mode}]"
        return text + (f"; {self.note}" if self.note else "")


def read_description(home: Path, name: str) -> str:
    """The description of collection ``name`` ('' when it has none)."""
    path = collection_paths(home, name).root / DESCRIPTION_FILE
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""


def write_description(home: Path, name: str, text: str) -> Path:
    """Store (or, with empty text, remove) the description of an existing collection."""
    paths = collection_paths(home, name)
    if not paths.manifest.exists():
        raise StoreError(f"collection '{name}' does not exist under {home}; run `rag ingest PATH --collection {name}` first")
    text = " ".join(text.split())
    if len(text) > MAX_DESCRIPTION_CHARS:
        raise ConfigError(f"the description is {len(text)} characters; keep it under {MAX_DESCRIPTION_CHARS}")
    path = paths.root / DESCRIPTION_FILE
    if not text:
        path.unlink(missing_ok=True)
        return path
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def descriptions(home: Path) -> dict[str, str]:
    """Every collection of ``home`` with its description ('' when it has none)."""
    return {name: read_description(home, name) for name in list_collections(home)}


def routable(home: Path) -> dict[str, str]:
    """The routing candidates: every collection, described by its description or else its name.

    Empty when no collection has a description (routing is then off and ``default`` is used).
    """
    found = descriptions(home)
    if not any(found.values()):
        return {}
    return {name: text or f"collection {name}" for name, text in found.items()}


def route_by_embedding(query: str, candidates: Mapping[str, str], embedder: Embedder, config: RouteConfig) -> Route:
    """Collections whose description's cosine with the query is within ``margin`` of the best."""
    names = sorted(candidates)
    vectors = embedder.embed([query, *(candidates[n] for n in names)])
    cosines = vectors[1:] @ vectors[0]
    scores = {n: float(c) for n, c in zip(names, cosines)}
    order = sorted(names, key=lambda n: (-scores[n], n))
    best = scores[order[0]]
    chosen = [n for n in order if scores[n] >= best - config.margin][: config.max_collections]
    return Route(tuple(chosen), "embedding", scores)


def route_messages(query: str, candidates: Mapping[str, str]) -> list[dict[str, str]]:
    """Chat messages asking which collections could answer ``query``."""
    listing = "\n".join(prompts.ROUTE_COLLECTION.format(name=name, description=text)
                        for name, text in sorted(candidates.items()))
    return [
        {"role": "system", "content": prompts.ROUTE_SYSTEM},
        {"role": "user", "content": prompts.ROUTE_USER.format(collections=listing, question=query.strip())},
    ]


def parse_route_reply(reply: str, names: Sequence[str]) -> list[str]:
    """Collection names mentioned in an LLM reply, in the order they first appear."""
    found: list[tuple[int, str]] = []
    for name in names:
        m = re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", reply, re.IGNORECASE)
        if m:
            found.append((m.start(), name))
    return [name for _, name in sorted(found)]


def route_by_llm(query: str, candidates: Mapping[str, str], llm: Llm, embedder: Embedder, config: RouteConfig) -> Route:
    """Collections the LLM names for ``query``; embedding routing when it names none."""
    reply = llm.chat(route_messages(query, candidates), max_tokens=48, temperature=0.0)
    chosen = parse_route_reply(reply, sorted(candidates))[: config.max_collections]
    if chosen:
        return Route(tuple(chosen), "llm", {}, llm_calls=1)
    fallback = route_by_embedding(query, candidates, embedder, config)
    return replace(fallback, llm_calls=1, note=f"the LLM named no collection ({' '.join(reply.split())[:60]!r}); used embeddings")


def choose_route(query: str, candidates: Mapping[str, str], config: RouteConfig, embedder: Embedder, llm: Llm | None = None) -> Route:
    """Route ``query`` among ``candidates`` (name -> description) as ``[route] mode`` says."""
    if config.mode == "none" or not candidates:
        return Route((DEFAULT_COLLECTION,), "none")
    if len(candidates) == 1:
        return Route((next(iter(candidates)),), "only")
    if config.mode == "llm" and llm is not None:
        return route_by_llm(query, candidates, llm, embedder, config)
    return route_by_embedding(query, candidates, embedder, config)


def merge_collections(rankings: Mapping[str, Sequence[ScoredChunk]], rrf_k: float = 60.0) -> list[ScoredChunk]:
    """One ranking from several collections' rankings (best reciprocal rank); each result keeps its collection.

    A single collection's ranking comes back unchanged apart from the collection tag. A chunk found
    in two collections (same content, same id) is kept once, at its better position; equal scores
    (the same rank in different collections) put the better-routed collection's chunk first.
    """
    tagged = {name: [replace(c, collection=name) for c in chunks]
              for name, chunks in rankings.items()}
    if len(tagged) == 1:
        return next(iter(tagged.values()))
    return merge(tagged, policy="max_rrf", rrf_k=rrf_k, label=MERGED)


class CollectionSearch:
    """Searches one or several open collections and merges their results into one ranking."""

    def __init__(self, searchers: Mapping[str, Searcher], rrf_k: float = 60.0) -> None:
        if not searchers:
            raise StoreError("no collection to search; run `rag ingest PATH` first")
        self.searchers = dict(searchers)
        self.rrf_k = rrf_k
        self._made: dict[tuple[str, str], Retriever] = {}

    def search(self, query: str, k: int) -> list[ScoredChunk]:
        """The user's query, validated and reranked per collection as ``rag search`` would."""
        return merge_collections({n: s.search(query, k).results for n, s in self.searchers.items()}, self.rrf_k)

    def retrieve(self, text: str, k: int, retriever: str | None = None) -> list[ScoredChunk]:
        """A derived query (a hop query, a hypothetical passage): no length check, no reranking.

        ``retriever`` names another retriever than the collections' default (``dense`` for a
        HyDE passage, ``sparse`` for exact names); the embedder truncates long text itself.
        """
        rankings = {}
        for name, s in self.searchers.items():
            rankings[name] = (self._named(name, s, retriever) if retriever else s.retriever).retrieve(text, k)
        return merge_collections(rankings, self.rrf_k)

    def walk(self, question: str, seeds: Mapping[str, float]) -> GraphWalk:
        """The entity-graph walk of every open collection from ``seeds`` (chunk id -> weight), merged.

        Each collection's walk is a probability over its own chunks, so scores stay comparable.
        """
        graphs = {n: s.entity_graph() for n, s in self.searchers.items()}
        big = [n for n, g in graphs.items() if g is None]
        if big:
            limit = self.searchers[big[0]].settings.multihop.graph_max_chunks
            return GraphWalk({}, note=f"collection '{big[0]}' holds more than [multihop] graph_max_chunks = {limit} "
                             "chunks; the graph hop was skipped")
        walks = [g.walk(question, seeds) for g in graphs.values() if g is not None]
        if len(walks) == 1:
            return walks[0]
        scores: dict[str, float] = {}
        names: dict[str, None] = {}
        via: dict[str, tuple[str, ...]] = {}
        subjects: dict[str, str] = {}
        for found in walks:
            scores.update(found.scores)
            names.update(dict.fromkeys(found.names))
            via.update(found.via)
            subjects.update(found.subjects)
        return GraphWalk(scores, tuple(names), via, subjects)

    def about(self, text: str) -> dict[str, str]:
        """Chunks of every open collection about a name ``text`` mentions, with the name (``EntityGraph.about``)."""
        found: dict[str, str] = {}
        for s in self.searchers.values():
            graph = s.entity_graph()
            if graph is not None:
                found.update(graph.about(text))
        return found

    def passages(self, ids: Sequence[str]) -> list[ScoredChunk]:
        """The chunks with ``ids`` from whichever open collection holds them (e.g. reached by the graph)."""
        out: list[ScoredChunk] = []
        for s in self.searchers.values():
            for cid, payload in s.ctx.store.payloads(list(ids)).items():
                out.append(payload_chunk(cid, payload, "graph", 0, 0.0))
        return out

    def _named(self, collection: str, searcher: Searcher, retriever: str) -> Retriever:
        key = (collection, retriever)
        if key not in self._made:
            self._made[key] = make_retriever(retriever, searcher.ctx)
        return self._made[key]

    @property
    def notes(self) -> tuple[str, ...]:
        """Notes of the open searchers (e.g. 'reranker unavailable'), each once."""
        seen: dict[str, None] = {}
        for s in self.searchers.values():
            seen.update(dict.fromkeys(s.notes))
        return tuple(seen)

