"""File names as the index keeps them: text that survives SQLite, JSON and a terminal, losslessly.

Linux file names are bytes. Python hands names that are not valid UTF-8 to us with
lone surrogates (``surrogateescape``), which SQLite, Qdrant payloads and JSON all
refuse. A *source* is the path in a form every layer accepts:

* a path that is valid UTF-8 and has no backslash is its own source (the usual case);
* any other path has its backslashes doubled and each byte that is not UTF-8 written
  as ``\\xNN``; so ``bad<0xff>name.txt`` becomes ``bad\\xffname.txt``.

A backslash in a source therefore always means "escaped form", which keeps the
mapping one-to-one: :func:`source_path` turns a source back into the exact bytes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2})")


def source_of(path: str | os.PathLike[str]) -> str:
    """The source string of a file path (lossless; see the module docstring)."""
    raw = os.fsencode(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\\" not in text:
        return text
    return raw.replace(b"\\", b"\\\\").decode("utf-8", errors="backslashreplace")


def source_path(source: str) -> Path:
    """The file path a source names (the inverse of :func:`source_of`)."""
    if "\\" not in source:
        return Path(source)
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(source):
        out += source[pos:m.start()].encode("utf-8")
        token = m.group(1)
        out += b"\\" if token == "\\" else bytes([int(token[1:], 16)])
        pos = m.end()
    out += source[pos:].encode("utf-8")
    return Path(os.fsdecode(bytes(out)))
