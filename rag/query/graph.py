"""A collection's entity graph and the walk over it (``[multihop] mode = "graph"``, HippoRAG-style).

Nodes are the collection's chunks and the names they mention (``rag.core.entities``; the ingest
stores each chunk's names in its payload, so a changed file's edges change with its points). A
chunk links to every name it mentions (its first name, most often what it is about, counts
``SUBJECT_WEIGHT``), and to the shorter names inside its own longer ones that chunks mention
('shirley temple' inside 'shirley temple black', ``ALIAS_WEIGHT``), so two spellings of one name
still meet. Names in more than ``MAX_DF_SHARE`` of the chunks (at least ``MIN_MAX_DF``) are left
out: they link everything to everything. The weights are ``rag.core.entity_graph``'s, which
builds the edge list and keeps it on disk beside the collection (loaded as it is while the
collection is unchanged; after a change only the changed files' chunks are read again).

The walk is Personalized PageRank (HippoRAG, NeurIPS 2024): it restarts at the question's best
first-hop passages (weighted by their scores) and at the names the question mentions, and steps
chunk -> name (a rarer name weighs more: idf) -> chunk. Passages that share rare names with the
best passages and the question gather its mass. No model and no LLM runs at query time; the cost
is a few passes over the edge list (NumPy).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rag.core.entities import entity_keys, norm
from rag.core.entity_graph import ChunkNames, GraphArrays, build_edges, stored_keys, sync_graph
from rag.core.home import CollectionPaths

__all__ = ["EntityGraph", "GraphCache", "GraphWalk", "stored_keys"]

DAMPING = 0.5  # chance per step that the walk goes on rather than restarting (HippoRAG's)
STEPS = 12
QUESTION_SHARE = 0.0  # of the restart mass on the question's names (when it names any)
QUESTION_NAME_STEP = 0.0  # how much a step through a name the question holds counts (0: the walk avoids them)
MAX_NGRAM = 6  # longest name looked for in the question, in words
VIA = 3  # names shown per passage in --explain


@dataclass(frozen=True, slots=True)
class GraphWalk:
    """What a walk found: a score per chunk, the question's names, and which names carried each chunk."""

    scores: Mapping[str, float]
    names: tuple[str, ...] = ()
    via: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    subjects: Mapping[str, str] = field(default_factory=dict)  # chunk id -> the question's name it is about
    note: str = ""  # why there was no walk (e.g. a collection too big for the in-memory graph)


