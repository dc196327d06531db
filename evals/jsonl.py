"""One reader for the JSONL files the evals package takes in (suites, results, BEIR, imports).

Every problem becomes one line of the caller's error class, naming the file and line:
invalid JSON, a line that is not a JSON object, or a file that is not UTF-8.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.core.errors import RagError


def iter_objects(path: str | Path, error: type[RagError], expected: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """("<path> line <n>", object) for each non-blank line of ``path``.

    ``expected`` (e.g. "; expected one JSON object per line with ...") ends the messages
    about a malformed line. The file must exist; callers say what it should have been.
    """
    lineno = 0
    try:
        with open(path, encoding="utf-8-sig") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{path} line {lineno}"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise error(f"{where}: invalid JSON ({exc.msg} at column {exc.colno}){expected}") from None
                if not isinstance(obj, dict):
                    raise error(f"{where}: expected a JSON object, got {type(obj).__name__}{expected}")
                yield where, obj
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text after line {lineno} ({exc.reason})") from None
