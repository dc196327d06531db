"""Support checked by the trained verifier vs by the LLM (``[answer] checker``), on ClapNQ answers.

A seeded sample of answerable and unanswerable ClapNQ questions (``--per-kind`` each, seed 22 by
default: a sample no setting was tuned on) is asked in one process with the models loaded once
(the packaged defaults: hybrid + reranker, graph hop, verify on, the local 1.5B model), as a
resident ``rag serve`` engine would answer them:

1. ``checker = verifier``, for real: retrieval, the streamed draft, then ``verify`` and the
   per-sentence support checks by the verifier. Its first-token and whole-answer times are the
   warm figures of the issue.
2. ``checker = llm``, on the same question with the same draft: the draft is replayed from the
   first run (the same prompt gives the same greedy draft; replaying it saves ~30 s a question) and
   only the checks ask the LLM. Its whole-answer time is run 1's time up to the draft plus its own
   checks.

Both runs decide refusals for real: reported per checker are the refusal rates of each kind, the
withdrawn drafts, the answered answerable questions citing their gold passage, and the check time.

    python benchmarks/checker_answers.py $DATA/clapnq-dev --home /tmp/cq-home --per-kind 20 \\
        --rows /tmp/checker.rows.jsonl --out benchmarks/results/checker_answers.json

The ClapNQ collection is imported and ingested into ``--home`` on first use (benchmarks/compact_prompts.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from compact_prompts import COLLECTION, _p50, cites_gold, outcomes, prepare, sample

CHECKERS = ("verifier", "llm")


class Replay:
    """The real LLM client, except that a draft already written for the same messages is replayed."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.drafts: dict[str, str] = {}
        self.replaying = False

    def stream(self, messages: Any, **kw: Any) -> Iterator[str]:
        key = json.dumps(messages, sort_keys=True)
        if self.replaying and key in self.drafts:
            yield self.drafts[key]
            return
        parts = []
        for delta in self.llm.stream(messages, **kw):
            parts.append(delta)
            yield delta
        self.drafts[key] = "".join(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.llm, name)


def _checks_s(timings: dict[str, float]) -> float:
    return timings.get("verify_s", 0.0) + timings.get("check_s", 0.0)


