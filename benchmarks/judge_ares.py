"""Judge sanity check on ARES rows: does the faithfulness judge separate faithful from unfaithful answers?

Samples N rows with a relevant document (``Context_Relevance_Label`` Yes) from the ARES
``*_synthetic_queries.tsv`` files, half with a faithful answer and half with an unfaithful
one (fixed seed), scores the faithfulness of ``generated_answer`` against ``document`` with
the same judge and prompts ``rag eval run`` uses, and prints the AUROC (target >= 0.9) and
the judge's throughput:

    python benchmarks/judge_ares.py ../shared/data/ares-train -n 200
    python benchmarks/judge_ares.py ../shared/data/ares-train -n 100 --judge-url http://127.0.0.1:8080/v1

Without ``--judge-url`` the judge is ``[llm]`` of the home (by default the local
qwen2.5-coder-1.5b-instruct through llama.cpp; ``--threads`` sets its CPU threads).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from evals.answer_metrics import Verdicts, faithfulness, judged, statements  # noqa: E402
from evals.judge import judge_config, make_judge  # noqa: E402
from rag.core.config import load_settings, resolve_home  # noqa: E402


def load_rows(folder: Path) -> list[dict[str, str]]:
    """Relevant rows with a Yes/No faithfulness label from every ``*_synthetic_queries.tsv``."""
    csv.field_size_limit(1 << 30)
    rows = []
    for path in sorted(folder.glob("*_synthetic_queries.tsv")):
        with open(path, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                if row.get("Context_Relevance_Label") == "Yes" and row.get("Answer_Faithfulness_Label") in ("Yes", "No"):
                    row["file"] = path.name.split("_")[0]
                    rows.append(row)
    return rows


def sample(rows: list[dict[str, str]], n: int, seed: int) -> list[dict[str, str]]:
    """n rows, half faithful and half not, in a seeded random order."""
    rng = random.Random(seed)
    pos = [r for r in rows if r["Answer_Faithfulness_Label"] == "Yes"]
    neg = [r for r in rows if r["Answer_Faithfulness_Label"] == "No"]
    picked = rng.sample(pos, min(n // 2, len(pos))) + rng.sample(neg, min(n - n // 2, len(neg)))
    rng.shuffle(picked)
    return picked


def auroc(scores: list[float], labels: list[bool]) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return float("nan")
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ares_dir", type=Path, help="folder with the ARES *_synthetic_queries.tsv files")
    parser.add_argument("-n", type=int, default=200, help="rows to judge (half faithful, half not)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--home", default=None, help="rag home (default: $RAG_HOME or ~/.local/share/rag)")
    parser.add_argument("--judge-url", default=None, help="OpenAI-compatible judge endpoint (default: [llm])")
    parser.add_argument("--judge-model", default=None, help="endpoint model, or a local model name / .gguf path")
    parser.add_argument("--method", choices=["logprob", "json"], default="logprob")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of a local llama.cpp server")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if not args.ares_dir.is_dir() or not any(args.ares_dir.glob("*_synthetic_queries.tsv")):
        print(f"error: {args.ares_dir} holds no ARES *_synthetic_queries.tsv files (e.g. ../shared/data/ares-train)",
              file=sys.stderr)
        return 2
    home = resolve_home(args.home)
    settings = load_settings(home)
    config = judge_config(settings, args.judge_url, args.judge_model)
    if args.threads:
        config = config.model_copy(update={"threads": args.threads})
    rows = sample(load_rows(args.ares_dir), args.n, args.seed)
    judge = make_judge(config, home, args.method)
    scores: list[float] = []
    labels: list[bool] = []
    hard: list[float] = []
    files: list[str] = []
    errors: list[dict[str, str]] = []
    judgements = 0
    started = time.perf_counter()
    try:
        for i, row in enumerate(rows, 1):  # Ctrl-C stops early and reports the rows judged so far
            claims = statements(row["generated_answer"], 1)
            if not claims:
                continue
            verdicts = Verdicts(judge, [row["document"]], row["synthetic_query"])
            share = judged(lambda: faithfulness(claims, 1, verdicts.supported), errors, "faithfulness")
            judgements += len(verdicts.records)
            if share is None:
                continue
            probs = verdicts.probabilities("supported")
            scores.append(sum(probs) / len(probs))
            hard.append(share)
            labels.append(row["Answer_Faithfulness_Label"] == "Yes")
            files.append(row["file"])
            if not args.json:
                print(f"\r{i}/{len(rows)} judged, {judgements / (time.perf_counter() - started):.2f} judgements/s",
                      end="", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print(f"\ninterrupted: reporting the {len(scores)} rows judged so far", file=sys.stderr)
    finally:
        judge.close()
    seconds = time.perf_counter() - started
    if not args.json:
        print(file=sys.stderr)
    threshold = judge.threshold
    accuracy = sum((s >= threshold) == y for s, y in zip(scores, labels)) / len(scores) if scores else float("nan")
    result = {
        "rows": len(rows), "scored": len(scores), "faithful_scored": sum(labels), "errors": len(errors),
        "auroc": round(auroc(scores, labels), 4), "auroc_hard": round(auroc(hard, labels), 4),
        "accuracy_at_threshold": round(accuracy, 4), "threshold": threshold, "judgements": judgements,
        "seconds": round(seconds, 1), "judgements_per_s": round(judgements / seconds, 3) if seconds else None,
        "judge": judge.info.as_dict(), "seed": args.seed,
        "per_file_auroc": {f: round(auroc([s for s, g in zip(scores, files) if g == f],
                                          [y for y, g in zip(labels, files) if g == f]), 4) for f in sorted(set(files))},
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
