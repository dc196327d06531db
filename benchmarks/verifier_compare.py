"""Two or more verifiers side by side on data none of them trained on (one JSON object).

- ``--ares DIR``: the gate's rows (``rag tune verifier --answerable``) made from the held-out ARES
  file ``--file`` (default ``wow``, which no shipped run reads): the question against a window
  holding its answer (supported) and against the same part without the answer's sentences (not).
- ``--scifact DIR``: SciFact's validation claims (``claims/claims_validation.csv``, the BEIR test
  queries: never trained on) made into rows as the training claims are.
- ``--stored``: ``[answer] verify`` as ``rag ask`` asks it, on the answers stored by the full
  HotpotQA-500 and ClapNQ-600 runs (their cache parts, in the repository's history at commit
  e24ef40): the answer with its question against the passages it cites. Good answers: HotpotQA
  answers that contain a gold answer, ClapNQ answers to answerable questions. Gives each verifier's
  AUROC for good vs bad and the share of each it would withdraw.

    python benchmarks/verifier_compare.py shipped /tmp/ver2 --ares $DATA/ares-train --scifact $DATA/scifact --stored
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
STORED = {"hotpotqa": "benchmarks/results/hotpotqa-500/cache-2026-11-29.jsonl.gz",
          "clapnq": "benchmarks/results/clapnq-600/cache-2026-11-29.jsonl.gz"}
STORED_COMMIT = "e24ef40"


def stored_results(path: str) -> list[dict[str, Any]]:
    raw = subprocess.run(["git", "show", f"{STORED_COMMIT}:{path}"], cwd=ROOT, capture_output=True, check=True).stdout
    out: dict[str, dict[str, Any]] = {}
    for line in gzip.decompress(raw).decode("utf-8").splitlines():
        result = json.loads(line)["result"]
        out[result["id"]] = result  # a later part's line wins, as the eval cache reads them
    return list(out.values())


def stored_checks(name: str) -> tuple[list[tuple[str, list[str]]], list[float]]:
    from evals.answer_metrics import contains_answer
    from rag.query.checker import plain
    from rag.query.cite import is_refusal, parse_answer
    from rag.query.verify_model import answer_claim

    checks, good = [], []
    for r in stored_results(STORED[name]):
        answer, contexts = r.get("answer") or "", r.get("contexts") or []
        if not answer or not contexts or is_refusal(answer):
            continue
        parsed = parse_answer(answer, len(contexts))
        read = [contexts[n - 1] for n in sorted(parsed.cited)] or list(contexts)
        checks.append((answer_claim(plain(parsed.text), r["question"]), read))
        ok = contains_answer(answer, r["answers"]) >= 1 if name == "hotpotqa" else bool(r.get("answerable"))
        good.append(1.0 if ok else 0.0)
    return checks, good


def withdrawn(ps: list[float], good: list[float], t: float) -> dict[str, float]:
    def share(flag: float) -> float:
        group = [p for p, g in zip(ps, good) if g == flag]
        return round(sum(p < t for p in group) / max(1, len(group)), 4)
    return {"good": share(1.0), "bad": share(0.0)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="verifier folders, or 'shipped' for rag/models/verifier")
    parser.add_argument("--ares", type=Path, help="folder of the ARES *_synthetic_queries.tsv files")
    parser.add_argument("--file", default="wow", help="the held-out ARES file (its name before the first '_')")
    parser.add_argument("--per-file", type=int, default=200, help="questions of the held-out file (seeded)")
    parser.add_argument("--scifact", type=Path, help="BEIR SciFact folder with claims/claims_validation.csv")
    parser.add_argument("--stored", action="store_true", help="verify the stored HotpotQA-500 and ClapNQ-600 answers")
    args = parser.parse_args(argv)
    if args.ares and not any(args.ares.glob(f"{args.file}_*.tsv")):
        parser.error(f"{args.ares}: no {args.file}_*.tsv file")
    if args.scifact and not (args.scifact / "claims" / "claims_validation.csv").is_file():
        parser.error(f"{args.scifact}: no claims/claims_validation.csv")

    from rag.query.verify_model import Verifier
    from rag.tune.verifier import auroc, heldout_figures
    from rag.tune.verifier_data import answerable_examples, scifact_examples

    verifiers = {m: Verifier(None if m == "shipped" else m) for m in args.models}
    out: dict[str, Any] = {}
    if args.ares:
        rows = answerable_examples(sorted(args.ares.glob(f"{args.file}_*.tsv")), args.per_file, 0, 120)
        gate = [r for r in rows if r.kind != "ares-answer-removed"]
        out["ares_gate_rows"] = {m: heldout_figures(v.model, gate) for m, v in verifiers.items()}
        out["ares_answer_removed_rows"] = {m: heldout_figures(v.model, rows) for m, v in verifiers.items()}
    if args.scifact:
        with tempfile.TemporaryDirectory() as tmp:  # the validation claims, read as training claims are
            (Path(tmp) / "claims").mkdir()
            (Path(tmp) / "claims" / "claims_train.csv").write_bytes(
                (args.scifact / "claims" / "claims_validation.csv").read_bytes())
            (Path(tmp) / "corpus.jsonl").symlink_to((args.scifact / "corpus.jsonl").resolve())
            rows = scifact_examples(Path(tmp), 0, 120)
        out["scifact_validation"] = {m: heldout_figures(v.model, rows) for m, v in verifiers.items()}
    if args.stored:
        for name in STORED:
            checks, good = stored_checks(name)
            entry: dict[str, Any] = {"answers": len(checks), "good": int(sum(good))}
            for m, v in verifiers.items():
                ps = v.supports(checks)
                entry[m] = {"auroc": round(auroc(ps, good), 4),
                            "withdrawn": {str(t): withdrawn(ps, good, t) for t in (0.3, 0.4, v.threshold)}}
            out[f"stored_{name}"] = entry
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
