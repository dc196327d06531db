"""Hard-negative mining for ``rag tune``: index the training corpus, retrieve with the hybrid retriever.

For each question the hybrid retriever (no reranking) returns its top ``depth``
chunks; those from non-gold sources are the hard negatives, a seeded sample of
``negatives`` of them per question. The top ``candidates`` with their fused scores
are kept too: held-out questions are scored by reranking exactly what search would
give the reranker.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Callable

from evals.beir_run import beir_settings
from rag.core.config import Settings
from rag.tune.data import TrainData, TrainQuery

@dataclass(frozen=True, slots=True)
class Candidate:
    """A retrieved passage, its fused (hybrid) score and whether it comes from a gold source."""

    text: str
    source: str
    fused: float
    gold: bool


@dataclass(frozen=True, slots=True)
class Mined:
    """One question with its positive passages, sampled hard negatives and the ranked candidates."""

    qid: str
    query: str
    positives: tuple[str, ...]
    negatives: tuple[str, ...]
    candidates: tuple[Candidate, ...]


def collection_for(data: TrainData) -> str:
    """Where a training corpus is indexed: ``beir-<name>`` (shared with ``rag eval beir``) or ``tune-<kind>-<name>``."""
    name = data.name if data.kind == "beir" else f"tune-{data.kind}-{data.name}"
    prefix = "beir-" if data.kind == "beir" else ""
    return prefix + re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:58]


IngestProgressFactory = Callable[[], AbstractContextManager[Any]]


def index_corpus(
    data: TrainData, settings: Settings, home: Path, ingest_progress: IngestProgressFactory | None = None,
) -> tuple[str, dict[str, int]]:
    """Ingest (or update) the corpus in its collection; unchanged documents are not re-embedded.

    ``ingest_progress`` makes the context manager that receives the ingest's progress events
    (the CLI passes its progress bar); without it the ingest is silent.
    """
    from ingest.pipeline import Ingestor

    if data.whole_documents:
        settings = beir_settings(settings)
    collection = collection_for(data)
    with (ingest_progress() if ingest_progress else nullcontext(None)) as progress:
        report = Ingestor(settings, home, collection, progress).run_texts(data.corpus.items(), data.scope).as_dict()
    return collection, {k: report[k] for k in ("chunks_total", "chunks_embedded")}


def mine(
    data: TrainData, queries: list[TrainQuery], settings: Settings, home: Path, collection: str, *,
    depth: int = 30, negatives: int = 3, candidates: int = 20, seed: int = 13,
    on_query: Callable[[], None] | None = None,
) -> list[Mined]:
    """Retrieve each question's top ``depth`` with the hybrid retriever and pick its hard negatives."""
    from rag.query.search import Searcher

    searcher = Searcher(settings, home, collection, retriever="hybrid", rerank=False)
    out: list[Mined] = []
    try:
        for q in queries:
            rng = random.Random(f"{seed}:{q.qid}")
            hits = searcher.search(q.query, max(depth, candidates)).results
            gold_chunks = [h.text for h in hits if h.source in q.gold]
            positives = tuple(dict.fromkeys(gold_chunks)) or tuple(data.corpus[s] for s in sorted(q.gold))
            pool = [h.text for h in hits[:depth] if h.source not in q.gold]
            picked = rng.sample(pool, min(negatives, len(pool)))
            given = [data.corpus[s] for s in q.negatives if s in data.corpus and data.corpus[s] not in picked]
            cands = tuple(Candidate(h.text, h.source, float(h.score), h.source in q.gold) for h in hits[:candidates])
            out.append(Mined(q.qid, q.query, positives, tuple(picked + given[:1]), cands))
            if on_query:
                on_query()
    finally:
        searcher.close()
    return out
