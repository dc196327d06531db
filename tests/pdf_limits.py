"""Small valid PDFs that cross one of pypdf's safety limits each, made on demand (no binary fixtures).

Real files cross these limits: two of Microsoft's 2023 10-Q filings hold an array longer than
pypdf's 100,000 elements. Every PDF here is well formed and shows the text given for each page,
so an extractor that reads it should return that text on that page. Used by tests/test_pdf.py and
benchmarks/pdf_extractors.py.

    python tests/pdf_limits.py OUT_FOLDER    # writes one <limit>.pdf per limit
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable
from pathlib import Path

PAGE_TEXTS = ("Quarterly report page one: revenue rose in Seattle", "Page two lists the segment totals")

# pypdf's defaults (pypdf.Configuration, pypdf/generic/_data_structures.py), crossed by one
ARRAY_ELEMENTS = 100_000
DICTIONARY_ENTRIES = 100_000
CONTENT_STREAMS_PER_PAGE = 10_000
CONTENT_TOKENS = 2_000_000
FORM_INVOCATIONS = 5_000
PAGE_TREE_DEPTH = 100
STREAM_FILTERS = 16


def write_pdf(objects: dict[int, bytes], root: int = 1) -> bytes:
    """A PDF file holding ``objects`` (number -> body) with a classic cross-reference table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, objects[number])
    size = max(objects) + 1
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    out += b"".join(b"%010d 00000 n \n" % offsets[n] if n in offsets else b"0000000000 65535 f \n"
                    for n in range(1, size))
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, root, xref)
    return bytes(out)


def stream(data: bytes, extra: bytes = b"") -> bytes:
    """A stream object body."""
    return b"<< /Length %d %s>>\nstream\n%s\nendstream" % (len(data), extra, data)


def text_ops(text: str, y: int = 720) -> bytes:
    """Content-stream operators that show ``text`` in Helvetica 12 pt at (72, y)."""
    return b"BT /F1 12 Tf 72 %d Td (%s) Tj ET" % (y, text.encode("latin-1"))


_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"


def _document(page_contents: list[bytes], *, catalog_extra: bytes = b"", page_extra: bytes = b"",
              resources_extra: bytes = b"", more: dict[int, bytes] | None = None) -> bytes:
    """A document with one page per content body; objects 1 catalog, 2 pages, 3 font, 10+ pages."""
    objects: dict[int, bytes] = {3: _FONT, **(more or {})}
    kids = []
    for i, content in enumerate(page_contents):
        page, body = 10 + 2 * i, 11 + 2 * i
        kids.append(b"%d 0 R" % page)
        objects[page] = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> "
                         b"%s >> /Contents %s %s >>" % (resources_extra, content if content.startswith(b"[")
                                                        else b"%d 0 R" % body, page_extra))
        if not content.startswith(b"["):
            objects[body] = stream(content)
    objects[1] = b"<< /Type /Catalog /Pages 2 0 R %s >>" % catalog_extra
    objects[2] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    return write_pdf(objects)


def _plain_pages() -> list[bytes]:
    return [text_ops(text) for text in PAGE_TEXTS]


def long_array() -> bytes:
    """Pages that carry an array with more elements than pypdf reads (the 10-Q case)."""
    numbers = b" ".join(b"%d" % (i % 10) for i in range(ARRAY_ELEMENTS + 1))
    return _document(_plain_pages(), page_extra=b"/PieceInfo << /Filer << /Private [%s] >> >>" % numbers)


def large_dictionary() -> bytes:
    """Pages that carry a dictionary with more entries than pypdf reads."""
    entries = b" ".join(b"/K%d %d" % (i, i) for i in range(DICTIONARY_ENTRIES + 1))
    return _document(_plain_pages(), page_extra=b"/PieceInfo << /Filer << /Private << %s >> >> >>" % entries)


def many_content_streams() -> bytes:
    """A first page drawn by more content streams than pypdf joins (one shows the text, the rest are empty)."""
    first = 20_000
    more = {first: stream(text_ops(PAGE_TEXTS[0]))}
    more.update({first + i: stream(b"") for i in range(1, CONTENT_STREAMS_PER_PAGE + 1)})
    refs = b" ".join(b"%d 0 R" % n for n in sorted(more))
    return _document([b"[" + refs + b"]", text_ops(PAGE_TEXTS[1])], more=more)


