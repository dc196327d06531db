"""Tokenisation and BM25 term weights shared by the BM25 index and Qdrant sparse vectors.

Both lexical retrievers must see the same terms, so the tokenizer lives here once:
lower-cased Unicode word tokens, English stop words removed, Snowball stems.
Sparse vectors use a stable 31-bit hash of each term as its index, so no
vocabulary has to be stored or kept in step with the collection.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from rag.core.errors import ConfigError

_WORD = re.compile(r"\w+", re.UNICODE)

# The classic English stop-word list used by Lucene/Elasticsearch's "_english_" analyzer,
# extended with a few frequent function words.
ENGLISH_STOPWORDS = frozenset(
    """a an and are as at be but by for if in into is it no not of on or such that the their then
    there these they this to was will with i me my we our you your he him his she her its them
    what which who whom those am were been being have has had having do does did doing would should
    could can from up down out over under again further once here when where why how all any both
    each few more most other some own same so than too very s t just don now""".split()
)


@lru_cache(maxsize=8)
def _stemmer(language: str):  # type: ignore[no-untyped-def]
    import Stemmer

    try:
        return Stemmer.Stemmer(language)
    except KeyError:
        raise ConfigError(
            f"unknown stemmer language {language!r}; set [bm25] language to one of "
            f"{', '.join(Stemmer.algorithms())} or 'none'"
        ) from None


@dataclass(frozen=True, slots=True)
class Analyzer:
    """Turns text into BM25 terms."""

    language: str = "english"
    stopwords: bool = True

    def tokens(self, text: str) -> list[str]:
        """The terms of ``text`` in order (with repeats)."""
        words = [w for w in _WORD.findall(text.lower()) if len(w) < 64]
        if self.stopwords:
            words = [w for w in words if w not in ENGLISH_STOPWORDS]
        if self.language != "none":
            words = _stemmer(self.language).stemWords(words)
        return words


def term_id(term: str) -> int:
    """A stable non-negative 31-bit index for a term (CRC32 of its UTF-8 bytes)."""
    return zlib.crc32(term.encode("utf-8")) & 0x7FFFFFFF


def bm25_document_weights(
    tokens: list[str], avgdl: float, k1: float, b: float
) -> tuple[list[int], list[float]]:
    """Sparse BM25 document vector: per term ``tf*(k1+1)/(tf + k1*(1-b+b*dl/avgdl))``.

    The store's IDF modifier multiplies in the inverse document frequency at query time.
    Terms whose hashes collide are merged (their weights add).
    """
    counts = Counter(tokens)
    dl = len(tokens)
    norm = k1 * (1 - b + b * dl / avgdl) if avgdl > 0 else k1
    weights: dict[int, float] = {}
    for term, tf in counts.items():
        idx = term_id(term)
        weights[idx] = weights.get(idx, 0.0) + tf * (k1 + 1) / (tf + norm)
    indices = sorted(weights)
    return indices, [weights[i] for i in indices]


def query_weights(tokens: list[str]) -> tuple[list[int], list[float]]:
    """Sparse query vector: each distinct term once, weight 1 (idf comes from the store)."""
    indices = sorted({term_id(t) for t in tokens})
    return indices, [1.0] * len(indices)
