"""Compare reranking configurations on SciFact (test), HotpotQA and ClapNQ, with the product's own code.

For every question the hybrid retriever runs once (no reranking); each configuration
then reranks the top 20 with ``rag.query.rerank.Reranker.rerank`` (the function search
uses), and the metrics are computed on the result:

- SciFact test: nDCG@10 over the top 100 (trec_eval semantics, evals.metrics);
- HotpotQA (pooled paragraphs): share of questions with BOTH gold paragraphs in the top 10;
- ClapNQ (pooled passages, answerable questions): gold-passage recall@5.

Configurations: ``hybrid`` (no reranking), ``shipped`` (rag/models/reranker with its
recommended blend), ``shipped-ce`` (the same model, cross-encoder score only),
``untrained`` (the packaged MiniLM with a fresh, seeded classification head). Rerank
latency (top 20) is reported as p50/p95 per model (configurations sharing a model score once).

    python benchmarks/rerank_compare.py --home /tmp/rrb --scifact ../shared/data/scifact \\
        --hotpotqa /tmp/suites/hotpotqa --clapnq /tmp/suites/clapnq

The suites come from ``rag eval import hotpotqa|clapnq``; their docs/ folders are ingested
into the collections ``bench-<name>`` of --home on first use.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

from evals.beir import load_beir  # noqa: E402
from evals.beir_run import beir_settings, collection_name, ingest_beir  # noqa: E402
from evals.metrics import ndcg_at_k  # noqa: E402
from evals.suite import read_suite  # noqa: E402
from rag.core.config import Settings, load_settings, resolve_home  # noqa: E402
from rag.query.rerank import SHIPPED, Reranker  # noqa: E402
from rag.query.retrieve import ScoredChunk  # noqa: E402
from rag.query.search import Searcher  # noqa: E402

TOP_N = 20
CONFIGS: dict[str, tuple[str, float | None]] = {
    "shipped": (str(SHIPPED), None),
    "shipped-ce": (str(SHIPPED), 1.0),
    "untrained": ("all-MiniLM-L6-v2", None),
}


def _rankings(hits: list[ScoredChunk], key: Callable[[str], str]) -> list[str]:
    return list(dict.fromkeys(key(h.source) for h in hits))


def _run(name: str, questions: list[tuple[str, str, Any]], searcher: Searcher, depth: int,
         rerankers: dict[str, Reranker], key: Callable[[str], str],
         metric: Callable[[Any, list[str]], float]) -> dict[str, Any]:
    values: dict[str, list[float]] = {"hybrid": []}
    latency: dict[str, list[float]] = {}
    started = time.perf_counter()
    for i, (qid, text, gold) in enumerate(questions, 1):
        hits = list(searcher.search(text, depth).results)
        values["hybrid"].append(metric(gold, _rankings(hits, key)))
        scored: dict[int, list[float]] = {}  # configurations sharing a model reuse its scores
        for cfg, rr in rerankers.items():
            if id(rr.model) not in scored:  # latency counts scoring, so only where the model ran
                t0 = time.perf_counter()
                scored[id(rr.model)] = rr.scores(text, [h.text for h in hits[:TOP_N]])
                latency.setdefault(cfg, []).append((time.perf_counter() - t0) * 1000)
            out = rr.rerank(text, hits, TOP_N, scored[id(rr.model)])
            values.setdefault(cfg, []).append(metric(gold, _rankings(out, key)))
        if i % 50 == 0:
            print(f"{name}: {i}/{len(questions)} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return {
        "questions": len(questions),
        "metric": {cfg: round(float(np.mean(v)), 4) for cfg, v in values.items()},
        "rerank_ms_p50": {cfg: round(float(np.percentile(v, 50)), 1) for cfg, v in latency.items()},
        "rerank_ms_p95": {cfg: round(float(np.percentile(v, 95)), 1) for cfg, v in latency.items()},
    }


def scifact(folder: Path, settings: Settings, home: Path, rerankers: dict[str, Reranker], limit: int | None) -> dict:
    data = load_beir(folder, "test")
    collection = collection_name(folder)
    ingest_beir(data, folder, settings, home, collection)
    searcher = Searcher(beir_settings(settings), home, collection, "hybrid", rerank=False)
    prefix = f"beir:{folder.resolve().name}/"
    qids = sorted(data.queries)[:limit] if limit else sorted(data.queries)
    try:
        out = _run("scifact", [(q, data.queries[q], data.qrels[q]) for q in qids], searcher, 100, rerankers,
                   lambda s: s[len(prefix):] if s.startswith(prefix) else s, lambda g, r: ndcg_at_k(g, r, 10))
    finally:
        searcher.close()
    return {"dataset": "scifact-test", "measure": "nDCG@10", **out}


def suite(folder: Path, settings: Settings, home: Path, rerankers: dict[str, Reranker], limit: int | None,
          measure: str) -> dict:
    from ingest.pipeline import ingest

    collection = f"bench-{folder.resolve().name}"
    report = ingest([str(folder / "docs")], settings, home, collection)
    if report.files_failed:
        print(f"warning: {len(report.files_failed)} suite documents failed to ingest", file=sys.stderr)
    items = [it for it in read_suite(folder / "suite.jsonl") if it.gold_sources and it.answerable is not False]
    items = items[:limit] if limit else items
    root = folder.resolve()
    searcher = Searcher(settings, home, collection, "hybrid", rerank=False)

    def key(source: str) -> str:
        path = Path(source)
        return path.relative_to(root).as_posix() if path.is_relative_to(root) else source

    if measure == "both@10":
        metric: Callable[[Any, list[str]], float] = lambda g, r: float(set(g) <= set(r[:10]))  # noqa: E731
    else:
        metric = lambda g, r: float(bool(set(g) & set(r[:5])))  # noqa: E731
    try:
        out = _run(folder.name, [(it.id, it.question, tuple(it.gold_sources or ())) for it in items], searcher,
                   TOP_N, rerankers, key, metric)
    finally:
        searcher.close()
    return {"dataset": folder.name, "measure": measure, **out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default=None)
    parser.add_argument("--scifact", type=Path)
    parser.add_argument("--hotpotqa", type=Path, help="suite folder from `rag eval import hotpotqa`")
    parser.add_argument("--clapnq", type=Path, help="suite folder from `rag eval import clapnq`")
    parser.add_argument("--configs", default="shipped,shipped-ce,untrained")
    parser.add_argument("--model", action="append", default=[], metavar="DIR",
                        help="also rerank with this model folder (its own blend), as config 'model:DIR'; repeatable")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    home = resolve_home(args.home)
    settings = load_settings(home)
    for path in (args.scifact, args.hotpotqa, args.clapnq):
        if path is not None and not path.is_dir():
            print(f"error: {path} is not a folder", file=sys.stderr)
            return 2
    rerankers: dict[str, Reranker] = {}
    for cfg in [c for c in args.configs.split(",") if c]:
        model, blend = CONFIGS[cfg]
        same = next((r for r in rerankers.values() if r.name == model), None)
        if same is not None:  # one loaded model, another blend
            rerankers[cfg] = copy.copy(same)
            rerankers[cfg].blend = same.blend if blend is None else blend
            continue
        rerankers[cfg] = Reranker(model, batch_size=32, max_length=settings.rerank.max_length,
                                  threads=args.threads, blend=blend)
    for folder in args.model:
        rerankers[f"model:{folder}"] = Reranker(folder, batch_size=32, max_length=settings.rerank.max_length,
                                                threads=args.threads)
    results = []
    if args.scifact:
        results.append(scifact(args.scifact, settings, home, rerankers, args.limit))
        print(json.dumps(results[-1]), flush=True)
    if args.hotpotqa:
        results.append(suite(args.hotpotqa, settings, home, rerankers, args.limit, "both@10"))
        print(json.dumps(results[-1]), flush=True)
    if args.clapnq:
        results.append(suite(args.clapnq, settings, home, rerankers, args.limit, "recall@5"))
        print(json.dumps(results[-1]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