def ask_all(items: list[Any], home: Path, rows_file: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Each question with the verifier (drafting for real), then with the LLM checks on the replayed draft."""
    from rag.core import prompts
    from rag.core.config import load_settings
    from rag.core.errors import RagError
    from rag.core.llm import LlmClient
    from rag.query.answer import Answerer

    base = load_settings(home)
    settings = {c: base.model_copy(update={"answer": base.answer.model_copy(update={"checker": c})})
                for c in CHECKERS}
    t_load = time.perf_counter()
    llm = Replay(LlmClient(base.llm, home))
    answerer = Answerer(settings["verifier"], home, COLLECTION, llm=llm)  # type: ignore[arg-type]
    answerer.gather("warm up the embedder and the reranker")
    llm.chat([{"role": "user", "content": prompts.WARM_UP}], max_tokens=1)
    checker_label = answerer.checker.label  # loads the verifier
    load_s = time.perf_counter() - t_load
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()] if rows_file.exists() else []
    done = {r["id"] for r in rows if r["checker"] == "llm"}
    try:
        for i, item in enumerate(items):
            if item.id in done:
                continue
            first: dict[str, Any] | None = None
            for checker in CHECKERS:
                answerer.settings = settings[checker]
                answerer._checker = None  # the checker the settings name
                llm.replaying = checker != "verifier"
                try:
                    answer = answerer.ask(item.question)
                except RagError as exc:
                    print(f"{i + 1}/{len(items)} {checker}: error: {exc}", file=sys.stderr)
                    row: dict[str, Any] = {"id": item.id, "answerable": item.answerable, "checker": checker,
                                           "error": str(exc)}
                else:
                    t = answer.timings
                    checks = _checks_s(t)
                    total = t["total_s"] if first is None else first["total_s"] - first["checks_s"] + checks
                    row = {"id": item.id, "answerable": item.answerable, "checker": checker,
                           "first_token_s": round(t.get("first_token_s", float("nan")), 3) if first is None
                           else first["first_token_s"], "total_s": round(total, 3), "checks_s": round(checks, 3),
                           "verified_probability": answer.verified_probability, "refused": answer.refused,
                           "withdrawn": answer.withdrawn, "cites_gold": cites_gold(answer, tuple(item.gold_sources or ())),
                           "sentences": len(answer.sentences),
                           "supported": [s.supported for s in answer.sentences],
                           "answer": answer.answer, "checked_by": answer.checker}
                    if first is None:
                        first = row
                rows.append(row)
                with rows_file.open("a") as fh:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                if "error" not in row:
                    print(f"{i + 1}/{len(items)} {'A' if item.answerable else 'U'} {checker}: total {row['total_s']} s, "
                          f"checks {row['checks_s']} s, refused {row['refused']}", file=sys.stderr)
                if first is None:
                    break  # the draft failed: nothing to replay
    finally:
        answerer.close()
    return rows, {"load_s": round(load_s, 2), "llm_model": base.llm.local_model, "llm_threads": base.llm.threads,
                  "verifier_model": checker_label}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The table's columns per checker, over the questions both checkers answered without error."""
    failed = {r["id"] for r in rows if "error" in r}
    both = {r["id"] for r in rows if r["checker"] == "llm"} - failed
    out: dict[str, Any] = {"errors": len(failed), "questions": len(both)}
    for checker in CHECKERS:
        mine = [r for r in rows if r["checker"] == checker and r["id"] in both]
        out[checker] = {
            "first_token_p50_s": _p50([r["first_token_s"] for r in mine]),
            "total_p50_s": _p50([r["total_s"] for r in mine]),
            "checks_p50_s": _p50([r["checks_s"] for r in mine]),
            "checks_mean_s": round(statistics.mean(r["checks_s"] for r in mine), 3) if mine else None,
            **outcomes(mine),
        }
    by_id: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        if r["id"] in both:
            by_id.setdefault(r["id"], {})[r["checker"]] = r
    pairs = [(d["verifier"], d["llm"]) for d in by_id.values() if len(d) == 2]
    verdicts = [(a, b) for v, l in pairs for a, b in zip(v["supported"], l["supported"])
                if a is not None and b is not None]
    out["sentences_checked_by_both"] = len(verdicts)
    out["sentence_verdicts_agree"] = sum(a == b for a, b in verdicts)
    out["llm_unsupported_verifier_supported"] = sum(b is False and a is True for a, b in verdicts)
    out["verifier_unsupported_llm_supported"] = sum(a is False and b is True for a, b in verdicts)
    out["same_refusal"] = sum(v["refused"] == l["refused"] for v, l in pairs)
    stated = [(v["verified_probability"], l["verified_probability"], v["answerable"]) for v, l in pairs
              if v["verified_probability"] is not None and l["verified_probability"] is not None]
    if len({a for _, _, a in stated}) == 2:
        from judge_ares import auroc

        labels = [a for _, _, a in stated]
        out["verify_auroc_answerable_vs_not"] = {  # how well each verify P tells the two kinds of drafts apart
            "drafts": len(stated), "verifier": round(auroc([x for x, _, _ in stated], labels), 3),
            "llm": round(auroc([y for _, y, _ in stated], labels), 3)}
    return out


def add_run_args(parser: argparse.ArgumentParser, resumes: str) -> None:
    """The arguments of a run on a seeded ClapNQ sample whose rows resume (shared with direct_answers.py)."""
    parser.add_argument("data", type=Path, help="the ClapNQ folder (clapnq_dev_*answerable.jsonl)")
    parser.add_argument("--home", type=Path, required=True, help="a rag home for the collection (reused if there)")
    parser.add_argument("--per-kind", type=int, default=20, help="answerable and unanswerable questions each")
    parser.add_argument("--seed", type=int, default=22, help="the sample's seed (not tuned on)")
    parser.add_argument("--rows", type=Path, required=True, help="per-answer rows, appended as they finish; a rerun "
                        f"resumes after the last question {resumes}")
    parser.add_argument("--out", type=Path, help="write the JSON here too")
    parser.add_argument("--summary-only", action="store_true", help="summarise the rows already in --rows, ask nothing")


def rows_or_ask(args: argparse.Namespace,
                ask: Callable[[list[Any]], tuple[list[dict[str, Any]], dict[str, Any]]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows already in ``--rows`` (``--summary-only``), or ``ask`` on the sample; exits 2 without the data folder."""
    if not args.data.is_dir():
        print(f"error: {args.data} is not a folder (the ClapNQ dev files)", file=sys.stderr)
        raise SystemExit(2)
    if args.summary_only:
        return [json.loads(line) for line in args.rows.read_text().splitlines()], {}
    return ask(sample(prepare(args.data, args.home), args.per_kind, args.seed))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_args(parser, "both checkers answered")
    args = parser.parse_args(argv)
    rows, meta = rows_or_ask(args, lambda items: ask_all(items, args.home, args.rows))
    result = {"seed": args.seed, "per_kind": args.per_kind, **meta, **summarise(rows)}
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
