"""The evaluation suite format: JSONL, one question per line.

Each line is a JSON object with:

- ``id`` (string, unique in the file) and ``question`` (non-empty string): required;
- ``answers``: reference answers (list of strings; ``[]`` means "nothing to answer");
- ``gold_sources``: the documents that hold the evidence, as doc ids or paths relative to
  the suite's folder (importers write ``docs/<name>.txt``);
- ``gold_contexts``: the evidence passages or sentences themselves (list of strings);
- ``answerable``: whether the documents answer the question at all (bool);
- ``answer``, ``contexts``, ``citations``: a pre-computed system answer, the contexts it
  was given and the sources it cited, so a suite can be scored without running a model.

Any other key is an error (a typo such as ``gold_source`` would otherwise silently drop the
gold data). Blank lines are skipped. Every problem is one line naming file, line and cause.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from evals.jsonl import iter_objects
from evals.metrics import EvalDataError

__all__ = ["SuiteFormatError", "SuiteItem", "item_from_json", "read_suite", "write_suite", "SUITE_KEYS"]


class SuiteFormatError(EvalDataError):
    """A suite file is missing or one of its lines is not a valid suite item."""


@dataclass(frozen=True, slots=True)
class SuiteItem:
    """One question of an evaluation suite; ``None`` means "not given" (unlike an empty tuple)."""

    id: str
    question: str
    answers: tuple[str, ...] | None = None
    gold_sources: tuple[str, ...] | None = None
    gold_contexts: tuple[str, ...] | None = None
    answerable: bool | None = None
    answer: str | None = None
    contexts: tuple[str, ...] | None = None
    citations: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object for this item: given fields only, tuples as lists, in field order."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


SUITE_KEYS: tuple[str, ...] = tuple(f.name for f in fields(SuiteItem))
_LIST_KEYS = ("answers", "gold_sources", "gold_contexts", "contexts", "citations")


def _item(obj: object, where: str) -> SuiteItem:
    """Validate one decoded line; ``where`` is "<file> line <n>" for the messages."""
    if not isinstance(obj, dict):
        raise SuiteFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    unknown = [k for k in obj if k not in SUITE_KEYS]
    if unknown:
        raise SuiteFormatError(
            f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(SUITE_KEYS)}"
        )
    for key in ("id", "question"):
        value = obj.get(key)
        if value is None:
            raise SuiteFormatError(f'{where}: missing "{key}" (every line needs "id" and "question")')
        if not isinstance(value, str) or not value.strip():
            raise SuiteFormatError(f'{where}: "{key}" must be a non-empty string, got {value!r:.60}')
    kwargs: dict[str, Any] = {"id": obj["id"], "question": obj["question"]}
    for key in _LIST_KEYS:
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SuiteFormatError(f'{where}: "{key}" must be a list of strings, got {value!r:.60}')
        kwargs[key] = tuple(value)
    if obj.get("answerable") is not None:
        if not isinstance(obj["answerable"], bool):
            raise SuiteFormatError(f'{where}: "answerable" must be true or false, got {obj["answerable"]!r:.60}')
        kwargs["answerable"] = obj["answerable"]
    if obj.get("answer") is not None:
        if not isinstance(obj["answer"], str):
            raise SuiteFormatError(f'{where}: "answer" must be a string, got {obj["answer"]!r:.60}')
        kwargs["answer"] = obj["answer"]
    return SuiteItem(**kwargs)


def item_from_json(obj: object, where: str) -> SuiteItem:
    """Validate one decoded suite line (``where`` names it in messages, e.g. "<file> line <n>")."""
    return _item(obj, where)


def read_suite(path: str | Path) -> list[SuiteItem]:
    """Read and validate a suite file; raises ``SuiteFormatError`` (a ``RagError``) on any problem.

    Problems: a missing or non-UTF-8 file, a line that is not a JSON object, a missing or
    empty ``id``/``question``, an unknown key, a wrongly typed value, a repeated ``id``, or
    a file with no questions at all.
    """
    path = Path(path)
    if not path.is_file():
        raise SuiteFormatError(f"{path} not found: expected a suite file (JSONL, one question per line)")
    items: list[SuiteItem] = []
    seen: dict[str, str] = {}
    for where, obj in iter_objects(path, SuiteFormatError):
        item = _item(obj, where)
        if item.id in seen:
            raise SuiteFormatError(f"{where}: id {item.id!r} already used on line {seen[item.id]}")
        seen[item.id] = where.rsplit(" line ", 1)[1]
        items.append(item)
    if not items:
        raise SuiteFormatError(f'{path} holds no questions: expected one JSON object per line with "id" and "question"')
    return items


def write_suite(items: Iterable[SuiteItem], path: str | Path) -> int:
    """Write ``items`` as a suite file (atomically: a temp file renamed over ``path``).

    Returns the number of items written. Repeated ids raise ``SuiteFormatError`` rather
    than producing a file that ``read_suite`` would reject.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    seen: set[str] = set()
    count = 0
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            for item in items:
                if item.id in seen:
                    raise SuiteFormatError(f"{path}: id {item.id!r} appears twice in the items to write")
                seen.add(item.id)
                fh.write(json.dumps(item.to_json(), ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return count
