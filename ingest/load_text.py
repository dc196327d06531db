"""Headings of plain-text markup (Markdown, reStructuredText) and helpers shared by the loaders."""

from __future__ import annotations

import re
from collections.abc import Iterable

from rag.core.records import Section

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_NOT_PARAGRAPH = re.compile(r"^\s*(?:[#>|]|[-*+][ \t]|\d{1,9}[.)][ \t]|`{3,}|~{3,}|<)")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*{1,3}|_{1,3}|`+)(?=\S)(.+?)(?<=\S)\1")
_RST_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+:._!<>])\1{2,}[ \t]*$")
_MAX_SETEXT_CHARS = 200


def short_detail(exc: BaseException, limit: int = 120) -> str:
    """A one-line description of ``exc`` for a user-facing reason."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    if len(message) > limit:
        message = message[: limit - 1] + "…"
    return message


def heading_sections(headings: Iterable[tuple[int, int, str]]) -> tuple[Section, ...]:
    """Turn ``(start, level, title)`` triples (in text order) into Sections with full heading paths."""
    stack: list[tuple[int, str]] = []
    sections: list[Section] = []
    for start, level, title in headings:
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        section = Section(start, tuple(t for _, t in stack))
        if sections and sections[-1].start == start:
            sections[-1] = section
        else:
            sections.append(section)
    return tuple(sections)


def _lines(text: str) -> list[tuple[int, str]]:
    """``(offset, line)`` pairs of ``text``, lines without their newline."""
    out: list[tuple[int, str]] = []
    offset = 0
    for line in text.split("\n"):
        out.append((offset, line))
        offset += len(line) + 1
    return out


def clean_inline_markdown(title: str) -> str:
    """Heading text without links, emphasis markers and surplus whitespace."""
    title = _LINK.sub(r"\1", title)
    title = _EMPHASIS.sub(r"\2", title)
    return " ".join(title.split())


def _skip_front_matter(lines: list[tuple[int, str]]) -> int:
    """Index of the first line after a YAML front-matter block (0 when there is none)."""
    if not lines or lines[0][1].rstrip() != "---":
        return 0
    for i in range(1, min(len(lines), 200)):
        if lines[i][1].rstrip() in ("---", "..."):
            return i + 1
    return 0


def markdown_sections(text: str) -> tuple[Section, ...]:
    """Sections from ATX (``# Title``) and setext (``Title\\n====``) headings outside code fences."""
    lines = _lines(text)
    found: list[tuple[int, int, str]] = []
    fence: str | None = None
    paragraph: list[tuple[int, str]] = []
    for offset, line in lines[_skip_front_matter(lines):]:
        fence_match = _FENCE.match(line)
        if fence is not None:
            marker = fence_match.group(1) if fence_match else ""
            if marker[:1] == fence[:1] and len(marker) >= len(fence) and not fence_match.group(2).strip():
                fence = None
            continue
        if fence_match and not (fence_match.group(1)[0] == "`" and "`" in fence_match.group(2)):
            fence, paragraph = fence_match.group(1), []
            continue
        atx = _ATX.match(line)
        if atx:
            title = clean_inline_markdown(atx.group(2) or "")
            if title:
                found.append((offset, len(atx.group(1)), title))
            paragraph = []
            continue
        setext = _SETEXT.match(line)
        if setext and paragraph:
            title = clean_inline_markdown(" ".join(part.strip() for _, part in paragraph))
            if title and len(title) <= _MAX_SETEXT_CHARS:
                found.append((paragraph[0][0], 1 if setext.group(1)[0] == "=" else 2, title))
            paragraph = []
            continue
        indented_code = line.startswith(("    ", "\t")) and not paragraph
        if not line.strip() or indented_code or _NOT_PARAGRAPH.match(line):
            paragraph = []
        else:
            paragraph.append((offset, line))
    return heading_sections(found)


def rst_sections(text: str) -> tuple[Section, ...]:
    """Sections from reStructuredText titles (underlined, optionally overlined); best effort."""
    lines = _lines(text)
    styles: list[tuple[str, bool]] = []
    found: list[tuple[int, int, str]] = []
    i = 1
    while i < len(lines):
        offset, line = lines[i]
        adornment = _RST_ADORNMENT.match(line)
        title = lines[i - 1][1]
        if not adornment or not _rst_title_ok(title, line, lines, i):
            i += 1
            continue
        start = lines[i - 1][0]
        over = i >= 2 and lines[i - 2][1].rstrip() == line.rstrip()
        if over:
            start = lines[i - 2][0]
        style = (adornment.group(1), over)
        if style not in styles:
            styles.append(style)
        found.append((start, styles.index(style) + 1, title.strip()))
        i += 2
    return heading_sections(found)


def _rst_title_ok(title: str, underline: str, lines: list[tuple[int, str]], i: int) -> bool:
    """The line above an adornment is a title: text, not indented, preceded by a blank or an overline."""
    stripped = title.strip()
    if not stripped or title[0].isspace() or _RST_ADORNMENT.match(title):
        return False
    if len(underline.rstrip()) < min(len(stripped), 3):
        return False
    if i >= 2:
        before = lines[i - 2][1]
        return not before.strip() or before.rstrip() == underline.rstrip()
    return True
