"""The trained grounding verifier against the LLM judge, on ARES rows of a file it never saw.

Samples N rows of one ARES ``*_synthetic_queries.tsv`` file (by default ``wow``, the file the
shipped verifier was not trained on) with a relevant document, half with a faithful answer and
half with an unfaithful one (fixed seed, the sampling of benchmarks/judge_ares.py), and scores
the faithfulness of each answer against its document twice: with the verifier
(``rag.query.verify_model``, P(supported) of the answer read as an answer to the question) and
with the LLM judge and prompts ``rag eval run`` uses (``--llm``; a few seconds per row on 2 cores).
Prints AUROC, accuracy at 0.5 and the time per claim of each:

    python benchmarks/verifier_heldout.py $DATA/ares-train -n 200 --llm --llm-out llm.json
    python benchmarks/verifier_heldout.py $DATA/ares-train -n 200 --llm-scores llm.json

``--llm-out`` keeps the judge's per-row scores; ``--llm-scores`` reads them back so the
verifier can be measured again without the slow judge (the rows must be the same sample);
``--verifier-out`` / ``--verifier-scores`` do the same for the verifier.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from judge_ares import auroc, load_rows, sample  # noqa: E402


def row_key(row: dict[str, str]) -> str:
    """A stable id of a sampled row (file, question, answer)."""
    return f"{row['file']}|{row['synthetic_query']}|{row['generated_answer']}"


def accuracy(scores: list[float], labels: list[bool], threshold: float = 0.5) -> float:
    """Share of rows whose score is on the right side of ``threshold``."""
    return sum((s >= threshold) == y for s, y in zip(scores, labels)) / len(scores) if scores else float("nan")


def judge_llm(rows: list[dict[str, str]], home: str | None, threads: int | None, say: bool) -> dict[str, object]:
    """P(yes) of the LLM judge for every row (mean over the answer's statements), as benchmarks/judge_ares.py."""
    from evals.answer_metrics import Verdicts, faithfulness, judged, statements
    from evals.judge import judge_config, make_judge
    from rag.core.config import load_settings, resolve_home

    home_path = resolve_home(home)
    config = judge_config(load_settings(home_path))
    if threads:
        config = config.model_copy(update={"threads": threads})
    judge = make_judge(config, home_path, "logprob")
    scores: dict[str, float] = {}
    errors: list[dict[str, str]] = []
    started = time.perf_counter()
    claims_judged = 0
    try:
        for i, row in enumerate(rows, 1):
            claims = statements(row["generated_answer"], 1)
            if not claims:
                continue
            verdicts = Verdicts(judge, [row["document"]], row["synthetic_query"])
            if judged(lambda: faithfulness(claims, 1, verdicts.supported), errors, "faithfulness") is None:
                continue
            probs = verdicts.probabilities("supported")
            claims_judged += len(probs)
            scores[row_key(row)] = sum(probs) / len(probs)
            if say:
                print(f"\rLLM judge: {i}/{len(rows)} rows", end="", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print(f"\ninterrupted: keeping the {len(scores)} rows judged so far", file=sys.stderr)
    finally:
        judge.close()
    seconds = time.perf_counter() - started
    if say:
        print(file=sys.stderr)
    return {"scores": scores, "claims": claims_judged, "seconds": round(seconds, 1), "errors": len(errors),
            "judge": judge.info.as_dict()}


def run_verifier(rows: list[dict[str, str]], model: str | None, threads: int) -> dict[str, object]:
    """P(supported) of the verifier for every row, and the time per claim (one at a time, and batched)."""
    from rag.query.verify_model import Verifier, answer_claim

    verifier = Verifier(model, threads=threads)
    pairs = [(row["document"], answer_claim(row["generated_answer"], row["synthetic_query"])) for row in rows]
    verifier.probabilities(pairs[:4])  # warm-up
    started = time.perf_counter()
    one = [verifier.probability(e, c) for e, c in pairs]
    single = time.perf_counter() - started
    started = time.perf_counter()
    batched = verifier.probabilities(pairs)
    batch = time.perf_counter() - started
    drift = max(abs(a - b) for a, b in zip(one, batched)) if one else 0.0
    return {"scores": {row_key(r): s for r, s in zip(rows, batched)}, "ms_per_claim": round(1000 * single / len(rows), 1),
            "ms_per_claim_batched": round(1000 * batch / len(rows), 1), "max_single_vs_batch_diff": round(drift, 5),
            "model": str(verifier.folder), "threads": threads}


def summarise(rows: list[dict[str, str]], scores: dict[str, float]) -> dict[str, object]:
    """AUROC and accuracy at 0.5 over the rows that have a score."""
    got = [(scores[row_key(r)], r["Answer_Faithfulness_Label"] == "Yes") for r in rows if row_key(r) in scores]
    s, y = [a for a, _ in got], [b for _, b in got]
    return {"rows": len(got), "faithful": sum(y), "auroc": round(auroc(s, y), 4), "accuracy_at_0.5": round(accuracy(s, y), 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ares_dir", type=Path, help="folder with the ARES *_synthetic_queries.tsv files")
    parser.add_argument("--file", default="wow", help="the held-out ARES file (its name before the first '_')")
    parser.add_argument("-n", type=int, default=200, help="rows (half faithful, half not)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None, help="verifier folder (default: the shipped rag/models/verifier)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the verifier")
    parser.add_argument("--no-verifier", action="store_true", help="only run the LLM judge")
    parser.add_argument("--verifier-out", type=Path, default=None, help="write the verifier's per-row scores here")
    parser.add_argument("--verifier-scores", type=Path, default=None,
                        help="read the verifier's scores written by --verifier-out instead of running it")
    parser.add_argument("--llm", action="store_true", help="also run the LLM judge ([llm] of --home; slow)")
    parser.add_argument("--llm-threads", type=int, default=None, help="CPU threads of the local llama.cpp server")
    parser.add_argument("--llm-out", type=Path, default=None, help="write the LLM judge's per-row scores here")
    parser.add_argument("--llm-scores", type=Path, default=None, help="read the LLM judge's scores written by --llm-out")
    parser.add_argument("--home", default=None, help="rag home of the LLM judge (default: $RAG_HOME or ~/.local/share/rag)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if not args.ares_dir.is_dir() or not any(args.ares_dir.glob("*_synthetic_queries.tsv")):
        print(f"error: {args.ares_dir} holds no ARES *_synthetic_queries.tsv files (e.g. ~/data/ares-train)",
              file=sys.stderr)
        return 2
    rows = sample([r for r in load_rows(args.ares_dir) if r["file"] == args.file], args.n, args.seed)
    if not rows:
        print(f"error: no rows of file {args.file!r} in {args.ares_dir}", file=sys.stderr)
        return 2
    result: dict[str, object] = {"file": args.file, "rows": len(rows), "seed": args.seed}
    verifier_scores: dict[str, float] = {}
    if args.verifier_scores:
        saved = json.loads(args.verifier_scores.read_text(encoding="utf-8"))
        verifier_scores = saved.pop("scores")
        result["verifier"] = {**summarise(rows, verifier_scores), **saved}
    elif not args.no_verifier:
        ver = run_verifier(rows, args.model, args.threads)
        verifier_scores = ver.pop("scores")  # type: ignore[assignment]
        result["verifier"] = {**summarise(rows, verifier_scores), **ver}
        if args.verifier_out:
            args.verifier_out.write_text(json.dumps({**ver, "scores": verifier_scores}, indent=1), encoding="utf-8")
    llm = None
    if args.llm:
        llm = judge_llm(rows, args.home, args.llm_threads, not args.json)
        if args.llm_out:
            args.llm_out.write_text(json.dumps({"file": args.file, "seed": args.seed, "n": args.n, **llm}, indent=1),
                                    encoding="utf-8")
    elif args.llm_scores:
        llm = json.loads(args.llm_scores.read_text(encoding="utf-8"))
        if (llm.get("file"), llm.get("seed"), llm.get("n")) != (args.file, args.seed, args.n):
            print(f"error: {args.llm_scores} was judged on another sample", file=sys.stderr)
            return 2
    if llm is not None:
        scores = llm["scores"]
        claims = int(llm["claims"]) or 1
        result["llm_judge"] = {**summarise(rows, scores), "ms_per_claim": round(1000 * float(llm["seconds"]) / claims, 1),
                               "claims": llm["claims"], "errors": llm["errors"], "judge": llm.get("judge")}
        both = [r for r in rows if row_key(r) in scores]
        if verifier_scores and len(both) < len(rows):
            result["verifier_on_llm_rows"] = summarise(both, verifier_scores)
            result["note"] = (f"the LLM judge scored {len(both)} of {len(rows)} rows; verifier_on_llm_rows is the "
                              "verifier on those same rows")
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>10}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
