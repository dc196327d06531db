"""Paired comparison of two evaluation runs of the same questions (``rag eval compare A B``).

Either file may be the ``--json`` output of ``rag eval run``/``score`` (its ``per_question``
values) or the ``--out`` JSONL (one line per question with ``metrics``). For each metric
both runs report, the questions where both have a value are paired by id, and the mean of
``A - B`` gets a paired bootstrap interval: a difference whose interval excludes 0 is
unlikely to be noise from which questions happened to be asked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.jsonl import iter_objects
from evals.metrics import EvalDataError, paired_bootstrap

__all__ = ["Comparison", "compare_runs", "read_per_question"]


@dataclass(frozen=True, slots=True)
class Comparison:
    """One metric of A against B over the questions both scored."""

    metric: str
    n: int
    mean_a: float
    mean_b: float
    diff: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """The 95% interval of A - B excludes 0."""
        return self.low > 0.0 or self.high < 0.0

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` shape."""
        return {"metric": self.metric, "n": self.n, "a": round(self.mean_a, 4), "b": round(self.mean_b, 4),
                "diff": round(self.diff, 4), "ci95": [round(self.low, 4), round(self.high, 4)],
                "significant": self.significant}


def _values(obj: Any, where: str) -> dict[str, float | None]:
    if not isinstance(obj, dict) or not all(v is None or isinstance(v, (int, float)) for v in obj.values()):
        raise EvalDataError(f"{where}: metrics must be an object of numbers (or null)")
    return obj


def read_per_question(path: Path) -> dict[str, dict[str, float | None]]:
    """question id -> metric -> value, from a ``--json`` summary or an ``--out`` JSONL file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise EvalDataError(f"{path} not found: expected the --json or --out output of `rag eval run`") from None
    except UnicodeDecodeError as exc:
        raise EvalDataError(f"{path} is not UTF-8 text ({exc.reason})") from None
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        per_question = whole.get("per_question")
        if not isinstance(per_question, dict):
            raise EvalDataError(f'{path}: a JSON summary needs "per_question" (from `rag eval run --json`)')
        return {str(q): _values(m, f"{path} question {q}") for q, m in per_question.items()}
    out: dict[str, dict[str, float | None]] = {}
    for where, obj in iter_objects(path, EvalDataError, ' (expected a result line of --out with "id" and "metrics")'):
        if "id" not in obj or "metrics" not in obj:
            raise EvalDataError(f'{where}: expected a result line with "id" and "metrics" (from --out)')
        out[str(obj["id"])] = _values(obj["metrics"], where)
    if not out:
        raise EvalDataError(f"{path} holds no results")
    return out


def compare_runs(a: dict[str, dict[str, float | None]], b: dict[str, dict[str, float | None]],
                 n_boot: int = 1000, seed: int = 0) -> list[Comparison]:  # fmt: skip
    """Paired differences A - B per metric, over the questions where both have a value."""
    common = sorted(set(a) & set(b))
    if not common:
        raise EvalDataError("the two runs share no question ids; compare runs of the same suite")
    metrics: dict[str, None] = {}
    for q in common:
        for m in a[q]:
            if m in b[q]:
                metrics.setdefault(m, None)
    rows = []
    for m in metrics:
        pairs = [(a[q][m], b[q][m]) for q in common if a[q].get(m) is not None and b[q].get(m) is not None]
        if not pairs:
            continue
        xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
        diff = paired_bootstrap(xs, ys, n=n_boot, seed=seed)
        rows.append(Comparison(m, len(pairs), sum(xs) / len(xs), sum(ys) / len(ys), diff.mean_diff, diff.low,
                               diff.high))
    return rows
