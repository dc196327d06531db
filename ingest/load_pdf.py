"""PDF text extraction with pypdf: one PageSpan per page, clear reasons for PDFs that cannot be read."""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING

from ingest.load_text import short_detail
from rag.core.errors import LoadError
from rag.core.records import PageSpan

if TYPE_CHECKING:
    from pypdf import PdfReader

PASSWORD_REASON = "encrypted PDF: a password is required"
NO_TEXT_REASON = "no text layer (scanned or image-only PDF; OCR is not supported)"
PAGE_SEPARATOR = "\n\n"

logging.getLogger("pypdf").setLevel(logging.ERROR)


def extract_pdf(data: bytes) -> tuple[str, tuple[PageSpan, ...], tuple[str, ...]]:
    """Text of a PDF (pages joined by a blank line), where each page starts, and warnings.

    Raises LoadError for encrypted, broken and text-less PDFs.
    """
    reader = _open(data)
    page_texts, problems = _page_texts(reader)
    if not any(page_texts):
        if problems and len(problems) == len(page_texts):
            raise LoadError(f"broken PDF: {problems[0]}")
        raise LoadError(NO_TEXT_REASON)
    pages: list[PageSpan] = []
    offset = 0
    for number, page_text in enumerate(page_texts, start=1):
        pages.append(PageSpan(offset, number))
        offset += len(page_text) + len(PAGE_SEPARATOR)
    return PAGE_SEPARATOR.join(page_texts), tuple(pages), tuple(problems)


def _open(data: bytes) -> PdfReader:
    """Open the PDF (lenient parsing) and decrypt it with the empty password if needed."""
    try:
        from pypdf import PdfReader
    except ImportError as exc:  # pragma: no cover - pypdf is a dependency
        raise LoadError(f"PDF support is not installed ({exc.name})") from exc
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
    except Exception as exc:  # pypdf raises many types on damaged files
        raise LoadError(f"broken PDF: {short_detail(exc)}") from exc
    try:
        encrypted = reader.is_encrypted
    except Exception as exc:
        raise LoadError(f"broken PDF: {short_detail(exc)}") from exc
    if encrypted:
        _decrypt(reader)
    try:
        count = len(reader.pages)
    except Exception as exc:
        raise LoadError(f"broken PDF: {short_detail(exc)}") from exc
    if count == 0:
        raise LoadError("broken PDF: the file has no pages")
    return reader


def _decrypt(reader: PdfReader) -> None:
    """Open an encrypted PDF that has an empty user password; otherwise ask for the password."""
    try:
        result = reader.decrypt("")
    except Exception as exc:  # DependencyError (no cryptography), NotImplementedError, ...
        name = type(exc).__name__
        if name == "DependencyError":
            raise LoadError(f"encrypted PDF: cannot decrypt ({short_detail(exc)})") from exc
        raise LoadError(f"encrypted PDF: cannot decrypt ({name}: {short_detail(exc)})") from exc
    if not result:
        raise LoadError(PASSWORD_REASON)


def _page_texts(reader: PdfReader) -> tuple[list[str], list[str]]:
    """Cleaned text of every page, and a note for each page whose extraction failed."""
    texts: list[str] = []
    problems: list[str] = []
    for number in range(1, len(reader.pages) + 1):
        try:
            raw = reader.pages[number - 1].extract_text() or ""
        except Exception as exc:
            if type(exc).__name__ == "FileNotDecryptedError":
                raise LoadError(PASSWORD_REASON) from exc
            problems.append(f"page {number}: text extraction failed ({short_detail(exc, 80)})")
            raw = ""
        texts.append(clean_page_text(raw))
    return texts, problems


def clean_page_text(text: str) -> str:
    """Normalise newlines, drop NUL characters and surrounding whitespace."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").strip()
