"""Multi-hop retrieval on HotpotQA: is BOTH supporting paragraph in the evidence, single-step against multi-hop?

The suite comes from ``rag eval import hotpotqa ../shared/data/hotpotqa-dev-500 --out SUITE_DIR``
(suite.jsonl + docs/, one paragraph per file). All paragraphs are pooled into one collection
(ingested once under --home, reused afterwards). For each mode the evidence is gathered exactly
as ``rag ask`` gathers it (``Answerer.gather``), and the script prints one JSON object:
both@5 / both@10 (both gold paragraphs among the top 5 / 10 passages), recall@5 / recall@10 (the
share of gold paragraphs among them, as the multi-hop issue's other sets report it), LLM calls and seconds
per question; with --answers also answer EM / F1 (SQuAD normalisation; citations removed) and
whether the gold answer occurs in the answer (answer_contains).

Modes: single (one hybrid search), links (multi-hop following names, no LLM), llm (the LLM
writes each next query), multi / hyde (single-step with LLM query expansion).
LLM modes use [llm] from the home's config or RAG_LLM_* (e.g. RAG_LLM_BASE_URL of a running
server, or RAG_LLM_THREADS=1 for the local one); they are slow on CPU: use --limit.

    rag eval import hotpotqa ../shared/data/hotpotqa-dev-500 --out /tmp/suites/hotpotqa
    python benchmarks/hotpotqa_multihop.py /tmp/suites/hotpotqa --home /tmp/hpq --mode single,links
    python benchmarks/hotpotqa_multihop.py /tmp/suites/hotpotqa --home /tmp/hpq --mode single,links,llm --limit 50 --answers
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from evals.answer_metrics import contains_answer, exact_match, token_f1
from evals.metrics import paired_bootstrap
from evals.suite import read_suite
from rag.core.config import Settings, load_settings, resolve_home

MODES = ("single", "links", "graph", "llm", "multi", "hyde")
_CITATION = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")


def mode_settings(settings: Settings, mode: str) -> Settings:
    """The settings one mode runs with (expansion and hops set; the rest as configured)."""
    hop = {"single": "off", "links": "links", "graph": "graph", "llm": "llm"}.get(mode, "off")
    expand = mode if mode in ("multi", "hyde") else "none"
    return settings.model_copy(update={
        "multihop": settings.multihop.model_copy(update={"mode": hop}),
        "query": settings.query.model_copy(update={"expand": expand}),
        "answer": settings.answer.model_copy(update={"check_support": False}),
    })


def strip_titles(suite_dir: Path, out: Path) -> Path:
    """A copy of the suite whose documents have no title: neutral file names (p00000.txt...), title line removed.

    HotpotQA's bridge passages are titled with the name that links them, which ``links`` relies on;
    most collections are not built that way. The gold sources are renamed with their documents.
    """
    if (out / "suite.jsonl").exists():
        return out
    (out / "docs").mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in (suite_dir / "docs").iterdir())
    renamed = {name: f"p{i:05d}.txt" for i, name in enumerate(names)}
    for name in names:
        text = (suite_dir / "docs" / name).read_text(encoding="utf-8")
        body = text.split("\n", 1)[1].strip() if "\n" in text else text
        (out / "docs" / renamed[name]).write_text(body + "\n", encoding="utf-8")
    lines = []
    for line in (suite_dir / "suite.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        row["gold_sources"] = ["docs/" + renamed[Path(g).name] for g in row.get("gold_sources") or []]
        lines.append(json.dumps(row))
    (out / "suite.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def ensure_collection(docs: Path, settings: Settings, home: Path, collection: str) -> dict[str, Any]:
    """Ingest the suite's documents unless the collection already holds them."""
    from rag.core.home import collection_paths

    if collection_paths(home, collection).manifest.exists():
        return {"ingested": False}
    from ingest.pipeline import Ingestor

    print(f"ingesting {docs} into '{collection}' under {home} (a few minutes)...", file=sys.stderr)
    report = Ingestor(settings, home, collection).run([docs]).as_dict()
    return {"ingested": True, "chunks": report["chunks_total"], "seconds": report["seconds"]}