def many_tokens() -> bytes:
    """A first page whose (compressed) content stream has more tokens than pypdf parses."""
    filler = b"1 0 0 1 0 0 cm\n" * (CONTENT_TOKENS // 7 + 1)
    data = zlib.compress(text_ops(PAGE_TEXTS[0]) + b"\nq\n" + filler + b"Q\n", 9)
    objects = {30: stream(data, b"/Filter /FlateDecode ")}
    return _document([b"[30 0 R]", text_ops(PAGE_TEXTS[1])], more=objects)


def many_form_invocations() -> bytes:
    """A first page drawn through more form XObjects than pypdf follows; the last form shows its text."""
    first = 20_000
    count = FORM_INVOCATIONS + 1
    forms = {first + i: stream(text_ops(PAGE_TEXTS[0]) if i == count - 1 else b"0 0 m",
                               b"/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> ")
             for i in range(count)}
    names = b" ".join(b"/Fm%d %d 0 R" % (i, first + i) for i in range(count))
    calls = b"".join(b"q /Fm%d Do Q\n" % i for i in range(count))
    return _document([calls, text_ops(PAGE_TEXTS[1])], resources_extra=b"/XObject << %s >>" % names, more=forms)


def deep_page_tree() -> bytes:
    """Pages nested deeper than pypdf descends (each /Pages node holds the next)."""
    objects: dict[int, bytes] = {3: _FONT}
    depth = PAGE_TREE_DEPTH + 1
    first_node, first_page = 100, 100 + depth
    for level in range(depth):
        node, parent = first_node + level, (first_node + level - 1 if level else None)
        child = (b"%d 0 R" % (node + 1)) if level < depth - 1 else b" ".join(
            b"%d 0 R" % (first_page + 2 * i) for i in range(len(PAGE_TEXTS)))
        parent_ref = b"/Parent %d 0 R " % parent if parent is not None else b""
        objects[node] = b"<< /Type /Pages %s/Kids [%s] /Count %d >>" % (parent_ref, child, len(PAGE_TEXTS))
    for i, text in enumerate(PAGE_TEXTS):
        page, body = first_page + 2 * i, first_page + 2 * i + 1
        objects[page] = (b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] "
                         b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (first_node + depth - 1, body))
        objects[body] = stream(text_ops(text))
    objects[1] = b"<< /Type /Catalog /Pages %d 0 R >>" % first_node
    return write_pdf(objects)


def many_filters() -> bytes:
    """A first page whose content stream is compressed by more filters in a row than pypdf decodes."""
    data = text_ops(PAGE_TEXTS[0])
    for _ in range(STREAM_FILTERS + 1):
        data = zlib.compress(data)
    filters = b"[" + b" ".join([b"/FlateDecode"] * (STREAM_FILTERS + 1)) + b"]"
    return _document([b"[30 0 R]", text_ops(PAGE_TEXTS[1])], more={30: stream(data, b"/Filter %s " % filters)})


TABLE_ROWS = (("Segment", "Revenue", "Growth"), ("Cloud", "400.01", "3"), ("Devices", "1200.50", "11"))


def table() -> bytes:
    """One page holding a table whose cells are separate text objects with no space between them,
    the second column set 2 pt lower (as filers' tables often are): PDFium reads ``400.013``."""
    cells = []
    for row, values in enumerate(TABLE_ROWS):
        y = 700 - 20 * row
        for column, value in enumerate(values):
            cells.append(b"BT /F1 10 Tf %d %d Td (%s) Tj ET" % (72 + 120 * column, y - 2 * (column == 1),
                                                              value.encode()))
    return _document([b"\n".join(cells)])


LIMITS: dict[str, Callable[[], bytes]] = {
    "array-elements": long_array,
    "dictionary-entries": large_dictionary,
    "content-streams": many_content_streams,
    "content-tokens": many_tokens,
    "form-invocations": many_form_invocations,
    "page-tree-depth": deep_page_tree,
    "stream-filters": many_filters,
}


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    for name, make in LIMITS.items():
        (folder / f"{name}.pdf").write_bytes(make())
