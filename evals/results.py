"""Result lines of an evaluation: reading lines to score, writing ``--out`` and TREC run files.

A result line is a suite line (``evals.suite``) plus what a run added (``OUTPUT_KEYS``):
the ranked ``retrieved`` doc ids, the ``contexts`` and their ``context_sources``, the
``answer`` with its ``statements`` and ``citations``, ``metrics``, judge ``verdicts`` and
``errors``. ``rag eval score`` reads such lines back (or plain suite lines with answers).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.jsonl import iter_objects
from evals.metrics import EvalDataError, Run, write_trec_run
from evals.suite import SUITE_KEYS, SuiteFormatError, SuiteItem, item_from_json

__all__ = ["OUTPUT_KEYS", "EvalItem", "read_results", "write_results", "write_run_file"]

OUTPUT_KEYS: tuple[str, ...] = (
    "retrieved", "context_sources", "refused", "statements", "metrics", "verdicts", "judge", "ragas_judge", "errors",
    "timings", "key", "answer_checks",
)
"""Keys a result line adds to the suite keys (``score`` reads such lines back)."""


@dataclass(frozen=True, slots=True)
class EvalItem:
    """A suite item plus what a system produced for it (given in the line, or from the engine)."""

    item: SuiteItem
    retrieved: tuple[str, ...] | None = None
    context_sources: tuple[str, ...] | None = None


def read_results(path: Path) -> list[EvalItem]:
    """Lines to score: suite lines with ``answer`` and ``contexts``, or result lines of ``--out``.

    Result lines may also carry ``retrieved`` (ranked doc ids; retrieval metrics are then
    recomputed) and ``context_sources``; their other output keys are ignored.
    """
    if not path.is_file():
        raise SuiteFormatError(f"{path} not found: expected JSONL lines with id, question, answer and contexts")
    entries: list[EvalItem] = []
    seen: set[str] = set()
    for where, obj in iter_objects(path, SuiteFormatError):
        extra = {k: obj.pop(k) for k in list(obj) if k in OUTPUT_KEYS}
        unknown = [k for k in obj if k not in SUITE_KEYS]
        if unknown:
            raise SuiteFormatError(f"{where}: unknown key {unknown[0]!r}; allowed: suite keys and {', '.join(OUTPUT_KEYS)}")
        item = item_from_json(obj, where)
        if item.answer is None or item.contexts is None:
            raise SuiteFormatError(f'{where}: no "answer" and "contexts" to score; `rag eval run` produces them')
        if item.id in seen:
            raise SuiteFormatError(f"{where}: id {item.id!r} appears twice")
        seen.add(item.id)
        retrieved = extra.get("retrieved")
        sources = extra.get("context_sources")
        for name, value in (("retrieved", retrieved), ("context_sources", sources)):
            if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
                raise SuiteFormatError(f'{where}: "{name}" must be a list of strings')
        entries.append(EvalItem(item, tuple(retrieved) if retrieved is not None else None,
                                tuple(sources) if sources is not None else None))
    if not entries:
        raise SuiteFormatError(f"{path} holds no lines to score")
    return entries


def write_results(results: Iterable[dict[str, Any]], path: Path) -> None:
    """One JSON line per question (atomically: a temp file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        for r in results:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def write_run_file(results: Iterable[dict[str, Any]], path: Path, tag: str = "rag-eval") -> None:
    """The retrieval rankings as a TREC run file (rank order as descending scores)."""
    run: Run = {}
    for r in results:
        ranked = r.get("retrieved")
        if ranked is not None:
            run[r["id"]] = {doc: float(len(ranked) - i) for i, doc in enumerate(ranked)}
    if not run:
        raise EvalDataError("no retrieval rankings to write: the results have no \"retrieved\" lists")
    write_trec_run(run, path, tag)