def run_mode(mode: str, items: list[Any], suite_dir: Path, settings: Settings, home: Path, collection: str,
             llm: Any, rerank: bool, answers: bool) -> dict[str, Any]:  # fmt: skip
    """Gather evidence (and optionally answer) for every question in one mode."""
    from rag.query.answer import Answerer

    answerer = Answerer(mode_settings(settings, mode), home, collection, llm=llm, rerank=rerank)
    hits = {5: 0, 10: 0}
    one = {5: 0, 10: 0}
    share = {5: 0.0, 10: 0.0}
    llm_calls, seconds = 0, 0.0
    ems: list[float] = []
    f1s: list[float] = []
    contains: list[float] = []
    per_question: dict[str, list[float]] = {"recall@5": [], "recall@10": []}
    try:
        answerer.gather(items[0].question, 1)  # warm-up: model and index loading are not per-question cost
        for i, item in enumerate(items, 1):
            gold = {str((suite_dir / g).resolve()) for g in item.gold_sources or ()}
            t0 = time.perf_counter()
            evidence = answerer.gather(item.question, 10)
            seconds += time.perf_counter() - t0
            llm_calls += evidence.llm_calls
            for k in (5, 10):
                found = {str(Path(c.source).resolve()) for c in evidence.chunks[:k]}
                hits[k] += gold <= found
                one[k] += bool(gold & found)
                share[k] += len(gold & found) / max(len(gold), 1)
                per_question[f"recall@{k}"].append(len(gold & found) / max(len(gold), 1))
            if answers:
                t1 = time.perf_counter()
                top = dataclasses.replace(evidence, chunks=evidence.chunks[: answerer.settings.answer.k])
                answer = answerer.ask(item.question, evidence=top)
                seconds += time.perf_counter() - t1
                llm_calls += 1
                text = _CITATION.sub("", answer.answer).strip()
                golds = list(item.answers or ())
                ems.append(exact_match(text, golds))
                f1s.append(token_f1(text, golds))
                contains.append(contains_answer(text, golds))
            if i % 50 == 0 or i == len(items):
                print(f"{mode}: {i}/{len(items)} both@10 {hits[10] / i:.3f}", file=sys.stderr)
    finally:
        answerer.close_searchers()
    n = len(items)
    out: dict[str, Any] = {
        "both@5": round(hits[5] / n, 4), "both@10": round(hits[10] / n, 4),
        "any@5": round(one[5] / n, 4), "any@10": round(one[10] / n, 4),
        "recall@5": round(share[5] / n, 4), "recall@10": round(share[10] / n, 4),
        "llm_calls_per_q": round(llm_calls / n, 3), "seconds_per_q": round(seconds / n, 3),
        "per_question": per_question,
    }  # fmt: skip
    if answers:
        out["answer_em"] = round(sum(ems) / n, 4)
        out["answer_f1"] = round(sum(f1s) / n, 4)
        out["answer_contains"] = round(sum(contains) / n, 4)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite_dir", type=Path, help="folder with suite.jsonl and docs/ (rag eval import hotpotqa)")
    parser.add_argument("--home", default=None, help="rag home for the pooled collection (default: $RAG_HOME)")
    parser.add_argument("--collection", default="hotpotqa")
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions")
    parser.add_argument("--mode", default="single,links", help=f"comma-separated, from {', '.join(MODES)}")
    parser.add_argument("--answers", action="store_true", help="also generate answers and score EM/F1 (LLM)")
    parser.add_argument("--rerank", action="store_true", help="rerank the first hop (default: fused order)")
    parser.add_argument("--no-titles", type=Path, default=None, metavar="DIR",
                        help="run on a copy of the suite made under DIR without titles (neutral file names, no "
                        "title line): multi-hop that does not lean on titled documents")
    parser.add_argument("--offset", type=int, default=0, help="skip the first N questions (with --limit: a split)")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.mode.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        parser.error(f"unknown mode(s) {unknown}; choose from {', '.join(MODES)}")
    if args.limit is not None and args.limit <= 0:
        parser.error("--limit must be at least 1")
    home = resolve_home(args.home)
    settings = load_settings(home)
    if args.no_titles is not None:
        args.suite_dir = strip_titles(args.suite_dir, args.no_titles)
    items = read_suite(args.suite_dir / "suite.jsonl")[args.offset:]
    items = items[: args.limit]
    ingest = ensure_collection(args.suite_dir / "docs", settings, home, args.collection)
    llm = None
    if args.answers or any(m in ("llm", "multi", "hyde") for m in modes):
        from rag.core.llm import LlmClient

        llm = LlmClient(settings.llm, home)
    report: dict[str, Any] = {"suite": str(args.suite_dir), "questions": len(items), "collection": args.collection,
                              "offset": args.offset, "rerank": args.rerank, "ingest": ingest,
                              "multihop_params": settings.multihop.model_dump(exclude={"mode"}),
                              "modes": {}}
    try:
        for mode in modes:
            report["modes"][mode] = run_mode(mode, items, args.suite_dir, settings, home, args.collection, llm,
                                             args.rerank, args.answers)
    finally:
        if llm is not None:
            llm.close()
    paired_with_single(report["modes"])
    print(json.dumps(report))
    return 0


def paired_with_single(modes: dict[str, dict[str, Any]]) -> None:
    """Each other mode's recall@5 / @10 minus single-step's, per question, with a 95% paired bootstrap interval."""
    base = modes.get("single")
    if base is None:
        return
    for name, mode in modes.items():
        if name == "single":
            continue
        mode["vs_single"] = {}
        for metric, values in mode["per_question"].items():
            diff = paired_bootstrap(values, base["per_question"][metric], n=2000, seed=0)
            mode["vs_single"][metric] = {"diff": round(diff.mean_diff, 4), "low": round(diff.low, 4),
                                         "high": round(diff.high, 4)}


if __name__ == "__main__":
    sys.exit(main())
