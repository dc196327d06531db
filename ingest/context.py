"""Contextual chunks: a short header naming a chunk's document, section and page.

A chunk cut from the middle of a document often never says what it is about: the tenth
chunk of ``2023 Q1 AMZN.pdf`` reads like the tenth chunk of any other quarterly report, so a
question naming the company and the quarter cannot find it. With ``[chunking] context``
set, each chunk is embedded and BM25-indexed with a header such as
``2023 Q1 AMZN > Risk factors | page 3`` before its text (Anthropic's "contextual
retrieval", 2024, prepends document context the same way), while the stored text, offsets
and citations stay the chunk's own.

The title is the document's own (PDF/DOCX metadata, HTML ``<title>``, a BEIR title), else
its first heading, else its file name made readable (``2023_Q1-AMZN.pdf`` -> ``2023 Q1
AMZN``). A part of the header that the chunk's first lines already say (a document that
starts with its title, a section chunk that starts with its heading) is left out, so a
chunk never carries the same words twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections import Counter
from collections.abc import Collection, Sequence
from pathlib import PurePath

from rag.core.records import Chunk, LoadedDocument
from rag.core.store import point_uuid

CONTEXT_PARTS: tuple[str, ...] = ("title", "headings", "page")
MAX_TITLE_CHARS = 150
MAX_HEADING_CHARS = 100
MAX_HEADER_CHARS = 300
OPENING_LINES = 3  # a header part equal to one of the chunk's first lines is left out

_NAME_SEPARATORS = re.compile(r"[_\-.]+")
_NON_WORD = re.compile(r"\W+")
_FILENAME_LIKE = re.compile(r"\.(docx?|pdf|html?|txt|rtf|odt|pptx?|xlsx?|md)$", re.IGNORECASE)
_PLACEHOLDER_TITLES = frozenset({"untitled", "title", "document", "none", "null", "unknown", "slide 1"})
_APP_PREFIX = re.compile(r"^(microsoft (word|powerpoint|excel)\s*-\s*)", re.IGNORECASE)


def context_signature(parts: Collection[str]) -> str:
    """Identifies the header settings in a file's ingest version ("" when there is no header)."""
    ordered = [p for p in CONTEXT_PARTS if p in parts]
    return f"context:{'+'.join(ordered)}:v1" if ordered else ""


def readable_name(source: str) -> str:
    """A file name as words: its stem with ``_ - .`` as spaces (``2023_Q1-AMZN.txt`` -> ``2023 Q1 AMZN``)."""
    stem = PurePath(source.replace("\\", "/")).stem
    return " ".join(_NAME_SEPARATORS.sub(" ", stem).split())


def clean_title(title: str | None) -> str:
    """A metadata title fit to name the document, or "" for none, a placeholder or a file name."""
    words = " ".join((title or "").split())
    words = _APP_PREFIX.sub("", words).strip()
    if not words or words.casefold() in _PLACEHOLDER_TITLES or _FILENAME_LIKE.search(words):
        return ""
    return words[:MAX_TITLE_CHARS]


def document_title(doc: LoadedDocument, *, name_fallback: bool = True) -> str:
    """The document's title: its own, else its first heading, else (for files) its readable file name."""
    own = clean_title(doc.title)
    if own:
        return own
    for section in doc.sections:
        if section.headings and section.headings[0].strip():
            return " ".join(section.headings[0].split())[:MAX_TITLE_CHARS]
    return readable_name(doc.path)[:MAX_TITLE_CHARS] if name_fallback else ""


def _norm(text: str) -> str:
    return " ".join(_NON_WORD.sub(" ", text).casefold().split())


def _opening(text: str) -> list[str]:
    lines = (_norm(line) for line in text.splitlines())
    return [line for line in lines if line][:OPENING_LINES]


def _says(line: str, key: str) -> bool:
    """Whether an opening line states ``key`` (a long key may be a truncated title)."""
    return line == key or line.startswith(key + " ") or (len(key) >= 40 and line.startswith(key))


def chunk_header(chunk: Chunk, title: str, parts: Collection[str]) -> str:
    """The header for one chunk: title and heading path joined by ``>``, then ``| page N``.

    Parts the chunk's first lines already say, and repeats (a title that is also the first
    heading), are left out; the header is at most ``MAX_HEADER_CHARS`` long.
    """
    opening = _opening(chunk.text)
    names: list[str] = []
    if "title" in parts and title:
        names.append(title)
    if "headings" in parts:
        names.extend(" ".join(h.split())[:MAX_HEADING_CHARS] for h in chunk.headings)
    kept: list[str] = []
    seen: set[str] = set()
    for name in names:
        key = _norm(name)
        if not key or key in seen or any(_says(line, key) for line in opening):
            continue
        seen.add(key)
        kept.append(name)
    header = " > ".join(kept)
    if "page" in parts and chunk.page is not None:
        last = chunk.page_end if chunk.page_end is not None else chunk.page
        page = f"page {chunk.page}" if last == chunk.page else f"pages {chunk.page}-{last}"
        header = f"{header} | {page}" if header else page
    return header[:MAX_HEADER_CHARS]


def add_context(
    doc: LoadedDocument, chunks: Sequence[Chunk], parts: Collection[str], *, title: str | None = None,
    name_fallback: bool = True,
) -> list[Chunk]:
    """The chunks with their headers set, and ids derived from what they are indexed by.

    A chunk's id hashes its indexed text (header and text), so turning the header on or off
    gives new ids and the next ingest embeds them afresh instead of reusing a vector made
    from other text; a chunk whose header is empty keeps the id it has without one.
    ``title`` overrides the document's (for in-memory documents that carry their own).
    """
    if not parts:
        return list(chunks)
    name = clean_title(title) if title is not None else document_title(doc, name_fallback=name_fallback)
    seen: Counter[str] = Counter()
    out: list[Chunk] = []
    for chunk in chunks:
        header = chunk_header(chunk, name, parts)
        with_header = dataclasses.replace(chunk, context=header)
        digest = hashlib.sha256(with_header.indexed_text.encode("utf-8")).hexdigest()
        occurrence = seen[digest]
        seen[digest] += 1
        out.append(dataclasses.replace(with_header, id=point_uuid(f"{chunk.source}\x00{digest}\x00{occurrence}")))
    return out
