"""A terminal conversation over a collection: follow-ups are rewritten into standalone queries (``rewrite``)."""

from __future__ import annotations

from typing import Callable

from rag.query.answer import Answer, Answerer
from rag.query.rewrite import rewrite_followup


class ChatSession:
    """Keeps the history of one conversation and answers each turn with cited sources."""

    def __init__(self, answerer: Answerer) -> None:
        self.answerer = answerer
        self.history: list[tuple[str, str]] = []
        self.last: Answer | None = None

    def standalone_query(self, question: str) -> str:
        """The question itself on the first turn; later, rewritten with the history by the LLM."""
        return rewrite_followup(self.history, question, self.answerer.llm)

    def turn(self, question: str, on_token: Callable[[str], None] | None = None) -> Answer:
        """Answer one user message and remember it."""
        query = self.standalone_query(question)
        answer = self.answerer.ask(query, on_token=on_token, query=query)
        self.history.append((question, answer.answer))
        self.last = answer
        return answer

    def reset(self) -> None:
        """Forget the conversation."""
        self.history.clear()
        self.last = None
