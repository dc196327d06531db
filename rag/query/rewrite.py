"""Rewriting: a follow-up question in a conversation becomes a standalone search query.

"How often should it be watered?" means nothing to a retriever; after a turn about succulents
the LLM rewrites it as "How often should succulents be watered?". The first question of a
conversation is searched as it is.
"""

from __future__ import annotations

from typing import Sequence

from rag.core import prompts
from rag.core.llm import Llm

HISTORY_TURNS = 4  # the latest turns the rewriter reads
REWRITE_MAX_TOKENS = 64


def rewrite_messages(history: Sequence[tuple[str, str]], follow_up: str) -> list[dict[str, str]]:
    """Chat messages asking to turn a follow-up question into a standalone search query."""
    turns = "\n".join(prompts.REWRITE_TURN.format(question=q, answer=a) for q, a in history[-HISTORY_TURNS:])
    return [
        {"role": "system", "content": prompts.REWRITE_SYSTEM},
        {"role": "user", "content": prompts.REWRITE_USER.format(turns=turns, question=follow_up.strip())},
    ]


def rewrite_followup(history: Sequence[tuple[str, str]], question: str, llm: Llm) -> str:
    """``question`` as a standalone query: itself when there is no history, else the LLM's rewrite.

    ``history`` holds the earlier (question, answer) turns, oldest first. The rewrite is the first
    non-empty line of the reply, without quotes; an empty reply leaves the question as it is.
    """
    if not history:
        return question
    text = llm.chat(rewrite_messages(history, question), max_tokens=REWRITE_MAX_TOKENS, temperature=0.0)
    lines = [line.strip().strip('"') for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else question
