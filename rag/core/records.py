"""Small immutable records passed between pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True, slots=True)
class PageSpan:
    """Page ``number`` (1-based) starts at character ``start`` of the extracted text."""

    start: int
    number: int


@dataclass(frozen=True, slots=True)
class Section:
    """A heading path that applies from character ``start`` of the extracted text on."""

    start: int
    headings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LoadedDocument:
    """Text extracted from one file, with where its pages and sections begin.

    ``pages`` and ``sections`` are sorted by ``start``; both may be empty
    (plain text has no pages, a CSV has no headings).
    """

    path: str
    file_type: str
    text: str
    pages: tuple[PageSpan, ...] = ()
    sections: tuple[Section, ...] = ()
    encoding: str | None = None
    warnings: tuple[str, ...] = ()
    title: str = ""  # the file's own title (PDF/DOCX metadata, HTML <title>); "" when it has none


@dataclass(frozen=True, slots=True)
class Chunk:
    """One retrievable passage of a document.

    ``start``/``end`` are character offsets into the document's extracted text,
    so ``document.text[start:end] == text``. ``id`` is derived from the source
    and the content, so re-ingesting unchanged text gives the same id.
    ``context`` is a short header naming the chunk's document, section and page
    (``[chunking] context``, see ``ingest.context``): it is part of what is embedded and
    indexed (``indexed_text``), never of the displayed ``text``.
    """

    id: str
    source: str
    text: str
    start: int
    end: int
    chunk_index: int
    file_type: str
    page: int | None = None
    page_end: int | None = None
    headings: tuple[str, ...] = field(default_factory=tuple)
    context: str = ""

    @property
    def indexed_text(self) -> str:
        """What the chunk is embedded and BM25-indexed by: its context header, then its text."""
        return indexed_text(self.text, self.context)

    def payload(self, file_hash: str, version: str) -> dict[str, object]:
        """The payload stored with the chunk's vectors.

        ``version`` names the file content and the way it was chunked: after a file is rewritten,
        its points with another version are stale (see ``ingest.pipeline``).
        """
        return {
            "text": self.text,
            "source": self.source,
            "file_type": self.file_type,
            "file_hash": file_hash,
            "version": version,
            "start": self.start,
            "end": self.end,
            "chunk_index": self.chunk_index,
            "page": self.page,
            "page_end": self.page_end,
            "headings": list(self.headings),
            **({"context": self.context} if self.context else {}),
        }


def indexed_text(text: str, context: str = "") -> str:
    """A chunk's indexed text from its stored ``text`` and ``context`` payload fields."""
    return f"{context}\n\n{text}" if context else text


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoredChunk:
    """A retrieved chunk with its final score, every stage's rank and score, and where it sits in its document.

    The location fields are the stored ``Chunk``'s (``None`` where a retriever does not know
    them); ``collection`` is set when several collections' results are merged, so each result
    says where it came from.
    """

    chunk_id: str
    text: str
    source: str
    score: float
    scores: Mapping[str, float] = field(default_factory=dict)
    ranks: Mapping[str, int] = field(default_factory=dict)
    start: int | None = None
    end: int | None = None
    page: int | None = None
    page_end: int | None = None
    headings: tuple[str, ...] = ()
    file_type: str | None = None
    chunk_index: int | None = None
    collection: str | None = None


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """Metadata conditions applied inside the store: every given condition must hold."""

    source_globs: tuple[str, ...] = ()
    file_types: tuple[str, ...] = ()
    fields: Mapping[str, str | int | bool] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (self.source_globs or self.file_types or self.fields)
