"""Summarise a `rag eval run --out FILE.jsonl` of an answered suite (ClapNQ-style: answerable or not).

Prints, as JSON:
- refusal rate on unanswerable and on answerable questions;
- answerable, answered questions: share whose citations point at a gold passage, share of
  statements whose cited passages entail them (the judge's ALCE "entails" verdicts), and the
  share of statements supported by all retrieved passages ("supported" verdicts);
- the same refusal rates if answers whose every cited statement failed its "entails" check had
  been withdrawn (what `[answer] refuse_unsupported` does with its own support check);
- time to first token and total answer time, p50 and p95 (seconds);
- ``verify_sweep``: how ``[answer] verify`` separates the two kinds, read off the run's own
  P(yes) of each answered draft (``answer_checks.verified_probability``): the AUROC among the
  drafts that answered, and the refusal rates [unanswerable, answerable] had the run used each
  threshold (a draft that refused stays refused). Choosing a threshold on the questions you then
  report on overstates it; the sweep shows the trade-off, it does not tune.

    rag --home H eval run SUITE -c clapnq --out clapnq.jsonl
    python benchmarks/answer_summary.py clapnq.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: python benchmarks/...
    sys.path.insert(0, str(REPO))

from benchmarks.refusal_gate import THRESHOLDS, auroc  # noqa: E402


USAGE = "usage: python benchmarks/answer_summary.py RUN_OUT.jsonl"


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def summarise(lines: list[dict]) -> dict:
    refused = {True: [], False: []}
    refused_after = {True: [], False: []}
    cites_gold, entailed, supported = [], [], []
    ttft, total = [], []
    for r in lines:
        ans = r.get("answerable")
        was = bool(r.get("refused"))
        stmts = r.get("statements") or []
        cited = [s for s in stmts if s.get("citations")]
        withdrawn = not was and bool(cited) and not any(s.get("recalled") for s in cited)
        if ans is not None:
            refused[ans].append(float(was))
            refused_after[ans].append(float(was or withdrawn))
        if ans and not was:
            sources = r.get("context_sources") or []
            gold = set(r.get("gold_sources") or [])
            numbers = {int(n) for s in stmts for n in s.get("citations") or []}
            hit = any(0 < n <= len(sources) and any(sources[n - 1].endswith(g) for g in gold) for n in numbers)
            cites_gold.append(float(hit))
            entailed += [float(bool(s.get("recalled"))) for s in stmts]
            supported += [float(bool(s.get("supported"))) for s in stmts if s.get("supported") is not None]
        t = r.get("timings") or {}
        if "first_token_s" in t:
            ttft.append(t["first_token_s"])
        if "total_s" in t:
            total.append(t["total_s"])
    pct = lambda v, q: round(float(np.percentile(v, q)), 2) if v else None  # noqa: E731
    return {
        "questions": len(lines),
        "answerable": len(refused[True]), "unanswerable": len(refused[False]),
        "refusal_rate_unanswerable": _mean(refused[False]),
        "refusal_rate_answerable": _mean(refused[True]),
        "answered_answerable": len(cites_gold),
        "citations_point_at_gold": _mean(cites_gold),
        "statements_entailed_by_citations": _mean(entailed),
        "statements_supported_by_contexts": _mean(supported),
        "with_withdrawal": {"refusal_rate_unanswerable": _mean(refused_after[False]),
                            "refusal_rate_answerable": _mean(refused_after[True])},
        "first_token_s": {"p50": pct(ttft, 50), "p95": pct(ttft, 95)},
        "total_s": {"p50": pct(total, 50), "p95": pct(total, 95)},
    }


def verify_sweep(lines: list[dict]) -> dict | None:
    """AUROC of the drafts' verify P(yes), and refusal rates per threshold (``None`` without flags or scores)."""
    rows = []
    for r in lines:
        checks = r.get("answer_checks") or {}
        p = checks.get("verified_probability")
        draft_refused = bool(r.get("refused")) and p is None
        if r.get("answerable") is None or (p is None and not draft_refused):
            continue
        rows.append((bool(r["answerable"]), draft_refused, p))
    kinds = {flag: [row for row in rows if row[0] is flag] for flag in (False, True)}
    if not kinds[False] or not kinds[True]:
        return None
    rate = lambda rs, t: round(float(np.mean([d or p < t for _, d, p in rs])), 4)  # noqa: E731
    return {
        "questions": len(rows),
        "auroc_answered": auroc([p for a, d, p in rows if a and not d], [p for a, d, p in rows if not a and not d]),
        "refused [unanswerable, answerable] by threshold": {
            str(t): [rate(kinds[False], t), rate(kinds[True], t)] for t in (0.0, *THRESHOLDS)},
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args in (["-h"], ["--help"]):
        print(f"{USAGE}\n\n{__doc__}")
        return 0
    if len(args) != 1 or not Path(args[0]).is_file():
        print(USAGE, file=sys.stderr)
        return 2
    lines = []
    for raw in Path(args[0]).read_text(encoding="utf-8").splitlines():
        if raw.strip():
            obj = json.loads(raw)
            lines.append(obj.get("result", obj))
    print(json.dumps({**summarise(lines), "verify_sweep": verify_sweep(lines)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
