"""The one place user-controlled text is made safe to print: file names, document text, model output.

A file name or a document can hold console markup (``x[/oops]y.txt``, ``[red]``), terminal
escape sequences (ESC [2J clears the screen; a forged "rag: done" line), bidirectional overrides
that reorder what is shown, or (for names that are not UTF-8) lone surrogates that cannot be
encoded. Everything the CLI prints that it did not write itself goes through :func:`plain`
(for ``click.echo`` and ``markup=False`` output) or :func:`markup` (for text spliced into rich markup).
"""

from __future__ import annotations

import re

from rich.markup import escape

# C0 and C1 controls but tab and newline (newline is handled apart), DEL, bidi embeddings/overrides/isolates,
# and lone surrogates.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _visible(m: re.Match[str]) -> str:
    code = ord(m.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain(text: object, newlines: bool = False) -> str:
    """``text`` with every control character but tab shown as an escape (``\\x1b``); newlines kept if asked."""
    s = str(text)
    if newlines:
        s = s.replace("\r\n", "\n")
    s = _UNSAFE.sub(_visible, s)
    return s if newlines else s.replace("\n", "\\n")


def markup(text: object) -> str:
    """``text`` made safe to embed in rich console markup: controls escaped, then ``[`` escaped."""
    return escape(plain(text))
