"""Citations in generated answers: parse ``[n]`` markers, drop invalid ones, split into sentences.

The model is asked to cite numbered sources inline as ``[1]`` or ``[1, 3]``. Every
marker must name a real source: markers outside 1..N are removed from the text and
reported. Each answer sentence keeps the sources it cites, so it can be checked
against them (see the answering stage); the records of that check (``CheckedSentence``,
``Citation``, ``SentenceQuote``) are defined here too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.core.prompts import REFUSAL as REFUSAL  # the refusal the answer prompt asks for (re-exported)

_MARKER = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")
# A sentence ends at . ! ? (optionally followed by citation markers and closing quotes) before
# whitespace; abbreviations like "e.g." are rare enough in answers to accept the occasional split.
_SENTENCE_END = re.compile(r"(?<=[.!?])((?:\s*\[[\d,;\s]+\])*)[\"')\]]*\s+(?=[A-Z0-9\"'(]|\[(?![\d,;\s]+\]))")

_REFUSAL_PATTERNS = (
    "the documents do not say",
    "the documents don't say",
    "the sources do not say",
    "the sources don't say",
    "the documents do not contain",
    "the sources do not contain",
    "not mentioned in the sources",
    "not mentioned in the documents",
    "not mentioned in the provided sources",
    "not mentioned in the provided documents",
    "the provided sources do not contain",
    "the provided documents do not contain",
    "i don't know",
    "i do not know",
)


@dataclass(frozen=True, slots=True)
class CitedSentence:
    """One sentence of an answer, its text without markers, and the sources it cites (1-based)."""

    text: str
    sources: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ParsedAnswer:
    """An answer with invalid markers removed, split into cited sentences."""

    text: str
    sentences: tuple[CitedSentence, ...]
    invalid: tuple[int, ...]

    @property
    def cited(self) -> tuple[int, ...]:
        """Every valid source number cited anywhere, in order of first use."""
        seen: dict[int, None] = {}
        for sentence in self.sentences:
            for n in sentence.sources:
                seen.setdefault(n, None)
        return tuple(seen)


@dataclass(frozen=True, slots=True, kw_only=True)
class Citation:
    """A source the answer cites, where its passage sits in the document, and whether it held up."""

    n: int
    chunk_id: str
    source: str
    page: int | None
    start: int | None
    end: int | None
    supported: bool | None
    attributed: bool = False  # added by rag (see rag.query.attribute) for every sentence that cites it


@dataclass(frozen=True, slots=True, kw_only=True)
class SentenceQuote:
    """The source sentence that an answer sentence restates: source number, document offsets, text, cosine."""

    n: int
    start: int | None
    end: int | None
    text: str
    similarity: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckedSentence:
    """An answer sentence, the sources it cites, and the judge's verdict (None: not checked)."""

    text: str
    sources: tuple[int, ...]
    supported: bool | None
    support_probability: float | None = None
    attributed: bool = False  # its citation was added by rag, not written by the model
    quote: SentenceQuote | None = None


def _numbers(group: str) -> list[int]:
    return [int(x) for x in re.split(r"\s*[,;]\s*", group.strip()) if x]


def strip_invalid(answer: str, n_sources: int) -> tuple[str, tuple[int, ...]]:
    """Remove citation numbers outside 1..n_sources; returns the cleaned text and the removed numbers."""
    invalid: list[int] = []

    def fix(match: re.Match[str]) -> str:
        numbers = _numbers(match.group(1))
        good = [n for n in numbers if 1 <= n <= n_sources]
        invalid.extend(n for n in numbers if not 1 <= n <= n_sources)
        if not good:
            return ""
        return f" [{', '.join(str(n) for n in good)}]"

    return _MARKER.sub(fix, answer), tuple(invalid)


def split_sentences(text: str) -> list[str]:
    """Split an answer into sentences, keeping each sentence's trailing citation markers with it."""
    text = text.strip()
    if not text:
        return []
    out: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end(1) if match.group(1) else match.start()
        piece = text[start:end].strip()
        if piece:
            out.append(piece)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def _cited_pieces(text: str) -> list[tuple[str, CitedSentence]]:
    """Each sentence of ``text`` as written (markers included) with its plain text and cited numbers."""
    out = []
    for piece in split_sentences(text):
        numbers: dict[int, None] = {}
        for match in _MARKER.finditer(piece):
            for n in _numbers(match.group(1)):
                numbers.setdefault(n, None)
        plain = _MARKER.sub("", piece).strip()
        if plain:
            out.append((piece, CitedSentence(plain, tuple(numbers))))
    return out


def parse_answer(answer: str, n_sources: int) -> ParsedAnswer:
    """Validate the markers of ``answer`` against ``n_sources`` numbered sources and split it."""
    cleaned, invalid = strip_invalid(answer, n_sources)
    sentences = tuple(sentence for _, sentence in _cited_pieces(cleaned))
    return ParsedAnswer(cleaned.strip(), sentences, invalid)


def add_markers(text: str, added: Sequence[tuple[int, ...]]) -> str:
    """``text`` (a parsed answer's text) with `` [n]`` written after sentence i for the numbers in ``added[i]``.

    Sentences are numbered as ``parse_answer`` numbers them, so ``parse_answer`` of the result
    gives each sentence its old citations plus the added ones.
    """
    parts: list[str] = []
    cursor = 0
    for (piece, _), numbers in zip(_cited_pieces(text), added):
        at = text.find(piece, cursor)
        if at < 0:  # cannot happen: the pieces come from this text, in order
            continue
        end = at + len(piece)
        parts.append(text[cursor:end])
        if numbers:
            parts.append(" [" + ", ".join(str(n) for n in numbers) + "]")
        cursor = end
    parts.append(text[cursor:])
    return "".join(parts)


def strip_markers(text: str) -> str:
    """``text`` without its ``[n]`` citation markers."""
    return _MARKER.sub("", text)


def is_refusal(answer: str) -> bool:
    """Whether the answer says the documents do not contain the answer."""
    head = " ".join(answer.lower().split())[:200]
    return any(p in head for p in _REFUSAL_PATTERNS)
