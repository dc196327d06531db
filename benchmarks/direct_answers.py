"""Refusing on evidence (``[answer] gate`` and ``[answer] direct``) vs the model's own refusals, on ClapNQ.

A seeded sample of answerable and unanswerable ClapNQ questions (``--per-kind`` each, seed 22 by
default: a sample no setting was tuned on) is asked in one process with the models loaded once
(the packaged defaults: hybrid + reranker, graph hop, the verifier checking, the local 1.5B model).
For each question the evidence is gathered once, the gate's question is asked of the verifier
(P: do the sources contain the answer?), and then:

1. the usual answer prompt (it offers the refusal "The documents do not say."): the packaged
   default, ``gate`` and ``direct`` off;
2. when P >= ``--direct-min``, the prompt that offers no refusal (``direct``), verified as usual.

The policies of the table are read from these rows (the same draft serves every policy that asks
the same prompt): default; ``gate`` alone (refused without a draft below it, else 1); ``gate`` and
``direct`` (refused below the gate, 2 at or above ``direct``, else 1); ``direct`` alone.

    python benchmarks/direct_answers.py $DATA/clapnq-dev --home /tmp/cq-home --per-kind 20 \\
        --rows /tmp/direct.rows.jsonl --out benchmarks/results/direct_answers.json

The ClapNQ collection is imported and ingested into ``--home`` on first use (benchmarks/compact_prompts.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# compact_prompts sets HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE and TOKENIZERS_PARALLELISM on import
from checker_answers import add_run_args, rows_or_ask
from compact_prompts import COLLECTION, _p50, cites_gold, outcomes

GATES = (0.5,)  # [answer] gate as measured on 200 tuning questions (docs/answers.md)
DIRECTS = (0.5, 0.8)  # set before the run: the gate's own value, and a confident one


def _row(item: Any, prompt: str, p: float, answer: Any) -> dict[str, Any]:
    t = answer.timings
    return {"id": item.id, "answerable": item.answerable, "prompt": prompt, "p_answerable": p,
            "first_token_s": round(t.get("first_token_s", float("nan")), 3), "total_s": round(t["total_s"], 3),
            "verified_probability": answer.verified_probability, "refused": answer.refused,
            "withdrawn": answer.withdrawn, "direct": answer.direct,
            "cites_gold": cites_gold(answer, tuple(item.gold_sources or ())), "answer": answer.answer,
            "notes": list(answer.notes), "timings": {k: round(v, 3) for k, v in t.items()}}


def ask_all(items: list[Any], home: Path, rows_file: Path, direct_min: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Each question with the usual prompt, and without a refusal option when its P reaches ``direct_min``."""
    from rag.core import prompts
    from rag.core.config import load_settings
    from rag.core.errors import RagError
    from rag.core.llm import LlmClient
    from rag.query.answer import Answerer

    base = load_settings(home)
    usual = base.model_copy(update={"answer": base.answer.model_copy(update={"gate": 0.0, "direct": 0.0})})
    direct = base.model_copy(update={"answer": base.answer.model_copy(update={"gate": 0.0, "direct": direct_min})})
    t_load = time.perf_counter()
    llm = LlmClient(base.llm, home)
    answerer = Answerer(usual, home, COLLECTION, llm=llm)
    answerer.gather("warm up the embedder and the reranker")
    llm.chat([{"role": "user", "content": prompts.WARM_UP}], max_tokens=1)
    checker_label = answerer.checker.label  # loads the verifier
    load_s = time.perf_counter() - t_load
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()] if rows_file.exists() else []
    done = {r["id"] for r in rows}
    try:
        for i, item in enumerate(items):
            if item.id in done:
                continue
            out: list[dict[str, Any]] = []
            try:
                evidence = answerer.gather(item.question)
                p = round(answerer.checker.answerable(item.question, evidence.chunks, None), 4)
                answerer.settings = usual
                out.append(_row(item, "usual", p, answerer.ask(item.question, evidence=evidence)))
                if p >= direct_min:
                    answerer.settings = direct
                    answer = answerer.ask(item.question, evidence=evidence)
                    if not answer.direct or abs((answer.answerable_probability or 0.0) - p) > 1e-3:
                        raise SystemExit(f"{item.id}: the direct run judged P {answer.answerable_probability} vs {p}")
                    out.append(_row(item, "direct", p, answer))
            except RagError as exc:
                print(f"{i + 1}/{len(items)}: error: {exc}", file=sys.stderr)
                out = [{"id": item.id, "answerable": item.answerable, "prompt": "usual", "error": str(exc)}]
            rows += out
            with rows_file.open("a") as fh:
                fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in out)
            for r in out:
                if "error" not in r:
                    print(f"{i + 1}/{len(items)} {'A' if item.answerable else 'U'} P {r['p_answerable']:.2f} "
                          f"{r['prompt']}: total {r['total_s']} s, refused {r['refused']} "
                          f"(withdrawn {r['withdrawn']})", file=sys.stderr)
    finally:
        answerer.close()
    return rows, {"load_s": round(load_s, 2), "llm_model": base.llm.local_model, "llm_threads": base.llm.threads,
                  "verifier_model": checker_label}


