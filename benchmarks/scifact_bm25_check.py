"""Check evals.metrics against pytrec_eval on a real BM25 run over a BEIR folder (SciFact).

Runs rank_bm25 (BM25Okapi, k1=0.9 b=0.4 as in Anserini) over title + text of the corpus
for one split's queries, keeps the top 1000 documents per query, and prints our metrics
next to pytrec_eval's (trec_eval) values for the same run, with the largest per-query
difference. Analyzers: ``english`` (the project's: lower-cased word tokens, English
stop words, Snowball stems) or ``plain`` (lower-cased ``\\w+`` tokens).

    python benchmarks/scifact_bm25_check.py ../shared/data/scifact
"""

from __future__ import annotations

import argparse
import heapq
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from evals.beir import BeirFormatError, beir_documents, load_beir  # noqa: E402
from evals.metrics import bootstrap_ci, evaluate  # noqa: E402

# ours -> pytrec_eval measure
COMPARED = {
    "map": "map",
    "mrr": "recip_rank",
    "ndcg@10": "ndcg_cut_10",
    "recall@10": "recall_10",
    "recall@100": "recall_100",
    "precision@10": "P_10",
    "map@10": "map_cut_10",
    "ndcg@100": "ndcg_cut_100",
}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run BM25, print the side-by-side table; 0 when every value agrees."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("beir_dir", type=Path, help="BEIR folder (e.g. ../shared/data/scifact)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--analyzer", choices=("english", "plain"), default="english")
    parser.add_argument("--depth", type=int, default=1000, help="documents kept per query")
    args = parser.parse_args(argv)

    try:
        import pytrec_eval
        from rank_bm25 import BM25Okapi
    except ImportError as exc:
        print(f"error: {exc.name} is not installed; pip install -e '.[test]'", file=sys.stderr)
        return 2
    try:
        data = load_beir(args.beir_dir, args.split)
    except BeirFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if args.analyzer == "english":
        from rag.core.lexical import Analyzer

        tokens = Analyzer().tokens
    else:
        word = re.compile(r"\w+")

        def tokens(text: str) -> list[str]:
            return word.findall(text.lower())

    t0 = time.perf_counter()
    ids, texts = [], []
    for doc_id, title, text in beir_documents(data):
        ids.append(doc_id)
        texts.append(tokens(f"{title} {text}"))
    bm25 = BM25Okapi(texts, k1=0.9, b=0.4)
    run: dict[str, dict[str, float]] = {}
    for qid, query in data.queries.items():
        scores = bm25.get_scores(tokens(query))
        top = heapq.nlargest(args.depth, range(len(ids)), key=scores.__getitem__)
        run[qid] = {ids[i]: float(scores[i]) for i in top}
    bm25_s = time.perf_counter() - t0

    ours = evaluate(data.qrels, run)
    theirs = pytrec_eval.RelevanceEvaluator(
        data.qrels, {"map", "recip_rank", "ndcg_cut.10,100", "recall.10,100", "P.10", "map_cut.10"}
    ).evaluate(run)
    print(
        f"{args.beir_dir.name} {args.split}: {len(data.corpus)} docs, {len(ours.queries)} queries, "
        f"analyzer={args.analyzer}, BM25Okapi k1=0.9 b=0.4, depth {args.depth} ({bm25_s:.1f}s)"
    )
    print(f"{'metric':<13}{'evals.metrics':>14}{'pytrec_eval':>14}{'max |diff|/q':>14}   95% CI (ours)")
    worst = 0.0
    for name, trec_name in COMPARED.items():
        mean_theirs = sum(v[trec_name] for v in theirs.values()) / len(theirs)
        diff = max(abs(ours.per_query[q][name] - theirs[q][trec_name]) for q in theirs)
        worst = max(worst, diff, abs(ours.means[name] - mean_theirs))
        low, high = bootstrap_ci(ours.values(name))
        print(f"{name:<13}{ours.means[name]:>14.4f}{mean_theirs:>14.4f}{diff:>14.1e}   [{low:.4f}, {high:.4f}]")
    print(f"queries judged {len(data.qrels)}, in run {len(theirs)}, missing from run {len(ours.missing)}")
    print("agree to 1e-9" if worst <= 1e-9 else f"DISAGREE: max difference {worst:.3g}")
    return 0 if worst <= 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
