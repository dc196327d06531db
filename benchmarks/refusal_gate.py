"""The answerability gate (``[answer] gate``) on a suite with answerable and unanswerable questions.

For each question the evidence is gathered exactly as ``rag ask`` gathers it, and the LLM is
asked the gate's yes/no question (rag.query.prompt.answerable_messages: do the sources contain the
answer?). The script prints one JSON object: the AUROC of P(yes) for telling answerable from
unanswerable questions, and for each threshold the share of unanswerable and of answerable
questions the gate alone would refuse. With --results (a ``rag eval run --out`` file of the same
questions, answered without the gate) it also gives the end-to-end refusal rates with the gate in
front: a question is refused when the gate refuses it, else as it was in that run (answers at
temperature 0 do not change when the gate lets a question through).

``--judge verifier`` asks the trained verifier instead of the LLM (no LLM at all): P(yes) is its best
P(supported) of the question itself, as the claim, against any window of any source.

Pick the threshold on questions you do not report on (--exclude the reported sample):

    python benchmarks/refusal_gate.py /tmp/suites/clapnq --home /tmp/cq -c clapnq --per-class 40 \\
        --exclude /tmp/suites/clapnq80 --out /tmp/gate_tune.jsonl
    python benchmarks/refusal_gate.py /tmp/suites/clapnq80 --home /tmp/cq -c clapnq \\
        --results /tmp/cq/clapnq80.jsonl --out /tmp/gate_80.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from evals.suite import SuiteItem, read_suite
from rag.core.config import load_settings, resolve_home

THRESHOLDS = tuple(round(x * 0.05, 2) for x in range(1, 20))


def _suite_file(path: Path) -> Path:
    return path / "suite.jsonl" if path.is_dir() else path


def sample(items: list[SuiteItem], per_class: int | None, seed: int, exclude: set[str]) -> list[SuiteItem]:
    """Questions with a known answerable flag, minus ``exclude``; ``per_class`` of each kind when given (seeded)."""
    pool = [i for i in items if i.answerable is not None and i.id not in exclude]
    if per_class is None:
        return pool
    rng = random.Random(seed)
    out: list[SuiteItem] = []
    for flag in (True, False):
        group = [i for i in pool if i.answerable is flag]
        out += rng.sample(group, min(per_class, len(group)))
    return out


def auroc(pos: list[float], neg: list[float]) -> float | None:
    """Probability that a random answerable question scores above a random unanswerable one (ties count half)."""
    if not pos or not neg:
        return None
    p, n = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return round(float(((p > n) + 0.5 * (p == n)).mean()), 4)


def curve(rows: list[dict[str, Any]], previous: dict[str, bool] | None) -> dict[str, Any]:
    """Refusal rates per threshold, by the gate alone and (with ``previous``) end to end."""
    out: dict[str, Any] = {}
    for t in THRESHOLDS:
        entry: dict[str, Any] = {}
        for flag, name in ((False, "unanswerable"), (True, "answerable")):
            group = [r for r in rows if r["answerable"] is flag]
            if not group:
                continue
            entry[f"gate_refuses_{name}"] = round(float(np.mean([r["p_yes"] < t for r in group])), 4)
            if previous is not None:
                known = [r for r in group if r["id"] in previous]
                if known:
                    entry[f"refused_{name}"] = round(float(np.mean(
                        [r["p_yes"] < t or previous[r["id"]] for r in known])), 4)
        out[str(t)] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", type=Path, help="suite.jsonl or its folder, with answerable flags (e.g. ClapNQ)")
    parser.add_argument("--home", default=None, help="rag home holding the collection (default: $RAG_HOME)")
    parser.add_argument("-c", "--collection", required=True)
    parser.add_argument("--per-class", type=int, default=None, help="sample N answerable and N unanswerable")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exclude", type=Path, action="append", default=[], help="a suite whose ids to leave out")
    parser.add_argument("--results", type=Path, default=None, help="rag eval run --out file of these questions")
    parser.add_argument("--rerank", action="store_true", help="rerank the evidence (default: fused order, as "
                        "`rag eval run --no-rerank`)")
    parser.add_argument("--all-answerable", action="store_true",
                        help="count questions without an answerable flag as answerable (e.g. HotpotQA: what the gate "
                        "would refuse of questions that all have an answer)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions (after sampling)")
    parser.add_argument("--judge", choices=("llm", "verifier"), default="llm",
                        help="who answers the gate question (verifier: the shipped one, or [answer] verifier)")
    parser.add_argument("--out", type=Path, default=None, help="write one JSON line per question here")
    args = parser.parse_args(argv)
    if args.per_class is not None and args.per_class <= 0:
        parser.error("--per-class must be at least 1")
    exclude = {i.id for s in args.exclude for i in read_suite(_suite_file(s))}
    suite_items = read_suite(_suite_file(args.suite))
    if args.all_answerable:
        import dataclasses

        suite_items = [i if i.answerable is not None else dataclasses.replace(i, answerable=True) for i in suite_items]
    items = sample(suite_items, args.per_class, args.seed, exclude)[:args.limit]
    if not items:
        parser.error("no question with an answerable flag left to score")
    previous = None
    if args.results is not None:
        lines = [json.loads(x) for x in args.results.read_text(encoding="utf-8").splitlines() if x.strip()]
        previous = {str(r["id"]): bool(r.get("refused")) for r in lines}

    from rag.query.answer import Answerer

    home = resolve_home(args.home)
    settings = load_settings(home)
    answerer = Answerer(settings, home, args.collection, rerank=args.rerank)
    if args.judge == "verifier":
        from rag.query.checker import VerifierChecker
        from rag.query.verify_model import get_verifier

        verifier, why = get_verifier(settings.answer.verifier or None)
        if verifier is None:
            parser.error(str(why))
        checker: Any = VerifierChecker(verifier)  # exactly what `rag ask` asks with checker = verifier
    else:
        from rag.query.checker import LlmChecker

        checker = LlmChecker(answerer.llm, settings.answer.support_threshold, settings.answer.verify)

    def p_yes(question: str, chunks: Any) -> float:
        return checker.answerable(question, chunks, None)
    rows: list[dict[str, Any]] = []
    seconds: list[float] = []
    try:
        for n, item in enumerate(items, 1):
            evidence = answerer.gather(item.question)
            t0 = time.perf_counter()
            p = p_yes(item.question, evidence.chunks)
            seconds.append(time.perf_counter() - t0)
            rows.append({"id": item.id, "answerable": item.answerable, "p_yes": round(p, 4),
                         "question": item.question})
            print(f"{n}/{len(items)} answerable={item.answerable} p_yes={p:.3f} ({seconds[-1]:.1f} s)", file=sys.stderr)
    finally:
        answerer.close()
    if args.out is not None:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    pos = [r["p_yes"] for r in rows if r["answerable"]]
    neg = [r["p_yes"] for r in rows if not r["answerable"]]
    report = {
        "suite": str(args.suite), "questions": len(rows), "answerable": len(pos), "unanswerable": len(neg),
        "judge": args.judge,
        "llm": settings.llm.model or "default local model", "auroc": auroc(pos, neg),
        "p_yes_mean": {"answerable": round(float(np.mean(pos)), 4) if pos else None,
                       "unanswerable": round(float(np.mean(neg)), 4) if neg else None},
        "gate_seconds_p50": round(float(np.percentile(seconds, 50)), 2),
        "thresholds": curve(rows, previous),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
