"""HTML to readable text: visible content only, blocks on their own lines, tables as rows."""

from __future__ import annotations

import codecs
import re
import warnings

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, NavigableString, Tag, XMLParsedAsHTMLWarning
from bs4.element import PreformattedString, Script, Stylesheet, TemplateString

from ingest.encoding import decode_bytes
from ingest.load_text import heading_sections
from rag.core.records import Section

_DROP_TAGS = [
    "script", "style", "noscript", "template", "svg", "head", "title", "meta", "link",
    "nav", "aside", "iframe", "object", "embed", "canvas", "map", "area", "button", "select",
]
_DROP_ROLES = {"navigation", "banner", "contentinfo", "search", "menu", "menubar", "dialog"}
_DROP_CLASSES = {
    "cookie", "cookies", "cookie-banner", "cookie-consent", "cookie-notice", "navbar",
    "breadcrumb", "breadcrumbs", "skip-link", "sr-only", "visually-hidden",
    "element-invisible", "screen-reader-text",
}
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BREAKS: dict[str, int] = {
    **dict.fromkeys(
        ["p", "ul", "ol", "dl", "blockquote", "section", "article", "main", "figure", "hr",
         "address", "details", "fieldset", "form", "table", "header", "footer"], 2),
    **dict.fromkeys(
        ["div", "li", "dt", "dd", "tr", "td", "th", "caption", "figcaption", "summary",
         "legend", "option", "center", "body", "html", "tbody", "thead", "tfoot", "label"], 1),
}
_LAYOUT_BLOCKS = ["p", "div", "br", "li", "pre", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6"]
_DATA_URI = re.compile(r"data:[^\s,]*?;base64,[A-Za-z0-9+/=]+")
_DECLARED = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.\-]+)"""
    rb"""|<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.\-]+)""",
    re.I,
)
_WHATWG = {
    "iso-8859-1": "cp1252", "iso8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252",
    "us-ascii": "cp1252", "ascii": "cp1252", "windows-1252": "cp1252", "iso-8859-9": "cp1254",
    "tis-620": "cp874", "gb2312": "gb18030", "gbk": "gb18030", "shift_jis": "cp932",
    "shift-jis": "cp932", "x-sjis": "cp932", "euc-kr": "cp949",
}
_CURRENCY = {"$", "€", "£", "¥", "US$", "($", "(", "$("}
_CLOSERS = {")", "%", ")%", "%)"}
_UNICODE = ("utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")


# XHTML and inline-XBRL pages are meant to be read with the HTML parser; a short page is not a URL.
warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)
warnings.filterwarnings("ignore", category=MarkupResemblesLocatorWarning)


def decode_html(data: bytes) -> tuple[str, str]:
    """Decode an HTML page: BOM/UTF-16/UTF-8 first, then a declared charset, then a guess."""
    text, encoding = decode_bytes(data)
    if encoding in _UNICODE:
        return text, encoding
    declared = _declared_charset(data)
    if declared is not None:
        try:
            return data.decode(declared).replace("\r\n", "\n").replace("\r", "\n"), declared
        except UnicodeDecodeError:
            if declared == "cp1252":
                return data.decode("latin-1").replace("\r\n", "\n").replace("\r", "\n"), "iso8859-1"
    return text, encoding


def _declared_charset(data: bytes) -> str | None:
    """The codec named by a ``<meta charset>`` or XML declaration in the page's head, if any."""
    match = _DECLARED.search(data[:8192])
    if not match:
        return None
    label = (match.group(1) or match.group(2)).decode("ascii").lower()
    label = _WHATWG.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def html_to_text(markup: str) -> tuple[str, tuple[Section, ...]]:
    """Readable text of an HTML document and its h1..h6 sections (offsets into that text)."""
    soup = BeautifulSoup(markup, "lxml")
    _drop_boilerplate(soup)
    builder = _TextBuilder()
    headings: list[tuple[int, int, str]] = []
    _walk(soup, builder, headings)
    return builder.text(), heading_sections(headings)


def _drop_boilerplate(soup: BeautifulSoup) -> None:
    """Remove invisible elements and navigation boilerplate from the tree."""
    doomed: list[Tag] = list(soup.find_all(_DROP_TAGS))
    for tag in soup.find_all(True):
        if _is_page_chrome(tag) or _is_hidden_or_boilerplate(tag):
            doomed.append(tag)
    for tag in doomed:
        if not tag.decomposed:
            tag.decompose()


def _is_page_chrome(tag: Tag) -> bool:
    """A page-level ``<header>`` or ``<footer>`` (those inside an article or section are content)."""
    return tag.name in ("header", "footer") and not tag.find_parent(["article", "main", "section"])


def _is_hidden_or_boilerplate(tag: Tag) -> bool:
    """Hidden by attribute or style, or marked as navigation by role or class."""
    attrs = tag.attrs
    if not attrs:
        return False
    if "hidden" in attrs or str(attrs.get("aria-hidden", "")).lower() == "true":
        return True
    if str(attrs.get("role", "")).lower() in _DROP_ROLES:
        return True
    style = attrs.get("style")
    if isinstance(style, str) and _HIDDEN_STYLE.search(style):
        return True
    classes = attrs.get("class") or []
    if isinstance(classes, str):
        classes = classes.split()
    return any(c.lower() in _DROP_CLASSES for c in classes)