def policy(rows: list[dict[str, Any]], gate: float, direct: float) -> list[dict[str, Any]]:
    """Each question's outcome under ``gate`` and ``direct`` (0: off), read from its rows."""
    by_id: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_id.setdefault(r["id"], {})[r["prompt"]] = r
    out = []
    for prompts in by_id.values():
        usual = prompts["usual"]
        p = usual["p_answerable"]
        if gate and p < gate:
            out.append({**usual, "refused": True, "withdrawn": False, "cites_gold": False, "gated": True})
        elif direct and p >= direct:
            out.append(prompts["direct"])
        else:
            out.append(usual)
    return out


def summarise(rows: list[dict[str, Any]], direct_min: float) -> dict[str, Any]:
    """Refusals of each kind per policy, with the usual prompt's timings."""
    failed = {r["id"] for r in rows if "error" in r}
    rows = [r for r in rows if r["id"] not in failed]
    usual = [r for r in rows if r["prompt"] == "usual"]
    out: dict[str, Any] = {"errors": len(failed), "questions": len(usual),
                           "first_token_p50_s": _p50([r["first_token_s"] for r in usual]),
                           "total_p50_s": _p50([r["total_s"] for r in usual]),
                           "direct_drafts": sum(r["prompt"] == "direct" for r in rows), "policies": {}}
    runs = [(0.0, 0.0)] + [(g, 0.0) for g in GATES] + [(g, d) for g in (0.0, *GATES) for d in DIRECTS]
    for gate, direct in runs:
        if direct and direct < direct_min:
            continue
        out["policies"][f"gate {gate:g}, direct {direct:g}"] = outcomes(policy(rows, gate, direct))
    drafts = [r for r in rows if r["prompt"] == "direct"]
    pairs = {r["id"]: r for r in usual}
    out["direct_vs_usual_same_question"] = {  # what the prompt alone changed, on the questions asked both ways
        "usual_refused": sum(pairs[r["id"]]["refused"] for r in drafts),
        "direct_refused": sum(r["refused"] for r in drafts),
        "direct_draft_refused": sum(r["refused"] and not r["withdrawn"] for r in drafts),
        "direct_withdrawn": sum(r["withdrawn"] for r in drafts),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_args(parser, "finished")
    parser.add_argument("--direct-min", type=float, default=min(DIRECTS),
                        help="ask the direct prompt too when the gate's P reaches this")
    args = parser.parse_args(argv)
    rows, meta = rows_or_ask(args, lambda items: ask_all(items, args.home, args.rows, args.direct_min))
    result = {"seed": args.seed, "per_kind": args.per_kind, "direct_min": args.direct_min, **meta,
              **summarise(rows, args.direct_min)}
    print(json.dumps(result, indent=1))
    if args.out:  # with the per-answer rows
        args.out.write_text(json.dumps({**result, "rows": rows}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
