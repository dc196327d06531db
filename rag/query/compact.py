"""Compact prompts: each numbered source shows the LLM only the sentences that matter for the question.

On 2 cores the local model reads a prompt at about 175 tokens/s, so five 1,000-character passages
cost seconds before the first answer token. With ``[answer] context_tokens`` set, every sentence
of every source is ranked against the question (embedding cosine plus the share of the question's
BM25 terms it holds) and the best are kept, in document order, until the budget is spent; cut
parts are marked with an ellipsis. Every source keeps its number, first with its best sentence.

Only the prompt is compacted: the sources, their citations, quotes, offsets and every check are
still made against the whole chunk text (``CompactSource.spans`` says where the shown pieces sit
in it). A source that fits whole is shown exactly as without compaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rag.core import prompts
from rag.core.embed import Embedder
from rag.core.lexical import Analyzer
from rag.query.attribute import Embed, is_quotable, sentence_spans

CountTokens = Callable[[str], int]

LEXICAL_WEIGHT = 0.5
"""Weight of the lexical overlap (share of the question's terms a sentence holds, 0..1) beside the cosine."""


@dataclass(frozen=True, slots=True)
class CompactSource:
    """What the LLM reads for one source, and which (start, end) offsets of the chunk's full text it shows."""

    text: str
    spans: tuple[tuple[int, int], ...]
    tokens: int
    full_tokens: int
    cut: bool  # False: the whole chunk text is shown, exactly as without compaction


@dataclass(frozen=True, slots=True)
class CompactContext:
    """The compacted sources of one prompt, in source order, with the budget they were fitted to."""

    sources: tuple[CompactSource, ...]
    budget: int

    @property
    def texts(self) -> tuple[str, ...]:
        """The text shown for each source, numbered from 1 like the sources."""
        return tuple(s.text for s in self.sources)

    @property
    def tokens(self) -> int:
        """Tokens of source text the LLM reads."""
        return sum(s.tokens for s in self.sources)

    @property
    def full_tokens(self) -> int:
        """Tokens of source text it would read without compaction."""
        return sum(s.full_tokens for s in self.sources)

    def as_dict(self) -> dict[str, Any]:
        """The ``context`` part of ``--json``: budget, tokens read, tokens of the whole sources, kept offsets."""
        return {"budget": self.budget, "tokens": self.tokens, "full_tokens": self.full_tokens,
                "kept": [[list(span) for span in s.spans] for s in self.sources]}


def token_counter(embedder: Embedder) -> CountTokens:
    """Token counts by the embedding model's tokenizer, its special tokens left out.

    The LLM's own tokenizer sits behind its endpoint; for English text the two counts are close.
    """
    special = embedder.count_tokens("")
    return lambda text: max(0, embedder.count_tokens(text) - special)


@dataclass(frozen=True, slots=True)
class _Piece:
    source: int  # 0-based source position
    index: int  # position among the source's pieces
    score: float
    cost: int


def _scores(question: str, pieces: Sequence[str], embed: Embed, analyzer: Analyzer) -> np.ndarray:
    """Cosine to the question plus ``LEXICAL_WEIGHT`` x the share of the question's terms in the piece."""
    vectors = embed([question, *pieces])
    cosine = vectors[1:] @ vectors[0]
    terms = set(analyzer.tokens(question))
    overlap = np.array([len(terms & set(analyzer.tokens(p))) / len(terms) if terms else 0.0 for p in pieces])
    return cosine + LEXICAL_WEIGHT * overlap


def _render(text: str, spans: Sequence[tuple[int, int]], kept: Sequence[int]) -> str:
    """The kept pieces of ``text`` in order, with the text between neighbouring pieces; skipped ones as an ellipsis."""
    if not kept:
        return prompts.ELISION
    parts = [prompts.ELISION + " "] if kept[0] > 0 else []
    for previous, k in zip((None, *kept), kept):
        if previous is not None:
            parts.append(text[spans[previous][1]:spans[k][0]] if k == previous + 1 else f" {prompts.ELISION} ")
        parts.append(text[spans[k][0]:spans[k][1]])
    if kept[-1] < len(spans) - 1:
        parts.append(" " + prompts.ELISION)
    return "".join(parts)


def compact_sources(question: str, texts: Sequence[str], budget: int, embed: Embed, count: CountTokens,
                    analyzer: Analyzer | None = None) -> CompactContext:
    """Fit the sources ``texts`` (whole chunk texts, in source order) to ``budget`` tokens for ``question``.

    When all of them fit, each is shown whole. Otherwise each source first gets its best piece
    (sources in order, while the budget lasts), then the best remaining pieces of any source are
    added while they fit; a piece costs its tokens plus one for an ellipsis, and one more per
    source is kept for a leading ellipsis. Titles and fragments rank below every sentence. The
    budget counts the sources' text only, not the numbering or the question.
    """
    analyzer = analyzer or Analyzer()
    full = [count(t.strip()) for t in texts]
    spans = [sentence_spans(t) for t in texts]
    if sum(full) <= budget:
        return CompactContext(tuple(CompactSource(t.strip(), tuple(s), n, n, False)
                                    for t, s, n in zip(texts, spans, full)), budget)
    located = [(i, k) for i, s in enumerate(spans) for k in range(len(s))]
    shown_pieces = [texts[i][spans[i][k][0]:spans[i][k][1]] for i, k in located]
    scores = _scores(question, shown_pieces, embed, analyzer) if located else []
    pieces = [_Piece(i, k, float(score) - (0.0 if is_quotable(piece) else 1.0), count(piece) + 1)
              for (i, k), piece, score in zip(located, shown_pieces, scores)]
    chosen: list[set[int]] = [set() for _ in texts]
    left = budget - len(texts)  # each source may open with an ellipsis
    for i in range(len(texts)):
        own = [p for p in pieces if p.source == i and p.cost <= left]
        if own:
            best = max(own, key=lambda p: p.score)
            chosen[i].add(best.index)
            left -= best.cost
    for p in sorted(pieces, key=lambda p: -p.score):
        if p.cost <= left and p.index not in chosen[p.source]:
            chosen[p.source].add(p.index)
            left -= p.cost
    out = []
    for i, text in enumerate(texts):
        kept = sorted(chosen[i])
        cut = len(kept) < len(spans[i])
        shown = _render(text, spans[i], kept) if cut else text.strip()
        out.append(CompactSource(shown, tuple(spans[i][k] for k in kept), count(shown) if cut else full[i], full[i],
                                 cut))
    return CompactContext(tuple(out), budget)
