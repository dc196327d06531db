"""How fast the local LLM reads a prompt and writes tokens, as `rag ask` starts it: the bound on first-token time.

Starts the packaged model through the same llama.cpp server `rag` starts (``rag.core.llm.LocalServer``,
``[llm] threads`` and ``context_tokens`` from the home's config), sends one warm-up request, then
prompts of several lengths (distinct text each time, so no prefix is reused beyond the chat
template), each ``--repeats`` times, streaming a short reply. Reported per length: time to the
first token (p50, as the client sees it), and from the server's own log the prompt's tokens and
the prompt-reading and generation speeds; then the longest prompt that fits a first-token budget (``--budget-s``, minus
``--retrieval-s`` of search before the LLM starts) at the measured speed.

Run it on quiet cores: anything else running shares the same two cores and shows up here.

    python benchmarks/llm_prompt_speed.py --home /tmp/speed-home --out speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FILLER = ("Source {i}: the {i}th survey of the harbour recorded {n} vessels, {m} of them under sail, and noted "
          "that the northern quay had been rebuilt in {y} after the storm that closed the port for {d} days. ")


def prompt_of(words: int, salt: int) -> str:
    """About ``words`` words of distinct, prose-like text (``salt`` keeps every prompt's start different)."""
    parts, i = [], 0
    while sum(len(p.split()) for p in parts) < words:
        i += 1
        parts.append(FILLER.format(i=i + salt * 1000, n=37 + i + salt, m=11 + i, y=1900 + (i * 7 + salt) % 120,
                                   d=3 + i % 9))
    return f"Request {salt}. " + "".join(parts) + "\nQuestion: when was the northern quay rebuilt?"


_PERF = re.compile(r"^llama_perf_context_print: +(prompt eval|eval) time = +([0-9.]+) ms / +([0-9]+) (?:tokens|runs)",
                   re.MULTILINE)


def server_counts(log: Path, offset: int) -> dict[str, float]:
    """The llama.cpp server's own timings of the request logged after ``offset``: prompt and generated tokens."""
    text = log.read_bytes()[offset:].decode("utf-8", "replace")
    out: dict[str, float] = {}
    for kind, ms, n in _PERF.findall(text):
        key = "prompt" if kind == "prompt eval" else "gen"
        out[f"{key}_tokens"], out[f"{key}_ms"] = int(n), float(ms)
    return out


def one(client: Any, model: str, text: str, max_tokens: int, log: Path) -> dict[str, Any]:
    """Stream one answer: time to the first content token and in all, with the server's prompt and token counts."""
    offset = log.stat().st_size if log.exists() else 0
    t0 = time.perf_counter()
    first = None
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], stream=True, max_tokens=max_tokens,
        temperature=0.0)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content and first is None:
            first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    first = total if first is None else first
    time.sleep(0.2)  # the server logs its timings as the response ends
    counts = server_counts(log, offset)
    prompt_tokens, prompt_ms = counts.get("prompt_tokens"), counts.get("prompt_ms")
    gen_tokens, gen_ms = counts.get("gen_tokens"), counts.get("gen_ms")
    return {"first_token_s": round(first, 3), "total_s": round(total, 3), "prompt_tokens": prompt_tokens,
            "prompt_tok_s": round(prompt_tokens / prompt_ms * 1000, 1) if prompt_tokens and prompt_ms else None,
            "gen_tokens": gen_tokens,
            "gen_tok_s": round(gen_tokens / gen_ms * 1000, 1) if gen_tokens and gen_ms else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default=None, help="rag home whose [llm] settings are used (default: $RAG_HOME)")
    parser.add_argument("--words", default="150,300,600", help="prompt lengths in words (comma-separated)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=48, help="reply length, for the generation speed")
    parser.add_argument("--budget-s", type=float, default=4.0, help="first-token budget (the issue's 4 s)")
    parser.add_argument("--retrieval-s", type=float, default=1.0,
                        help="search and rerank before the LLM starts (a warm `rag ask` spends about 1 s)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    try:
        lengths = [int(w) for w in args.words.split(",") if w.strip()]
    except ValueError:
        parser.error(f"--words takes whole numbers separated by commas (got {args.words!r})")
    if not lengths or min(lengths) < 1:
        parser.error("--words needs at least one length of 1 word or more")
    from openai import OpenAI

    from rag.core.config import load_settings, resolve_home
    from rag.core.llm import LocalServer
    from rag.core.llm_models import model_alias, resolve_gguf

    home = resolve_home(args.home)
    log = home / "logs" / "speed.log"
    settings = load_settings(home)
    path = resolve_gguf(settings.llm.local_model, home)
    server = LocalServer(model_path=path, alias=model_alias(settings.llm.local_model), log_path=log,
                         threads=settings.llm.threads, context_tokens=settings.llm.context_tokens)
    report: dict[str, Any] = {"command": " ".join(sys.argv), "model": path.name, "threads": settings.llm.threads,
                              "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    try:
        t0 = time.perf_counter()
        server.start()
        report["server_start_s"] = round(time.perf_counter() - t0, 2)
        client = OpenAI(base_url=server.base_url, api_key="local")
        report["warm_up"] = one(client, server.alias, prompt_of(lengths[0], 0), 4, log)
        rows = []
        salt = 0
        for _ in range(args.repeats):  # lengths interleaved, so a slow spell does not fall on one length
            for words in lengths:
                salt += 1
                rows.append({"words": words, **one(client, server.alias, prompt_of(words, salt), args.max_tokens, log)})
                print(json.dumps(rows[-1]), file=sys.stderr)
    finally:
        server.close()
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["rows"] = rows
    by_length = {}
    for words in lengths:
        mine = [r for r in rows if r["words"] == words]
        by_length[str(words)] = {
            "prompt_tokens": statistics.median(r["prompt_tokens"] or 0 for r in mine),
            "first_token_p50_s": round(statistics.median(r["first_token_s"] for r in mine), 2),
            "prompt_tok_s_p50": statistics.median(r["prompt_tok_s"] or 0 for r in mine),
            "gen_tok_s_p50": statistics.median(r["gen_tok_s"] or 0 for r in mine),
        }
    report["by_length"] = by_length
    speeds = [r["prompt_tok_s"] for r in rows if r["prompt_tok_s"]]
    speed = statistics.median(speeds) if speeds else 0.0
    report["prompt_tok_s_p50"] = speed
    report["fits_first_token_budget"] = {
        "budget_s": args.budget_s, "retrieval_s": args.retrieval_s,
        "prompt_tokens": int(max(0.0, args.budget_s - args.retrieval_s) * speed)}
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("by_length", "prompt_tok_s_p50", "fits_first_token_budget",
                                             "load_average_before", "load_average_after")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
