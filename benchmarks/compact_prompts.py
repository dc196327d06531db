"""Compact prompts (``[answer] context_tokens``) on ClapNQ, and ``rag ask`` cold vs through ``rag serve``.

Part 1, models loaded once: ClapNQ is imported (``rag eval import clapnq``) and ingested into a
home, then a seeded sample of answerable and unanswerable questions is asked in one process with
one Answerer (the packaged defaults: hybrid + reranker, verify 0.65, the local 1.5B model),
every question twice, with ``context_tokens`` 0 (off) and with the budget under test (the order
alternates per question). Reported per setting: first-token and whole-answer p50 (retrieval
included, as ``rag ask`` measures them), the answer prompt's tokens (system + user message,
counted by the LLM's own tokenizer), refusals of each kind, and how many answered answerable
questions cite their gold passage.

Part 2, warm vs cold: ``rag ask`` as a command, wall time, on the first N sampled questions,
first with no server (``RAG_NO_SERVER=1``: load the models, start the LLM, answer, stop), then
through a running ``rag serve`` of the same home (started once; its start is reported apart).

    python benchmarks/compact_prompts.py ../shared/data/clapnq-dev --home /tmp/cq-home \\
        --budget 400 --out benchmarks/results/compact_prompts.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

COLLECTION = "clapnq"


def _p50(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def _share(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 3) if flags else None


def prepare(data: Path, home: Path) -> Path:
    """Import the suite into ``home/suite`` (once) and ingest its documents (incremental); returns the suite folder."""
    from evals.importers import import_suite
    from ingest.pipeline import ingest
    from rag.core.config import load_settings

    suite = home / "suite"
    if not (suite / "suite.jsonl").is_file():
        import_suite("clapnq", data, suite)
    report = ingest([str(suite / "docs")], load_settings(home), home, COLLECTION)
    print(f"ingest: {report.files_ingested} new, {report.files_unchanged} unchanged files", file=sys.stderr)
    return suite


def sample(suite: Path, per_kind: int, seed: int) -> list[Any]:
    """``per_kind`` answerable and ``per_kind`` unanswerable questions, drawn with ``seed`` (answerable first)."""
    from evals.suite import read_suite

    items = read_suite(suite / "suite.jsonl")
    rng = random.Random(seed)
    out = []
    for kind in (True, False):
        pool = sorted((i for i in items if i.answerable is kind), key=lambda i: i.id)
        out += rng.sample(pool, per_kind)
    return out


class PromptTokens:
    """The answer prompt's length in the LLM's own tokens (its GGUF vocabulary, no weights loaded)."""

    def __init__(self, settings: Any, home: Path) -> None:
        from llama_cpp import Llama

        from rag.core.llm_models import resolve_gguf

        self.vocab = Llama(model_path=str(resolve_gguf(settings.llm.local_model, home)), vocab_only=True, verbose=False)

    def __call__(self, messages: list[dict[str, str]]) -> int:
        text = "\n".join(m["content"] for m in messages)
        return len(self.vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True))


def cites_gold(answer: Any, gold: tuple[str, ...]) -> bool:
    """Whether any citation of the final answer points at a gold document."""
    return any(c.source.endswith(g) for c in answer.citations for g in gold)


def ask_both(suite: Path, items: list[Any], budget: int, home: Path,
             rows_file: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every question with context_tokens 0 and ``budget``, one Answerer (models loaded once).

    Each finished answer is appended to ``rows_file`` at once; answers already there are not asked
    again (a run cut short resumes). A failed answer (e.g. an LLM timeout) is a row with its error.
    """
    from rag.core import prompts
    from rag.core.config import load_settings
    from rag.core.errors import RagError
    from rag.query.answer import Answerer
    from rag.query.prompt import answer_messages

    settings = load_settings(home)
    budgets = {0: settings, budget: settings.model_copy(update={
        "answer": settings.answer.model_copy(update={"context_tokens": budget})})}
    count = PromptTokens(settings, home)
    t_load = time.perf_counter()
    answerer = Answerer(settings, home, COLLECTION)
    answerer.gather("warm up the embedder and the reranker")
    answerer.llm.chat([{"role": "user", "content": prompts.WARM_UP}], max_tokens=1)
    load_s = time.perf_counter() - t_load
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()] if rows_file.exists() else []
    done = {(r["id"], r["context_tokens"]) for r in rows}
    try:
        for i, item in enumerate(items):
            order = (0, budget) if i % 2 == 0 else (budget, 0)
            for b in order:
                if (item.id, b) in done:
                    continue
                answerer.settings = budgets[b]
                try:
                    answer = answerer.ask(item.question)
                except RagError as exc:
                    rows.append({"id": item.id, "answerable": item.answerable, "context_tokens": b, "error": str(exc)})
                    with rows_file.open("a") as fh:
                        fh.write(json.dumps(rows[-1]) + "\n")
                    print(f"{i + 1}/{len(items)} ctx={b}: error: {exc}", file=sys.stderr)
                    continue
                shown = None if answer.context is None else answer.context.texts
                rows.append({
                    "id": item.id, "answerable": item.answerable, "context_tokens": b,
                    "first_token_s": round(answer.timings.get("first_token_s", float("nan")), 3),
                    "total_s": round(answer.timings["total_s"], 3),
                    "retrieve_s": round(answer.timings.get("retrieve_s", 0.0), 3),
                    "compact_s": round(answer.timings.get("compact_s", 0.0), 3),
                    "prompt_tokens": count(answer_messages(item.question, answer.sources, shown)),
                    "source_tokens": None if answer.context is None else answer.context.tokens,
                    "refused": answer.refused, "withdrawn": answer.withdrawn,
                    "cites_gold": cites_gold(answer, tuple(item.gold_sources or ())),
                    "sources": [c.chunk_id for c in answer.sources], "answer": answer.answer,
                })
                r = rows[-1]
                with rows_file.open("a") as fh:
                    fh.write(json.dumps(r, ensure_ascii=False) + "\n")
                print(f"{i + 1}/{len(items)} {'A' if item.answerable else 'U'} ctx={b}: first {r['first_token_s']} s, "
                      f"total {r['total_s']} s, prompt {r['prompt_tokens']} tok, refused {r['refused']}",
                      file=sys.stderr)
    finally:
        answerer.close()
    return rows, {"load_s": round(load_s, 2), "llm": settings.llm.local_model, "llm_threads": settings.llm.threads}


