"""PDF text extraction: PDFium first, pypdf when PDFium cannot read a file or a page; one PageSpan per page.

PDFium (through pypdfium2, the engine Chrome uses) was chosen by measurement
(benchmarks/pdf_extractors.py, docs/ingest.md): on the 29 messy-docs PDFs it is ~20x faster than
pypdf, keeps to the text that is visible on each page, and reads files that cross pypdf's safety
limits (an array over 100,000 elements, 10,001 content streams, a page tree 101 deep, ...), which
pypdf refuses or, for form XObjects, silently truncates. A file or page PDFium cannot read is tried
with pypdf before it is reported, and the report says which it is: a password, no text layer, or
damage (with pypdf's limit named when that is what stopped it).

Table rows stay on one line: PDFium breaks a row whose cells sit on slightly different baselines
and glues cells whose gap holds no space character (``400.01`` and ``3`` became ``400.013``), so
both are repaired from the characters' boxes.
"""

from __future__ import annotations

import ctypes
import io
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from ingest.load_text import short_detail
from rag.core.errors import LoadError
from rag.core.records import PageSpan

PASSWORD_REASON = "encrypted PDF: a password is required"
NO_TEXT_REASON = "no text layer (scanned or image-only PDF; OCR is not supported)"
PAGE_SEPARATOR = "\n\n"

logging.getLogger("pypdf").setLevel(logging.ERROR)

_PDFIUM_LOCK = threading.Lock()  # PDFium is not thread-safe; `rag serve` ingests in a worker thread
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

Failure = Literal["password", "limit", "damage"]


@dataclass(slots=True)
class Extraction:
    """What one extractor made of a file: page texts (None for a page it failed on) or why it could not open it."""

    extractor: str
    pages: list[str | None] = field(default_factory=list)
    failure: Failure | None = None
    detail: str = ""
    page_problems: list[str] = field(default_factory=list)

    @property
    def opened(self) -> bool:
        """Whether the file opened (its pages may still have failed)."""
        return self.failure is None

    @property
    def has_text(self) -> bool:
        """Whether any page gave text."""
        return any(self.pages)

    @property
    def complete(self) -> bool:
        """Whether every page was read."""
        return self.opened and None not in self.pages


def extract_pdf(data: bytes) -> tuple[str, tuple[PageSpan, ...], tuple[str, ...]]:
    """Text of a PDF (pages joined by a blank line), where each page starts, and warnings.

    Raises LoadError for encrypted, broken and text-less PDFs.
    """
    page_texts, warnings = choose_pages(pdfium_pages(data), lambda: pypdf_pages(data))
    pages: list[PageSpan] = []
    offset = 0
    for number, page_text in enumerate(page_texts, start=1):
        pages.append(PageSpan(offset, number))
        offset += len(page_text) + len(PAGE_SEPARATOR)
    return PAGE_SEPARATOR.join(page_texts), tuple(pages), tuple(warnings)


def choose_pages(first: Extraction, second: Callable[[], Extraction]) -> tuple[list[str], list[str]]:
    """Page texts from ``first``, with ``second`` (run only if needed) for what ``first`` could not read.

    Raises LoadError with the reason when neither gives text.
    """
    if first.failure == "password":
        raise LoadError(PASSWORD_REASON)
    if first.complete and first.has_text:
        return [text or "" for text in first.pages], list(first.page_problems)
    other = second()
    if first.opened and other.opened and len(other.pages) == len(first.pages):
        merged, warnings = [], list(first.page_problems)
        for number, (mine, theirs) in enumerate(zip(first.pages, other.pages), start=1):
            if mine is None and theirs is not None:
                warnings.append(f"page {number}: text from {other.extractor}")
            merged.append(mine if mine else (theirs or ""))
        if any(merged):
            return merged, warnings
    for one, rival in ((first, other), (other, first)):
        if one.opened and one.has_text:
            note = [] if rival.opened else [
                f"{rival.extractor} could not read the file ({rival.detail}); text from {one.extractor}"]
            return [text or "" for text in one.pages], note + one.page_problems
    if "password" in (first.failure, other.failure):
        raise LoadError(PASSWORD_REASON)
    opened = [one for one in (first, other) if one.opened]
    if opened and all(None in one.pages and not one.has_text for one in opened) and opened[0].page_problems:
        raise LoadError(f"broken PDF: {opened[0].page_problems[0]}")
    if opened:
        raise LoadError(NO_TEXT_REASON)
    return _both_failed(first, other)


