"""What `[answer] attribute` does to citations, on the drafts of an earlier `rag eval run` (same answers, rescored).

    python benchmarks/attribution_effect.py prepare RUN_OUT.jsonl ATTR.jsonl [--threshold 0.5]
    rag --home H eval score ATTR.jsonl --out SCORED.jsonl
    python benchmarks/attribution_effect.py summary RUN_OUT.jsonl SCORED.jsonl

``prepare`` takes the answered (not refused) lines of a run made without attribution, cites
the best source for every sentence the model left uncited (``rag.query.attribute``, the embedding
model on 1 thread) and writes them as a suite that `rag eval score` can judge; it prints the
time attribution took per answer. ``summary`` puts the rescored answers back among the run's
refusals and prints ``benchmarks/answer_summary.py``'s figures and the ALCE citation recall and
precision (mean over answered questions) before and after.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.answer_summary import summarise  # noqa: E402

KEPT = ("id", "question", "answers", "gold_sources", "answerable", "retrieved", "contexts")


def _lines(path: str) -> list[dict[str, Any]]:
    out = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        if raw.strip():
            obj = json.loads(raw)
            out.append(obj.get("result", obj))
    return out


def prepare(run_out: str, dest: str, threshold: float) -> None:
    import torch

    from rag.query.attribute import attribute
    from rag.query.cite import add_markers, parse_answer
    from rag.core.embed import get_embedder

    torch.set_num_threads(1)  # as `rag ask` embeds at answer time ([embedding] query_threads)
    embedder = get_embedder("all-MiniLM-L6-v2")
    embedder.embed(["warm up"])
    written, gained, seconds = [], 0, []
    for line in _lines(run_out):
        if line.get("refused"):
            continue
        parsed = parse_answer(line["answer"], len(line["contexts"]))
        started = time.perf_counter()
        result = attribute(parsed.sentences, line["contexts"], embedder.embed, threshold)
        seconds.append(time.perf_counter() - started)
        added = [s.sources if a else () for s, a in zip(result.sentences, result.added)]
        answer = add_markers(parsed.text, added)
        gained += answer != parsed.text
        written.append({**{k: line[k] for k in KEPT if k in line}, "answer": answer})
    Path(dest).write_text("".join(json.dumps(w, ensure_ascii=False) + "\n" for w in written), encoding="utf-8")
    print(json.dumps({"answered": len(written), "gained_citations": gained,
                      "attribute_s_p50": round(statistics.median(seconds), 3) if seconds else None}))


def _alce(lines: list[dict[str, Any]]) -> dict[str, float | None]:
    answered = [x for x in lines if not x.get("refused")]
    out: dict[str, float | None] = {}
    for name in ("citation_recall", "citation_precision"):
        values = [x["metrics"][name] for x in answered if x.get("metrics", {}).get(name) is not None]
        out[name] = round(statistics.fmean(values), 4) if values else None
    return out


def summary(run_out: str, scored: str) -> None:
    original = _lines(run_out)
    rescored = {line["id"]: line for line in _lines(scored)}
    merged = []
    for line in original:
        new = rescored.get(line["id"])
        if line.get("refused") or new is None:
            merged.append(line)
        else:  # the run's timings and source paths stay: only the answer text changed
            merged.append({**new, "context_sources": line.get("context_sources"), "timings": line.get("timings")})
    print(json.dumps({"before": {**summarise(original), **_alce(original)},
                      "after": {**summarise(merged), **_alce(merged)}}, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("run_out")
    p.add_argument("dest")
    p.add_argument("--threshold", type=float, default=0.5)
    s = sub.add_parser("summary")
    s.add_argument("run_out")
    s.add_argument("scored")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args.run_out, args.dest, args.threshold)
    else:
        summary(args.run_out, args.scored)
    return 0


if __name__ == "__main__":
    sys.exit(main())
