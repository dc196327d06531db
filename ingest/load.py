"""Pick the loader for a file by its extension and return its text as a LoadedDocument.

Every failure is a LoadError with a short reason for the user (UnsupportedFileError
for file types that are not read at all); exceptions of the parsers never escape.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ingest.encoding import decode_bytes
from ingest.load_text import markdown_sections, rst_sections, short_detail
from rag.core.errors import LoadError, UnsupportedFileError
from rag.core.records import LoadedDocument, PageSpan, Section

EMPTY_REASON = "empty file"
WHITESPACE_REASON = "no text (file holds only whitespace)"
EMPTY_PAGE_REASON = "no text (the page has no visible text)"

_MARKDOWN = frozenset({".md", ".markdown"})
_HTML = frozenset({".html", ".htm", ".xhtml"})
_PLAIN = frozenset({
    ".txt", ".text", ".rst", ".csv", ".tsv", ".json", ".jsonl", ".xml", ".yaml", ".yml",
    ".toml", ".ini", ".cfg", ".conf", ".log", ".tex",
})
_SOURCE_CODE = frozenset({
    ".py", ".js", ".ts", ".tsx", ".jsx", ".java", ".c", ".h", ".cpp", ".hpp", ".cc", ".go",
    ".rs", ".rb", ".php", ".sh", ".sql", ".css", ".scala", ".kt", ".swift", ".r", ".lua",
    ".pl", ".m", ".cs",
})
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    _MARKDOWN | _HTML | _PLAIN | _SOURCE_CODE | {".pdf", ".docx"}
)
_FILE_TYPE_ALIASES = {"htm": "html", "xhtml": "html", "markdown": "md", "text": "txt", "": "txt"}

_Extracted = tuple[str, tuple[PageSpan, ...], tuple[Section, ...], str | None, tuple[str, ...]]
_Titled = tuple[str, tuple[PageSpan, ...], tuple[Section, ...], str | None, tuple[str, ...], str]


def file_type_of(path: Path) -> str:
    """The file type recorded for ``path``: its lowercase extension without the dot ("txt" if none)."""
    extension = path.suffix.lower().lstrip(".")
    return _FILE_TYPE_ALIASES.get(extension, extension)


def is_supported(path: Path) -> bool:
    """Whether ``path`` has an extension the loaders read (files without one are tried as text)."""
    return path.suffix == "" or path.suffix.lower() in SUPPORTED_EXTENSIONS


def load_document(path: Path, source: str) -> LoadedDocument:
    """Read ``path`` and extract its text; ``source`` is stored as the document's path.

    Raises UnsupportedFileError for unknown extensions and LoadError (with a short,
    user-facing reason) for files that cannot be read.
    """
    extension = path.suffix.lower()
    if extension and extension not in SUPPORTED_EXTENSIONS:
        raise UnsupportedFileError(f"unsupported file type '{extension}'")
    data = _read(path)
    if not data:
        raise LoadError(EMPTY_REASON)
    try:
        text, pages, sections, encoding, warnings, title = _extract(extension, data)
    except LoadError:
        raise
    except RecursionError as exc:
        raise LoadError(f"{_kind(extension)}: structure nested too deeply") from exc
    except Exception as exc:  # a parser failed in a way we did not foresee
        raise LoadError(f"{_kind(extension)}: {type(exc).__name__}: {short_detail(exc)}") from exc
    if not text.strip():
        raise LoadError(EMPTY_PAGE_REASON if extension in _HTML else WHITESPACE_REASON)
    return LoadedDocument(
        path=source,
        file_type=file_type_of(path),
        text=text,
        pages=pages,
        sections=sections,
        encoding=encoding,
        warnings=warnings,
        title=title,
    )


def _read(path: Path) -> bytes:
    """The file's bytes, or LoadError with the operating system's reason."""
    try:
        return path.read_bytes()
    except IsADirectoryError as exc:
        raise LoadError("not a file (it is a directory)") from exc
    except OSError as exc:
        raise LoadError(f"cannot read file: {exc.strerror or short_detail(exc)}") from exc


def _kind(extension: str) -> str:
    """How a failure is prefixed: "broken PDF", "broken DOCX", "broken HTML", ..."""
    name = extension.lstrip(".").upper() or "text file"
    return f"broken {name}"


def _extract(extension: str, data: bytes) -> _Titled:
    """Dispatch on the extension; returns (text, pages, sections, encoding, warnings, title)."""
    handler = _HANDLERS.get(extension, _load_plain)
    text, pages, sections, encoding, warnings = handler(data)
    title_of = _TITLES.get(extension)
    return text, pages, sections, encoding, warnings, title_of(data) if title_of else ""


def _html_title(data: bytes) -> str:
    from ingest.load_html import decode_html, html_title

    return html_title(decode_html(data)[0])


def _pdf_title(data: bytes) -> str:
    from ingest.load_pdf import pdf_title

    return pdf_title(data)


def _docx_title(data: bytes) -> str:
    from ingest.load_docx import docx_title

    return docx_title(data)


def _load_plain(data: bytes) -> _Extracted:
    """Plain text, source code, CSV, JSON, ... and files without an extension."""
    text, encoding = decode_bytes(data)
    return text, (), (), encoding, ()


def _load_markdown(data: bytes) -> _Extracted:
    """Markdown kept as written, with sections from its headings."""
    text, encoding = decode_bytes(data)
    return text, (), markdown_sections(text), encoding, ()


def _load_rst(data: bytes) -> _Extracted:
    """reStructuredText kept as written, with sections from underlined titles."""
    text, encoding = decode_bytes(data)
    return text, (), rst_sections(text), encoding, ()


def _load_html(data: bytes) -> _Extracted:
    """Visible text of an HTML page, with sections from h1..h6."""
    from ingest.load_html import decode_html, html_to_text

    markup, encoding = decode_html(data)
    text, sections = html_to_text(markup)
    return text, (), sections, encoding, ()


def _load_pdf(data: bytes) -> _Extracted:
    """Text layer of a PDF, one PageSpan per page."""
    from ingest.load_pdf import extract_pdf

    text, pages, warnings = extract_pdf(data)
    return text, pages, (), None, warnings


def _load_docx(data: bytes) -> _Extracted:
    """Body text of a Word document, with sections from heading styles."""
    from ingest.load_docx import extract_docx

    text, sections = extract_docx(data)
    return text, (), sections, None, ()


_HANDLERS: dict[str, Callable[[bytes], _Extracted]] = {
    **dict.fromkeys(_MARKDOWN, _load_markdown),
    **dict.fromkeys(_HTML, _load_html),
    ".rst": _load_rst,
    ".pdf": _load_pdf,
    ".docx": _load_docx,
}

_TITLES: dict[str, Callable[[bytes], str]] = {
    **dict.fromkeys(_HTML, _html_title),
    ".pdf": _pdf_title,
    ".docx": _docx_title,
}