def _both_failed(first: Extraction, other: Extraction) -> NoReturn:
    """Raise the reason for a file that neither extractor opened: damage, naming a safety limit if one stopped it."""
    limit = next((one for one in (first, other) if one.failure == "limit"), None)
    damaged = next((one for one in (first, other) if one.failure == "damage"), first)
    if limit is not None and damaged is not limit:
        raise LoadError(f"broken PDF: {damaged.detail} ({limit.extractor} stopped at a safety limit: {limit.detail})")
    if limit is not None:
        raise LoadError(f"PDF over a {limit.extractor} safety limit: {limit.detail}")
    raise LoadError(f"broken PDF: {damaged.detail}")


# --- PDFium ---------------------------------------------------------------------------------

def pdfium_pages(data: bytes) -> Extraction:
    """Every page's text as PDFium reads it, with table rows repaired."""
    try:
        import pypdfium2 as pdfium
    except ImportError as exc:  # pragma: no cover - pypdfium2 is a dependency
        return Extraction("PDFium", failure="damage", detail=f"PDFium is not installed ({exc.name})")
    result = Extraction("PDFium")
    with _PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            password = exc.err_code in (4, 5)  # FPDF_ERR_PASSWORD, FPDF_ERR_SECURITY
            return Extraction("PDFium", failure="password" if password else "damage",
                              detail=_pdfium_detail(exc))
        try:
            if len(document) == 0:
                return Extraction("PDFium", failure="damage", detail="the file has no pages")
            for number in range(1, len(document) + 1):
                try:
                    page = document[number - 1]
                    try:
                        result.pages.append(clean_page_text(_page_text(page)))
                    finally:
                        page.close()
                except Exception as exc:  # a damaged page must not lose the others
                    result.pages.append(None)
                    result.page_problems.append(f"page {number}: PDFium failed ({short_detail(exc, 80)})")
        finally:
            document.close()
    return result


def _pdfium_detail(exc: BaseException) -> str:
    """PDFium's load error in words ("Data format error" rather than the wrapper's sentence)."""
    match = re.search(r"PDFium: ([^)]*)\)", str(exc))
    return match.group(1) if match else short_detail(exc)


def _page_text(page: Any) -> str:
    """One page's text in PDFium's reading order, off-page lines dropped, table rows on one line."""
    from pypdfium2 import raw

    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        text = textpage.get_text_range() if count > 0 else ""
        if len(text) != count:  # chars PDFium adds or drops: indices no longer match, take its plain text
            return textpage.get_text_bounded()
        box = raw.FS_RECTF()

        def bounds(index: int) -> tuple[float, float, float, float] | None:
            """(left, bottom, right, top) of character ``index``, from its font's full height."""
            if not raw.FPDFText_GetLooseCharBox(textpage, index, ctypes.byref(box)):
                return None
            return box.left, box.bottom, box.right, box.top

        return _repair(text, bounds, page.get_bbox())
    finally:
        textpage.close()


def _repair(text: str, bounds: Callable[[int], _Box | None], page_box: _Box) -> str:
    """Join a line break between two cells of one row, space glued numbers apart, drop off-page lines."""
    kept: list[tuple[str, int | None]] = []  # (line, index of its last character in ``text``)
    start = 0
    for piece in [*_LINE_BREAK.finditer(text), None]:
        end = piece.start() if piece is not None else len(text)
        raw = text[start:end]
        first, last = start + len(raw) - len(raw.lstrip()), start + len(raw.rstrip()) - 1
        line_start, start = start, (piece.end() if piece is not None else len(text))
        if not raw.strip():
            kept.append((raw, None))
            continue
        line = _space_glued_cells(line_start, raw, bounds)
        previous = kept[-1][1] if kept else None
        if previous is not None and _same_row(bounds(previous), bounds(first)):
            kept[-1] = (kept[-1][0].rstrip() + " " + line.lstrip(), last)
        elif not (_outside(bounds(first), page_box) and _outside(bounds(last), page_box)):
            kept.append((line, last))
    return "\n".join(line for line, _ in kept)