class _TextBuilder:
    """Accumulates text with collapsed whitespace and lazily inserted line/paragraph breaks."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.pending = 0  # newlines owed before the next text: 0, 1 or 2
        self.space = False

    def _separator(self) -> str:
        if not self.length:
            return ""
        if self.pending:
            return "\n" * self.pending
        return " " if self.space else ""

    def next_offset(self) -> int:
        """Where the next emitted text will start."""
        return self.length + len(self._separator())

    def _emit(self, text: str) -> None:
        chunk = self._separator() + text
        self.parts.append(chunk)
        self.length += len(chunk)
        self.pending, self.space = 0, False

    def inline(self, text: str) -> None:
        """Add running text; whitespace runs collapse to one space."""
        text = _DATA_URI.sub(" ", text)
        if not text:
            return
        if text[0].isspace():
            self.space = True
        words = text.split()
        if words:
            self._emit(" ".join(words))
            self.space = text[-1].isspace()

    def preformatted(self, text: str) -> None:
        """Add a ``<pre>`` block with its line breaks (trailing spaces trimmed)."""
        lines = [line.rstrip() for line in _DATA_URI.sub(" ", text).split("\n")]
        while lines and not lines[0]:
            lines.pop(0)
        while lines and not lines[-1]:
            lines.pop()
        if lines:
            self.block_break(2)
            self._emit("\n".join(lines))
            self.block_break(2)

    def block_break(self, newlines: int) -> None:
        """Owe ``newlines`` (1: new line, 2: blank line) before the next text."""
        if self.length:
            self.pending = max(self.pending, newlines)
            self.space = False

    def line_break(self) -> None:
        """A ``<br>``: new line; a second one in a row makes a blank line."""
        self.block_break(2 if self.pending else 1)

    def text(self) -> str:
        """The text built so far."""
        return "".join(self.parts)


def _walk(root: Tag, builder: _TextBuilder, headings: list[tuple[int, int, str]]) -> None:
    """Emit the text of ``root`` into ``builder`` in document order (iteratively: no recursion limit)."""
    stack: list[tuple[object, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        if closing:
            builder.block_break(_BREAKS.get(node.name, 0))  # type: ignore[attr-defined]
            continue
        if isinstance(node, NavigableString):
            if not isinstance(node, (PreformattedString, Script, Stylesheet, TemplateString)):
                builder.inline(str(node))
            continue
        if not isinstance(node, Tag):
            continue
        name = node.name
        if name == "br":
            builder.line_break()
        elif name in _HEADINGS:
            _heading(node, builder, headings)
        elif name == "pre":
            builder.preformatted(node.get_text())
        elif name == "table" and not _is_layout_table(node):
            _data_table(node, builder)
        else:
            if name in _BREAKS:
                builder.block_break(_BREAKS[name])
                stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.contents))


def _heading(node: Tag, builder: _TextBuilder, headings: list[tuple[int, int, str]]) -> None:
    """Emit a heading as its own paragraph and record where it starts."""
    title = " ".join(_DATA_URI.sub(" ", node.get_text()).split())
    if not title:
        return
    builder.block_break(2)
    headings.append((builder.next_offset(), _HEADINGS[node.name], title))
    builder.inline(title)
    builder.block_break(2)


def _rows(table: Tag) -> list[list[Tag]]:
    """The table's own rows (not those of nested tables), each a list of its cells."""
    rows: list[list[Tag]] = []
    for child in table.find_all(["tr", "thead", "tbody", "tfoot"], recursive=False):
        trs = [child] if child.name == "tr" else child.find_all("tr", recursive=False)
        for tr in trs:
            rows.append(tr.find_all(["td", "th"], recursive=False))
    return rows


def _is_layout_table(table: Tag) -> bool:
    """A table used for page layout (nested tables, long or multi-block cells), not data."""
    if str(table.get("role", "")).lower() == "presentation" or table.find("table"):
        return True
    for row in _rows(table):
        for cell in row:
            if len(cell.find_all(_LAYOUT_BLOCKS, limit=3)) >= 3 or len(cell.get_text()) > 1000:
                return True
    return False


def _data_table(table: Tag, builder: _TextBuilder) -> None:
    """Emit a data table: one line per row, non-empty cells joined by `` | ``."""
    builder.block_break(2)
    caption = table.find("caption", recursive=False)
    if caption is not None:
        builder.inline(_cell_text(caption))
        builder.block_break(1)
    for row in _rows(table):
        cells = _join_split_values([_cell_text(cell) for cell in row])
        if cells:
            builder.block_break(1)
            builder.inline(" | ".join(cells))
    builder.block_break(2)


def _join_split_values(cells: list[str]) -> list[str]:
    """Drop empty cells and glue "$" / ")" / "%" cells to their number, as financial tables split them."""
    out: list[str] = []
    carry = ""
    for text in cells:
        if not text:
            continue
        if text in _CURRENCY:
            carry += text
        elif out and text in _CLOSERS:
            out[-1] += text
        else:
            out.append(carry + text)
            carry = ""
    if carry:
        out.append(carry)
    return out


def _cell_text(cell: Tag) -> str:
    """A cell's text on one line (block children separated by spaces)."""
    sub = _TextBuilder()
    _walk(cell, sub, [])
    return " ".join(sub.text().split())


_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)


def html_title(markup: str) -> str:
    """The page's ``<title>`` text (within the first 200,000 characters), or ""."""
    import html

    found = _TITLE.search(markup, 0, 200_000)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split()) if found else ""
