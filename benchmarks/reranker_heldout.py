"""Compare reranker folders on the held-out questions of a training source (model selection without test data).

``rag tune reranker`` keeps a seeded share of each source's questions aside. This script mines
the same held-out questions again (same seed, same per-source cap) and prints, for each model,
nDCG@10 of the hybrid top candidates reranked by the cross-encoder alone and blended with the
hybrid score at the model's own blend. Use it to choose between two training runs on data
neither was trained on, before looking at any test split.

    python benchmarks/reranker_heldout.py ../shared/data/scifact --home H --heldout-max 50 \\
        --model rag/models/reranker --model /tmp/rr_v2

--heldout-max must be the per-source cap of the training runs: 100 // (number of --train sources).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from rag.core.config import load_settings, resolve_home


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a training source: suite, BEIR folder or ARES .tsv")
    parser.add_argument("--home", default=None)
    parser.add_argument("--model", action="append", required=True, metavar="DIR")
    parser.add_argument("--heldout-max", type=int, default=100)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--ares-per-file", type=int, default=None)
    args = parser.parse_args(argv)

    from rag.query.rerank import Reranker
    from rag.tune.reranker import TuneOptions, heldout_ndcg, prepare

    home = resolve_home(args.home)
    settings = load_settings(home)
    with tempfile.TemporaryDirectory() as tmp:
        opts = TuneOptions(sources=(args.source,), out=Path(tmp), heldout_max=args.heldout_max, seed=args.seed,
                           per_file=args.ares_per_file)
        prep = prepare(opts, settings, home, lambda m: print(m, file=sys.stderr))
    report = {"source": args.source, "heldout_questions": len(prep.held),
              "ndcg@10_hybrid": round(heldout_ndcg(prep.held, prep.gold, None), 4), "models": {}}
    for folder in args.model:
        rr = Reranker(folder, max_length=settings.rerank.max_length, threads=settings.rerank.threads)
        scores = [rr.scores(m.query, [c.text for c in m.candidates]) for m in prep.held]
        report["models"][folder] = {
            "blend": rr.blend,
            "ndcg@10_ce": round(heldout_ndcg(prep.held, prep.gold, scores, 1.0), 4),
            "ndcg@10_blended": round(heldout_ndcg(prep.held, prep.gold, scores, rr.blend), 4),
        }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
