"""Answerability signals on a suite with answerable and unanswerable questions (e.g. ClapNQ).

For each sampled question the evidence is gathered as ``rag ask`` gathers it (reranked by
default), then, in this order, so that a llama.cpp server reuses the answer prompt's KV cache after the gate:

- ``gate``: P(yes) that the sources contain the answer, asked before answering
  (rag.query.prompt.answerable_messages, what ``[answer] gate`` uses);
- the draft answer, generated as ``rag ask`` generates it, and whether it is a refusal;
- ``verify``: P(yes) that the passages the draft cites (all sources when it cites none) state
  it as the answer to the question (rag.query.prompt.verify_messages, what ``[answer] verify`` asks);
- ``support``: the answer-time support check of each cited sentence against its sources.

One JSON line per question goes to --out as soon as it is known; the script then prints, per
signal, the AUROC for telling answerable from unanswerable questions and, per threshold, the
share of each kind that would be refused (draft refusals included). Pick thresholds on questions
you do not report on (--exclude the reported sample); --from re-reads a finished --out file
without calling the LLM.

    python benchmarks/refusal_signals.py /tmp/suites/clapnq --home /tmp/cq -c clapnq --per-class 40 \\
        --exclude /tmp/suites/clapnq80 --out /tmp/signals_tune.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: python benchmarks/...
    sys.path.insert(0, str(REPO))

from benchmarks.refusal_gate import THRESHOLDS, _suite_file, auroc, sample  # noqa: E402
from evals.suite import read_suite  # noqa: E402
from rag.core.config import load_settings, resolve_home  # noqa: E402


def collect(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Ask every sampled question and record its signals (written to --out line by line)."""
    import rag.core.prompts
    from rag.query.answer import support_prompt

    if args.system:
        rag.core.prompts.ANSWER_SYSTEM = args.system
    from rag.query.cite import is_refusal, parse_answer
    from rag.query.prompt import answer_messages, answerable_messages, verify_messages

    exclude = {i.id for s in args.exclude for i in read_suite(_suite_file(s))}
    items = sample(read_suite(_suite_file(args.suite)), args.per_class, args.seed, exclude)
    home = resolve_home(args.home)
    settings = load_settings(home)
    from rag.query.answer import Answerer

    answerer = Answerer(settings, home, args.collection, rerank=None if args.rerank else False)
    llm = answerer.llm
    rows: list[dict[str, Any]] = []
    out = args.out.open("w", encoding="utf-8") if args.out else None
    try:
        for n, item in enumerate(items, 1):
            t0 = time.perf_counter()
            chunks = answerer.gather(item.question).chunks
            gate = llm.yes_probability(answerable_messages(item.question, chunks)) if args.gate else 1.0
            t1 = time.perf_counter()
            draft = "".join(llm.stream(answer_messages(item.question, chunks))).strip()
            t2 = time.perf_counter()
            refused = is_refusal(draft)
            parsed = parse_answer(draft, len(chunks))
            read = [chunks[m - 1].text for m in sorted(parsed.cited)] or [c.text for c in chunks]
            verify = None if refused else llm.yes_probability(verify_messages(item.question, parsed.text, read))
            t3 = time.perf_counter()
            support = []
            if not refused:
                for s in parsed.sentences:
                    if s.sources:
                        support.append(round(llm.yes_probability(
                            support_prompt(s.text, [chunks[m - 1].text for m in s.sources])), 4))
            row = {"id": item.id, "answerable": item.answerable, "question": item.question, "draft": draft,
                   "refused": refused, "gate": round(gate, 4), "verify": None if verify is None else round(verify, 4),
                   "support": support, "seconds": {"gate": round(t1 - t0, 2), "draft": round(t2 - t1, 2),
                                                   "verify": round(t3 - t2, 2),
                                                   "support": round(time.perf_counter() - t3, 2)}}
            rows.append(row)
            if out:
                out.write(json.dumps(row) + "\n")
                out.flush()
            print(f"{n}/{len(items)} answerable={item.answerable} refused={refused} gate={gate:.2f} "
                  f"verify={verify if verify is None else round(verify, 2)} support={support} {row['seconds']}",
                  file=sys.stderr)
    finally:
        if out:
            out.close()
        answerer.close()
    return rows


def _signal(row: dict[str, Any], name: str) -> float:
    """The row's score for ``name``; a draft refusal scores 0 (it is refused whatever the threshold)."""
    if row["refused"]:
        return 0.0
    if name == "support_max":
        return max(row["support"], default=1.0)
    if name == "verify_and_gate":
        return min(row["verify"], row["gate"])
    return float(row[name])


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """AUROC and refusal rates per threshold for each signal, draft refusals counted as refused."""
    out: dict[str, Any] = {"questions": len(rows),
                           "draft_refuses": {k: round(float(np.mean([r["refused"] for r in rows
                                                                     if r["answerable"] is flag])), 4)
                                             for k, flag in (("unanswerable", False), ("answerable", True))}}
    for name in ("gate", "verify", "support_max", "verify_and_gate"):
        pos = [_signal(r, name) for r in rows if r["answerable"]]
        neg = [_signal(r, name) for r in rows if not r["answerable"]]
        curve = {str(t): [round(float(np.mean([v < t for v in neg])), 3),
                          round(float(np.mean([v < t for v in pos])), 3)] for t in THRESHOLDS}
        answered = [r for r in rows if not r["refused"]]
        out[name] = {"auroc": auroc(pos, neg),
                     "auroc_answered": auroc([_signal(r, name) for r in answered if r["answerable"]],
                                             [_signal(r, name) for r in answered if not r["answerable"]]),
                     "refused [unanswerable, answerable] by threshold": curve}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", type=Path, nargs="?", help="suite.jsonl or its folder, with answerable flags")
    parser.add_argument("--home", default=None, help="rag home holding the collection (default: $RAG_HOME)")
    parser.add_argument("-c", "--collection", default=None)
    parser.add_argument("--per-class", type=int, default=None, help="sample N answerable and N unanswerable")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exclude", type=Path, action="append", default=[], help="a suite whose ids to leave out")
    parser.add_argument("--no-rerank", dest="rerank", action="store_false", help="fused order, no reranker")
    parser.add_argument("--out", type=Path, default=None, help="write one JSON line per question here")
    parser.add_argument("--system", default=None, help="try another system prompt for the answer (and the checks "
                        "that repeat its prefix)")
    parser.add_argument("--no-gate", dest="gate", action="store_false", help="skip the gate question")
    parser.add_argument("--from", dest="source", type=Path, default=None, help="score a finished --out file")
    args = parser.parse_args(argv)
    if args.source is not None:
        rows = [json.loads(x) for x in args.source.read_text(encoding="utf-8").splitlines() if x.strip()]
    else:
        if args.suite is None or args.collection is None:
            parser.error("give a suite and --collection, or --from FILE")
        rows = collect(args)
    print(json.dumps(report(rows), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
