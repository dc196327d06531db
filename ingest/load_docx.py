"""DOCX text extraction: body paragraphs and tables in document order, headings as sections."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

from ingest.load_text import heading_sections, short_detail
from rag.core.errors import LoadError
from rag.core.records import Section

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_P, _TBL, _SDT, _TR, _TC = (_W + n for n in ("p", "tbl", "sdt", "tr", "tc"))
_TEXT_TAGS = (_W + "t", _W + "tab", _W + "br", _W + "cr", _W + "noBreakHyphen")
_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.I)


def extract_docx(data: bytes) -> tuple[str, tuple[Section, ...]]:
    """Text of a .docx body (paragraphs and table rows, one per line) and its heading sections."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise LoadError("broken DOCX: not a zip archive (is it an old .doc file?)")
    document = _open(data)
    try:
        styles = _heading_levels(document)
        lines: list[str] = []
        headings: list[tuple[int, int, str]] = []
        offset = 0
        for kind, element in _blocks(document.element.body):
            if kind == "p":
                text, level = _paragraph_text(element), _paragraph_level(element, styles)
                if text.strip() and level is not None:
                    headings.append((offset, level, " ".join(text.split())))
                new_lines = [text] if text.strip() else []
            else:
                new_lines = _table_lines(element)
            for line in new_lines:
                lines.append(line)
                offset += len(line) + 1
    except LoadError:
        raise
    except Exception as exc:  # malformed XML inside a valid package
        raise LoadError(f"broken DOCX: {short_detail(exc)}") from exc
    return "\n".join(lines), heading_sections(headings)


def _open(data: bytes) -> Any:
    """Open the package with python-docx (``docx.document.Document``)."""
    try:
        import docx
    except ImportError as exc:  # pragma: no cover - python-docx is a dependency
        raise LoadError(f"DOCX support is not installed ({exc.name})") from exc
    try:
        return docx.Document(io.BytesIO(data))
    except Exception as exc:  # PackageNotFoundError, KeyError, ValueError, XMLSyntaxError, ...
        raise LoadError(f"broken DOCX: {short_detail(exc)}") from exc


def _heading_levels(document: Any) -> dict[str, int]:
    """Paragraph style id -> heading level ("Title" is 0, "Heading N" is N)."""
    levels: dict[str, int] = {}
    for style in document.styles:
        name = (getattr(style, "name", None) or "").strip()
        style_id = getattr(style, "style_id", None)
        if not style_id:
            continue
        match = _HEADING_STYLE.match(name)
        if match:
            levels[style_id] = int(match.group(1))
        elif name.lower() == "title":
            levels[style_id] = 0
    return levels


def _blocks(container: Any) -> Iterator[tuple[str, Any]]:
    """``("p", element)`` and ``("tbl", element)`` in body order, looking inside content controls."""
    for child in container.iterchildren():
        if child.tag == _P:
            yield "p", child
        elif child.tag == _TBL:
            yield "tbl", child
        elif child.tag == _SDT:
            content = child.find(_W + "sdtContent")
            if content is not None:
                yield from _blocks(content)


def _paragraph_text(p: Any) -> str:
    """Visible text of a ``w:p``, including hyperlinks, fields and tracked insertions."""
    parts: list[str] = []
    for element in p.iter(*_TEXT_TAGS):
        if any(True for _ in element.iterancestors(_MC_FALLBACK)):
            continue  # the fallback copy of a text box repeats the mc:Choice content
        tag = element.tag
        if tag == _W + "t":
            parts.append(element.text or "")
        elif tag == _W + "tab":
            if element.getparent().tag == _W + "r":  # not a tab stop of w:pPr/w:tabs
                parts.append("\t")
        elif tag == _W + "noBreakHyphen":
            parts.append("-")
        else:
            parts.append("\n")
    return "".join(parts).strip()


def _paragraph_level(p: Any, styles: dict[str, int]) -> int | None:
    """Heading level of a paragraph from its style (or outline level), None for body text."""
    ppr = p.find(_W + "pPr")
    if ppr is None:
        return None
    style = ppr.find(_W + "pStyle")
    if style is not None and style.get(_W + "val") in styles:
        return styles[style.get(_W + "val")]
    outline = ppr.find(_W + "outlineLvl")
    if outline is not None and (outline.get(_W + "val") or "").isdigit():
        level = int(outline.get(_W + "val")) + 1
        return level if level <= 6 else None
    return None


def _table_lines(tbl: Any) -> list[str]:
    """One line per row: the non-empty cells joined by `` | `` (merged cells appear once)."""
    lines: list[str] = []
    for tr in tbl.iter(_TR):
        if _nearest(tr, _TBL) is not tbl:
            continue  # a row of a nested table: its text is part of the enclosing cell
        cells: list[str] = []
        for tc in tr.iter(_TC):
            if _nearest(tc, _TR) is not tr:
                continue
            text = " ".join(" ".join(_paragraph_text(p) for p in tc.iter(_P)).split())
            if text:
                cells.append(text)
        if cells:
            lines.append(" | ".join(cells))
    return lines


def _nearest(element: Any, tag: str) -> Any:
    """The closest ancestor of ``element`` with ``tag``."""
    return next(element.iterancestors(tag), None)


_CORE_TITLE = re.compile(rb"<dc:title[^>]*>(.*?)</dc:title>", re.DOTALL)


def docx_title(data: bytes) -> str:
    """The document's core-properties title (``docProps/core.xml``), or "" when it has none or cannot be read."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package, package.open("docProps/core.xml") as fh:
            core = fh.read(1_000_000)
        found = _CORE_TITLE.search(core)
        if found is None:
            return ""
        import html

        return html.unescape(found.group(1).decode("utf-8", "replace"))
    except Exception:  # a title is optional: an unreadable one never fails the load
        return ""