def outcomes(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Refusals of each kind, withdrawn drafts and gold citations of a set of answer rows."""
    ans = [r for r in rows if r["answerable"]]
    answered = [r for r in ans if not r["refused"]]
    return {"refused_unanswerable": _share([r["refused"] for r in rows if not r["answerable"]]),
            "refused_answerable": _share([r["refused"] for r in ans]),
            "withdrawn": sum(r["withdrawn"] for r in rows), "answered_answerable": len(answered),
            "answered_answerable_citing_gold": _share([r["cites_gold"] for r in answered])}


def summarise(rows: list[dict[str, Any]], budget: int) -> dict[str, Any]:
    """The table's columns for each setting."""
    out: dict[str, Any] = {"errors": sum("error" in r for r in rows)}
    failed = {r["id"] for r in rows if "error" in r}  # a question is compared only where both settings answered
    rows = [r for r in rows if r["id"] not in failed]
    for b in (0, budget):
        mine = [r for r in rows if r["context_tokens"] == b]
        out[str(b)] = {
            "questions": len(mine),
            "first_token_p50_s": _p50([r["first_token_s"] for r in mine]),
            "total_p50_s": _p50([r["total_s"] for r in mine]),
            "prompt_tokens_p50": _p50([float(r["prompt_tokens"]) for r in mine]),
            "prompt_tokens_mean": round(statistics.mean(r["prompt_tokens"] for r in mine), 1) if mine else None,
            **outcomes(mine),
        }
    pairs = {(r["id"], r["context_tokens"]): r for r in rows}
    ids = list(dict.fromkeys(r["id"] for r in rows))
    out["same_sources_both_ways"] = sum(pairs[(i, 0)]["sources"] == pairs[(i, budget)]["sources"] for i in ids)
    return out


def _cli(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "rag.cli", "--home", str(home), *args]


def warm_vs_cold(home: Path, questions: list[str]) -> dict[str, Any]:
    """Wall time of ``rag ask`` as a command: alone (cold), then through a running ``rag serve``."""
    env = {**os.environ, "RAG_NO_SERVER": "1"}
    cold: list[float | None] = []
    for q in questions:
        t = time.perf_counter()
        done = subprocess.run(_cli(home, "ask", q, "-c", COLLECTION, "--json"), env=env, capture_output=True, text=True)
        cold.append(round(time.perf_counter() - t, 2) if done.returncode == 0 else None)
        if done.returncode:
            print(f"cold rag ask failed: {done.stderr.strip()[-300:]}", file=sys.stderr)
        print(f"cold rag ask: {cold[-1]} s", file=sys.stderr)
    env = {k: v for k, v in os.environ.items() if k != "RAG_NO_SERVER"}
    t = time.perf_counter()
    server = subprocess.Popen(_cli(home, "serve", "--port", "0"), env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        for line in server.stderr:  # "rag serve: HOME on http://...": it listens
            if " on http" in line:
                break
        if server.poll() is not None:
            raise SystemExit(f"rag serve stopped before listening (exit status {server.returncode})")
        serve_start = round(time.perf_counter() - t, 2)
        warm: list[float | None] = []
        for q in questions:
            t = time.perf_counter()
            done = subprocess.run(_cli(home, "ask", q, "-c", COLLECTION, "--json"), env=env, capture_output=True,
                                  text=True)
            warm.append(round(time.perf_counter() - t, 2) if done.returncode == 0 else None)
            if done.returncode:
                print(f"warm rag ask failed: {done.stderr.strip()[-300:]}", file=sys.stderr)
            print(f"warm rag ask: {warm[-1]} s", file=sys.stderr)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    return {"questions": len(questions), "cold_wall_s": cold, "warm_wall_s": warm,
            "cold_p50_s": _p50([x for x in cold if x is not None]), "warm_p50_s": _p50([x for x in warm if x is not None]),
            "serve_start_s": serve_start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="the ClapNQ folder (clapnq_dev_*answerable.jsonl)")
    parser.add_argument("--home", type=Path, required=True, help="a rag home for the collection (reused if there)")
    parser.add_argument("--budget", type=int, default=400, help="[answer] context_tokens to compare with 0")
    parser.add_argument("--per-kind", type=int, default=10, help="answerable and unanswerable questions each")
    parser.add_argument("--seed", type=int, default=22, help="the sample's seed (the issue's number; not tuned)")
    parser.add_argument("--warm-cold", type=int, default=5, help="questions for the cold vs warm rag ask figure (0: skip)")
    parser.add_argument("--out", type=Path, help="write the JSON here too")
    parser.add_argument("--rows", type=Path, help="per-answer rows, appended as they finish and reused by a rerun "
                        "(default: HOME/compact_prompts.rows.jsonl)")
    args = parser.parse_args(argv)
    if not args.data.exists():
        parser.error(f"{args.data} not found: pass the ClapNQ folder (see docs/data.md)")
    os.environ["RAG_HOME"] = str(args.home)
    suite = prepare(args.data, args.home)
    items = sample(suite, args.per_kind, args.seed)
    started = time.time()
    load = os.getloadavg()
    rows, info = ask_both(suite, items, args.budget, args.home, args.rows or args.home / "compact_prompts.rows.jsonl")
    result: dict[str, Any] = {
        "command": " ".join([*(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("RAG_LLM_")),
                             "python benchmarks/compact_prompts.py", *(argv if argv is not None else sys.argv[1:])]),
        "seed": args.seed, "budget": args.budget, "questions": [i.id for i in items], **info,
        "load_average_before": [round(x, 2) for x in load], "summary": summarise(rows, args.budget),
    }
    if args.warm_cold:
        mixed = [q for pair in zip(items[:args.per_kind], items[args.per_kind:]) for q in pair]  # A, U, A, U...
        result["warm_vs_cold"] = warm_vs_cold(args.home, [i.question for i in mixed[:args.warm_cold]])
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result["wall_s"] = round(time.time() - started, 1)
    result["rows"] = rows
    text = json.dumps(result, indent=1, ensure_ascii=False)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