@dataclass(frozen=True, slots=True, eq=False)
class EntityGraph:
    """Chunks and names as an edge list: ``rows[e]`` (chunk) mentions ``cols[e]`` (name)."""

    ids: tuple[str, ...]
    keys: tuple[str, ...]
    row: Mapping[str, int]
    col: Mapping[str, int]
    rows: np.ndarray
    cols: np.ndarray
    forward: np.ndarray  # chunk -> name step probabilities (each chunk's sum to 1)
    backward: np.ndarray  # name -> chunk step probabilities (each name's sum to 1)
    idf: np.ndarray
    subject: np.ndarray  # per chunk: the column of its first name (what it is about, most often), -1 for none
    generation: int | None = None
    by_subject: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # name -> the chunks about it

    @classmethod
    def build(cls, chunks: Iterable[tuple[str, Sequence[str]]], generation: int | None = None) -> "EntityGraph":
        """The graph of ``(chunk id, its names in order)`` pairs."""
        return cls.of(build_edges(ChunkNames.of((cid, "", keys) for cid, keys in chunks)), generation)

    @classmethod
    def of(cls, arrays: GraphArrays, generation: int | None = None) -> "EntityGraph":
        """The graph of an edge list (``rag.core.entity_graph``), with the walk's step probabilities."""
        n, rows, cols, weight = len(arrays.ids), arrays.rows, arrays.cols, arrays.weight
        linked = np.bincount(cols, minlength=len(arrays.vocab)).astype(np.float64)  # chunks per name, aliases included
        idf = np.log(1.0 + n / np.maximum(linked, 1.0))
        forward = weight * idf[cols] if len(rows) else weight
        forward = forward / np.maximum(np.bincount(rows, weights=forward, minlength=n), 1e-12)[rows] if len(rows) else forward
        backward = weight / np.maximum(np.bincount(cols, weights=weight, minlength=len(arrays.vocab)), 1e-12)[cols] \
            if len(rows) else weight
        about: dict[str, list[str]] = {}
        for r, c in enumerate(arrays.subject.tolist()):
            if c >= 0:
                about.setdefault(arrays.vocab[c], []).append(arrays.ids[r])
        return cls(tuple(arrays.ids), tuple(arrays.vocab), {cid: i for i, cid in enumerate(arrays.ids)},
                   {key: i for i, key in enumerate(arrays.vocab)}, rows, cols, forward, backward, idf, arrays.subject,
                   generation, {k: tuple(v) for k, v in about.items()})

    @property
    def edges(self) -> int:
        return int(len(self.rows))

    def question_names(self, question: str) -> list[str]:
        """The graph's names the question mentions: capitalised spans, and runs of 2+ words in any case."""
        found: list[str] = []
        for key in entity_keys(question):  # a capitalised span, or the longest names inside it
            words = key.split()
            parts = [" ".join(words[a:a + size]) for size in range(len(words), 0, -1)
                     for a in range(len(words) - size + 1)]
            for part in parts:
                if part in self.col and not any(part in f" {k} " or part == k for k in found):
                    found.append(part)
        words = norm(question).split()
        for size in range(min(MAX_NGRAM, len(words)), 1, -1):
            for start in range(len(words) - size + 1):
                part = " ".join(words[start:start + size])
                if part in self.col and not any(part in f" {k} " or part == k for k in found):
                    found.append(part)
        return list(dict.fromkeys(found))

    def about(self, text: str) -> dict[str, str]:
        """Chunks about a name ``text`` mentions in any case (their first name: a title line, most often), each
        with that name; the longest names first ('instruction scheduling' before 'scheduling')."""
        words = norm(text).split()
        found: dict[str, str] = {}
        for size in range(min(MAX_NGRAM, len(words)), 0, -1):
            for start in range(len(words) - size + 1):
                part = " ".join(words[start:start + size])
                for cid in self.by_subject.get(part, ()):
                    found.setdefault(cid, part)
        return found

    def _step(self, x: np.ndarray, forward: np.ndarray) -> np.ndarray:
        names = np.bincount(self.cols, weights=forward * x[self.rows], minlength=len(self.keys))
        return self._to_chunks(names)

    def _without(self, blocked: Sequence[str], factor: float = 0.0) -> np.ndarray:
        """Chunk -> name step probabilities with the ``blocked`` names down-weighted by ``factor`` (sums stay 1)."""
        if not blocked or factor >= 1:
            return self.forward
        mask = np.ones(len(self.keys))
        mask[[self.col[k] for k in blocked]] = factor
        forward = self.forward * mask[self.cols]
        return forward / np.maximum(np.bincount(self.rows, weights=forward, minlength=len(self.ids)), 1e-12)[self.rows]

    def _to_chunks(self, names: np.ndarray) -> np.ndarray:
        return np.bincount(self.rows, weights=self.backward * names[self.cols], minlength=len(self.ids))

    def walk(self, question: str, seeds: Mapping[str, float], *, damping: float = DAMPING, steps: int = STEPS,
             top: int = 50) -> GraphWalk:  # fmt: skip
        """Personalized PageRank from ``seeds`` (chunk id -> weight) and the question's names; the ``top`` chunks."""
        n = len(self.ids)
        restart = np.zeros(n)
        for cid, w in seeds.items():
            if cid in self.row and w > 0:
                restart[self.row[cid]] += w
        if restart.sum() > 0:
            restart /= restart.sum()
        names = self.question_names(question)
        if names and QUESTION_SHARE > 0 and len(self.keys):
            start = np.zeros(len(self.keys))
            for key in names:
                start[self.col[key]] = self.idf[self.col[key]]
            from_names = self._to_chunks(start / start.sum())
            if from_names.sum() > 0:
                share = QUESTION_SHARE if restart.sum() > 0 else 1.0
                restart = (1 - share) * restart + share * from_names / from_names.sum()
        named = {self.col[k]: k for k in names}
        subjects = {self.ids[r]: named[int(c)] for r, c in enumerate(self.subject) if int(c) in named}
        if restart.sum() <= 0 or not self.edges:
            return GraphWalk({}, tuple(names), subjects=subjects)
        # The walk leaves by the names the question does not hold: those lead to what the first hop missed.
        forward = self._without(names, QUESTION_NAME_STEP)
        x = restart.copy()
        for _ in range(steps):
            x = (1 - damping) * restart + damping * self._step(x, forward)
        order = [int(i) for i in np.argsort(-x, kind="stable")[:top] if x[i] > 0]
        scores = {self.ids[i]: float(x[i]) for i in order}
        return GraphWalk(scores, tuple(names), self._via(order, seeds, names if QUESTION_NAME_STEP == 0 else ()),
                         subjects)

    def _via(self, order: Sequence[int], seeds: Mapping[str, float], blocked: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """For each chunk in ``order``: the rarest names it shares with the seeds, ``blocked`` names left out."""
        carrying: set[int] = set()
        seed_rows = {self.row[c] for c in seeds if c in self.row}
        by_row: dict[int, list[int]] = {}
        near = np.isin(self.rows, np.fromiter(set(order) | seed_rows, dtype=np.int64))
        for r, c in zip(self.rows[near].tolist(), self.cols[near].tolist()):
            by_row.setdefault(r, []).append(c)
        for r in seed_rows:
            carrying.update(by_row.get(r, ()))
        carrying -= {self.col[k] for k in blocked}
        via = {}
        for r in order:
            shared = sorted((c for c in by_row.get(r, ()) if c in carrying), key=lambda c: -self.idf[c])
            if shared and r not in seed_rows:
                via[self.ids[r]] = tuple(self.keys[c] for c in shared[:VIA])
        return via


class GraphCache:
    """One collection's graph: from its file beside the collection, kept in step with every change.

    The collection's change counter (the manifest's ``generation``, bumped by every ingest) and
    chunk count say when the graph in memory is stale; then the file is loaded, or updated with
    the files that changed (``rag.core.entity_graph``). A collection with no manifest (a store
    opened by itself) gets its graph built from the store, in memory only.
    """

    def __init__(self, paths: CollectionPaths | None = None) -> None:
        self._lock = threading.Lock()
        self._paths = paths
        self._graph: EntityGraph | None = None
        self._stamp: tuple[int | None, int] | None = None

    def get(self, store: Any, generation: int | None, max_chunks: int) -> EntityGraph | None:
        """The graph, brought in step if the collection changed; None above ``max_chunks`` chunks (nothing is read)."""
        with self._lock:
            stamp = (generation, store.count())
            if stamp[1] > max_chunks:
                return None
            if self._graph is None or stamp != self._stamp:
                self._graph = EntityGraph.of(self._arrays(store, generation, stamp[1]), generation)
                self._stamp = stamp
            return self._graph

    def _arrays(self, store: Any, generation: int | None, count: int) -> GraphArrays:
        if self._paths is not None and self._paths.manifest.exists():
            # a file that cannot be written (a full disk, a read-only home) costs the next process a rebuild only
            return sync_graph(store, self._paths, generation, count, must_write=False)[0]
        chunks = sorted(((cid, str(p.get("source", "")), stored_keys(p)) for cid, p in store.scroll(with_payload=True)),
                        key=lambda c: c[0])
        return build_edges(ChunkNames.of(chunks))
