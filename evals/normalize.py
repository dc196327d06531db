"""Answer-text normalisation shared by the answer metrics and the judge (SQuAD's rules)."""

from __future__ import annotations

import re
import string

from rag.query.cite import strip_markers

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation (lower case, punctuation and articles removed, whitespace collapsed), after
    removing citation markers: "Paris [1]." is the answer "Paris", not "paris 1"."""
    text = "".join(ch for ch in strip_markers(text).lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())
