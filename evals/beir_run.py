"""``rag eval beir``: ingest a BEIR corpus into its own collection, run the split's queries, score them.

Documents are ingested whole (title, blank line, text: one chunk per document,
as the BEIR and MTEB baselines embed them, truncated to the model's length), under
the sources ``beir:<folder>/<doc-id>``, in the collection ``beir-<folder>``; a document's
title also names it in chunk headers (``[chunking] context``). A
rerun reuses the collection: unchanged documents are not re-embedded.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from evals.beir import BeirData, beir_documents, load_beir
from evals.metrics import Run, evaluate, write_trec_run
from rag.core.config import ChunkingConfig, Settings

WHOLE_DOCUMENT_CHARS = 100_000
DEPTH = 100


@dataclass(frozen=True, slots=True)
class BeirReport:
    """Headline metrics of one BEIR run, plus latency percentiles."""

    dataset: str
    split: str
    collection: str
    retriever: str
    reranked: bool
    queries: int
    metrics: dict[str, float]
    latency_ms_p50: float
    latency_ms_p95: float
    ingest: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` shape."""
        return {
            "dataset": self.dataset,
            "split": self.split,
            "collection": self.collection,
            "retriever": self.retriever,
            "reranked": self.reranked,
            "queries": self.queries,
            **{k: round(v, 4) for k, v in self.metrics.items()},
            "latency_ms_p50": round(self.latency_ms_p50, 2),
            "latency_ms_p95": round(self.latency_ms_p95, 2),
            "ingest": self.ingest,
        }


def collection_name(folder: Path) -> str:
    """``beir-<folder name>``, made safe for a collection name."""
    return "beir-" + re.sub(r"[^A-Za-z0-9_.-]", "_", folder.resolve().name)[:58]


def beir_settings(settings: Settings) -> Settings:
    """The user's settings with whole-document chunks (other chunking settings, such as ``context``, kept)."""
    whole = {**settings.chunking.model_dump(), "chunk_size": WHOLE_DOCUMENT_CHARS, "chunk_overlap": 0}
    return settings.model_copy(update={"chunking": ChunkingConfig.model_validate(whole)})


def ingest_beir(data: BeirData, folder: Path, settings: Settings, home: Path, collection: str) -> dict[str, Any]:
    """Ingest (or update) the corpus; returns the ingest summary."""
    from ingest.pipeline import Ingestor

    scope = f"beir:{folder.resolve().name}"
    docs = (
        (f"{scope}/{doc_id}", f"{title}\n\n{text}" if title else text, title)
        for doc_id, title, text in beir_documents(data)
    )
    report = Ingestor(beir_settings(settings), home, collection).run_texts(docs, scope)
    keys = ("files_added", "files_updated", "files_unchanged", "files_deleted", "chunks_total", "chunks_embedded",
            "seconds")
    return {k: report.as_dict()[k] for k in keys}


def run_beir(
    folder: Path, settings: Settings, home: Path, split: str = "test", retriever: str | None = None,
    rerank: bool | None = None, run_file: Path | None = None, limit: int | None = None,
    on_query: Callable[[int, int], None] | None = None,
) -> BeirReport:
    """Evaluate retrieval on a BEIR folder with trec_eval semantics."""
    from rag.query.search import Searcher

    data = load_beir(folder, split)
    collection = collection_name(folder)
    ingest_summary = ingest_beir(data, folder, settings, home, collection)
    searcher = Searcher(beir_settings(settings), home, collection, retriever, rerank)
    prefix = f"beir:{folder.resolve().name}/"
    run: Run = {}
    latencies: list[float] = []
    query_ids = sorted(data.queries)[:limit] if limit else sorted(data.queries)
    try:
        searcher.search(data.queries[query_ids[0]], 1)  # warm-up: model and index loading are not latency
        for i, qid in enumerate(query_ids, 1):
            t0 = time.perf_counter()
            result = searcher.search(data.queries[qid], DEPTH)
            latencies.append((time.perf_counter() - t0) * 1000)
            ranking: dict[str, float] = {}
            for position, hit in enumerate(result.results):
                doc_id = hit.source[len(prefix):] if hit.source.startswith(prefix) else hit.source
                ranking.setdefault(doc_id, float(DEPTH * 10 - position))  # rank order as a score
            run[qid] = ranking
            if on_query:
                on_query(i, len(query_ids))
        notes_reranked = searcher._reranker is not None
    finally:
        searcher.close()
    qrels = {q: data.qrels[q] for q in query_ids}
    result = evaluate(qrels, run, ks=(10, 100))
    if run_file is not None:
        write_trec_run(run, run_file, tag=f"rag-{searcher.retriever_name}")
    wanted = ("map", "ndcg@10", "recall@10", "recall@100", "mrr@10")
    return BeirReport(
        dataset=folder.resolve().name,
        split=split,
        collection=collection,
        retriever=searcher.retriever_name,
        reranked=notes_reranked,
        queries=len(query_ids),
        metrics={k: result.means[k] for k in wanted},
        latency_ms_p50=float(np.percentile(latencies, 50)),
        latency_ms_p95=float(np.percentile(latencies, 95)),
        ingest=ingest_summary,
    )
