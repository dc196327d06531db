"""Messages for grounded answers and their checks: numbered sources marked as data, never as instructions.

The wording lives in ``rag.core.prompts``; this module fills it in. A document cannot forge
another source: a line of its own that starts like ``[n]`` is rewritten to ``(n)``.
"""

from __future__ import annotations

import re
from typing import Sequence

from rag.core import prompts
from rag.core.records import ScoredChunk

_FORGED_MARKER = re.compile(r"^\s*\[(\d+)\]", re.MULTILINE)
_FORGED_HEADER = re.compile(r"^\s*(Question|Sources)\s*:", re.MULTILINE | re.IGNORECASE)


def _neutralise(text: str) -> str:
    """Keep a document from starting a fake source or a fake question."""
    text = _FORGED_MARKER.sub(lambda m: f"({m.group(1)})", text)
    return _FORGED_HEADER.sub(lambda m: f"{m.group(1)} -", text)


def format_sources(chunks: Sequence[ScoredChunk], shown: Sequence[str] | None = None) -> str:
    """The numbered source block: ``[n] text`` per chunk, separated by blank lines.

    ``shown`` replaces each chunk's text with what the model should read of it (a compacted
    source, see ``rag.query.compact``); the numbering stays the chunks'.
    """
    texts = [c.text.strip() for c in chunks] if shown is None else [t.strip() for t in shown]
    return "\n\n".join(prompts.SOURCE.format(n=n, text=_neutralise(text)) for n, text in enumerate(texts, 1))


def answer_messages(question: str, chunks: Sequence[ScoredChunk], shown: Sequence[str] | None = None,
                    system: str | None = None) -> list[dict[str, str]]:
    """Chat messages asking for a cited answer to ``question`` from ``chunks`` (numbered from 1).

    ``shown``: the text of each chunk to show instead of the whole (see :func:`format_sources`).
    ``system``: the instruction (None: ``ANSWER_SYSTEM``); the sources and question are the same whatever it says.
    """
    user = prompts.ANSWER_USER.format(sources=format_sources(chunks, shown), question=question.strip())
    return [{"role": "system", "content": system or prompts.ANSWER_SYSTEM}, {"role": "user", "content": user}]


def join_messages(question: str, chunks: Sequence[ScoredChunk],
                  shown: Sequence[str] | None = None) -> list[dict[str, str]]:
    """:func:`answer_messages` with ``JOIN_SYSTEM``: an answer that joins facts across the sources."""
    return answer_messages(question, chunks, shown, prompts.JOIN_SYSTEM)


def direct_messages(question: str, chunks: Sequence[ScoredChunk],
                    shown: Sequence[str] | None = None) -> list[dict[str, str]]:
    """:func:`answer_messages` with ``DIRECT_SYSTEM``: the sources were judged to hold the answer."""
    return answer_messages(question, chunks, shown, prompts.DIRECT_SYSTEM)


def answerable_messages(question: str, chunks: Sequence[ScoredChunk],
                        shown: Sequence[str] | None = None) -> list[dict[str, str]]:
    """The answer prompt with a yes/no question appended: do the sources contain the answer?

    It starts exactly like :func:`answer_messages`, so a llama.cpp server that keeps the prompt's
    KV cache does not read the sources twice when the answer follows.
    """
    messages = answer_messages(question, chunks, shown)
    user = prompts.GATE_USER.format(prompt=messages[-1]["content"], gate_question=prompts.GATE_QUESTION)
    messages[-1] = {"role": "user", "content": user}
    return messages


CHECK_PREMISE_CHARS = 9000
"""Passage text past this many characters in all is cut (with a marker) so a check fits a 4k context."""


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with a marker when it was cut."""
    return text if len(text) <= limit else text[:limit].rstrip() + " [...]"


def _passage_blocks(passages: Sequence[str]) -> str:
    """Passages as ``<passage>`` blocks separated by blank lines, whole."""
    return "\n\n".join(prompts.PASSAGE.format(text=p) for p in passages)


def passages_block(passages: Sequence[str]) -> str:
    """Passages as ``<passage>`` blocks, each cut to its share of :data:`CHECK_PREMISE_CHARS`."""
    budget = max(500, CHECK_PREMISE_CHARS // max(1, len(passages)))
    return _passage_blocks([clip(p.strip(), budget) for p in passages])


def answer_check_body(passages: Sequence[str], question: str, answer: str) -> str:
    """The material and question of the answer check (shared with the evals judge)."""
    return prompts.ANSWER_CHECK_BODY.format(passages=passages_block(passages), question=question.strip(),
                                            answer=answer.strip())


def verify_messages(question: str, answer: str, passages: Sequence[str]) -> list[dict[str, str]]:
    """A yes/no question for ``[answer] verify``: do ``passages`` state ``answer`` as the answer to ``question``?

    The wording is the evals judge's strict one: on 45 answered ClapNQ tuning questions it told
    answers to unanswerable questions from answers to answerable ones with AUROC 0.86, where
    asking the model about its own draft in the same conversation gave 0.53.
    """
    return yes_no_messages(prompts.ANSWER_CHECK_ROLE, answer_check_body(passages, question, answer))


def yes_no_messages(role: str, body: str) -> list[dict[str, str]]:
    """Chat messages for a one-word Yes/No judgement (read from the first token's log-probabilities)."""
    return [
        {"role": "system", "content": prompts.YES_NO_SYSTEM.format(role=role)},
        {"role": "user", "content": prompts.YES_NO_USER.format(body=body)},
    ]


def support_prompt(sentence: str, passages: Sequence[str]) -> list[dict[str, str]]:
    """A yes/no question: do these passages state what the sentence claims?"""
    return [
        {"role": "system", "content": prompts.SUPPORT_SYSTEM},
        {"role": "user", "content": prompts.SUPPORT_USER.format(passages=_passage_blocks([p.strip() for p in passages]),
                                                                claim=sentence)},
    ]
