"""Choose hybrid fusion settings on a BEIR split (use the TRAIN split; report on test with `rag eval beir`).

Runs each base retriever once per query (top 100), then scores fusion variants offline:
weighted RRF over a grid of weights and k, and min-max score fusion.

    rag eval beir ../shared/data/scifact --retriever bm25 --no-rerank   # ingests the collection once
    python benchmarks/tune_fusion.py ../shared/data/scifact --split train --home ~/.local/share/rag
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from evals.beir import load_beir
from evals.beir_run import beir_settings, collection_name
from evals.metrics import evaluate
from rag.core.config import load_settings, resolve_home
from rag.query.merge import merge
from rag.query.retrieve import RetrieverContext, make_retriever


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("beir_dir", type=Path)
    parser.add_argument("--split", default="train")
    parser.add_argument("--home", default=None)
    parser.add_argument("--parts", default="dense,bm25")
    args = parser.parse_args(argv)
    home = resolve_home(args.home)
    settings = beir_settings(load_settings(home))
    data = load_beir(args.beir_dir, args.split)
    ctx = RetrieverContext(settings, home, collection_name(args.beir_dir))
    if ctx.store.count() == 0:
        print("error: ingest the corpus first with `rag eval beir DIR`", file=sys.stderr)
        return 2
    prefix = f"beir:{args.beir_dir.resolve().name}/"
    parts = {name: make_retriever(name, ctx) for name in args.parts.split(",")}
    rankings = {qid: {n: r.retrieve(q, 100) for n, r in parts.items()} for qid, q in sorted(data.queries.items())}

    def score(method: str, weights: dict[str, float], k: float) -> float:
        run = {}
        for qid, ranked in rankings.items():
            fused = merge(ranked, weights, method, k)
            run[qid] = {c.source[len(prefix):]: 1000.0 - i for i, c in enumerate(fused)}
        return evaluate(data.qrels, run, ks=(10,)).means["ndcg@10"]

    results = []
    for name in parts:
        single = {n: (1.0 if n == name else 0.0) for n in parts}
        results.append(("single", name, 0, score("rrf", single, 60)))
    grid = [0.3, 0.5, 0.7, 1.0, 1.5, 2.0]
    names = list(parts)
    for ws in itertools.product(grid, repeat=len(names) - 1):
        weights = {names[0]: 1.0, **dict(zip(names[1:], ws))}
        for k in (10, 30, 60, 100):
            results.append(("rrf", json.dumps(weights), k, score("rrf", weights, k)))
        results.append(("score", json.dumps(weights), 0, score("score", weights, 0)))
    results.sort(key=lambda r: -r[3])
    for row in results[:15]:
        print(f"{row[0]:>6}  {row[1]:<40} k={row[2]:<4} ndcg@10={row[3]:.4f}")
    ctx.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