_Box = tuple[float, float, float, float]  # left, bottom, right, top


def _space_glued_cells(start: int, line: str, bounds: Callable[[int], _Box | None]) -> str:
    """``line`` with a space where a digit touches another character in the text but not on the page."""
    out: list[str] = []
    for offset, char in enumerate(line):
        if out and not char.isspace() and not line[offset - 1].isspace() and (
                char.isdigit() or line[offset - 1].isdigit()):
            left, right = bounds(start + offset - 1), bounds(start + offset)
            if left is not None and right is not None and _same_row(left, right) and (
                    right[0] - left[2] > 0.25 * (left[3] - left[1])):
                out.append(" ")
        out.append(char)
    return "".join(out)


def _same_row(before: _Box | None, after: _Box | None) -> bool:
    """Whether ``after`` sits to the right of ``before`` on the same line of the page."""
    if before is None or after is None:
        return False
    overlap = min(before[3], after[3]) - max(before[1], after[1])
    height = min(before[3] - before[1], after[3] - after[1])
    return after[0] >= before[2] - 1.0 and height > 0 and overlap >= 0.5 * height


def _outside(box: _Box | None, page: _Box) -> bool:
    """Whether a character box lies wholly outside the page (text a spread left on its other half)."""
    if box is None:
        return False
    return box[2] < page[0] or box[0] > page[2] or box[3] < page[1] or box[1] > page[3]


# --- pypdf ----------------------------------------------------------------------------------

def pypdf_pages(data: bytes) -> Extraction:
    """Every page's text as pypdf reads it; its safety limits are told apart from damage."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import LimitReachedError
    except ImportError as exc:  # pragma: no cover - pypdf is a dependency
        return Extraction("pypdf", failure="damage", detail=f"pypdf is not installed ({exc.name})")

    def failed(exc: BaseException) -> Extraction:
        kind: Failure = "limit" if isinstance(exc, LimitReachedError) else "damage"
        if type(exc).__name__ == "FileNotDecryptedError":
            kind = "password"
        return Extraction("pypdf", failure=kind, detail=short_detail(exc))

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            opened = _decrypt(reader)
            if opened is not None:
                return opened
        count = len(reader.pages)
    except Exception as exc:  # pypdf raises many types on damaged files
        return failed(exc)
    if count == 0:
        return Extraction("pypdf", failure="damage", detail="the file has no pages")
    result = Extraction("pypdf")
    for number in range(1, count + 1):
        try:
            result.pages.append(clean_page_text(reader.pages[number - 1].extract_text() or ""))
        except Exception as exc:
            if type(exc).__name__ == "FileNotDecryptedError":
                return Extraction("pypdf", failure="password", detail=short_detail(exc))
            what = "stopped at a safety limit" if isinstance(exc, LimitReachedError) else "failed"
            result.pages.append(None)
            result.page_problems.append(f"page {number}: pypdf {what} ({short_detail(exc, 80)})")
    return result


def _decrypt(reader: Any) -> Extraction | None:
    """Open an encrypted PDF that has an empty user password; otherwise say why not."""
    try:
        opened = reader.decrypt("")
    except Exception as exc:  # DependencyError (no cryptography), NotImplementedError, ...
        name = type(exc).__name__
        detail = short_detail(exc) if name == "DependencyError" else f"{name}: {short_detail(exc)}"
        return Extraction("pypdf", failure="damage", detail=f"cannot decrypt ({detail})")
    return None if opened else Extraction("pypdf", failure="password", detail="a password is required")


def clean_page_text(text: str) -> str:
    """Normalise newlines; drop NULs, surrounding whitespace and PDFium's marks for a word hyphenated
    across a line break (U+0002 / U+FFFE: PDFium already joined the lines, so ``ef\ufffeficient`` -> ``efficient``)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return text.replace("\x02", "").replace("\ufffe", "").strip()


def pdf_title(data: bytes) -> str:
    """The PDF's metadata title (its Info dictionary's /Title), or "" when it has none or cannot be read."""
    try:
        import pypdfium2 as pdfium

        with _PDFIUM_LOCK:
            document = pdfium.PdfDocument(data)
            try:
                return str(document.get_metadata_value("Title") or "")
            finally:
                document.close()
    except Exception:  # a title is optional: an unreadable one never fails the load
        return ""
