"""Grounded answering: retrieve, ask the LLM with numbered sources, validate and check the citations."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from rag.cite import CitedSentence, is_refusal, parse_answer
from rag.config import Settings
from rag.prompt import answer_messages
from rag.retrieve import ScoredChunk
from rag.search import Searcher


@dataclass(frozen=True, slots=True)
class Citation:
    """A source the answer cites, where its passage sits in the document, and whether it held up."""

    n: int
    chunk_id: str
    source: str
    page: int | None
    start: int | None
    end: int | None
    supported: bool | None


@dataclass(frozen=True, slots=True)
class CheckedSentence:
    """An answer sentence, the sources it cites, and the judge's verdict (None: not checked)."""

    text: str
    sources: tuple[int, ...]
    supported: bool | None
    support_probability: float | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """What ``rag ask`` returns."""

    question: str
    answer: str
    refused: bool
    citations: tuple[Citation, ...]
    sources: tuple[ScoredChunk, ...]
    sentences: tuple[CheckedSentence, ...]
    invalid_citations: tuple[int, ...]
    queries: tuple[str, ...]
    route: tuple[str, ...]
    timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` shape."""
        return {
            "question": self.question,
            "answer": self.answer,
            "refused": self.refused,
            "citations": [
                {"n": c.n, "chunk_id": c.chunk_id, "source": c.source, "page": c.page, "start": c.start,
                 "end": c.end, "supported": c.supported}
                for c in self.citations
            ],
            "sentences": [
                {"text": s.text, "sources": list(s.sources), "supported": s.supported,
                 "support_probability": s.support_probability}
                for s in self.sentences
            ],
            "invalid_citations": list(self.invalid_citations),
            "sources": [
                {"n": n, "chunk_id": c.chunk_id, "source": c.source, "page": c.page,
                 "start": c.payload.get("start"), "end": c.payload.get("end"), "text": c.text}
                for n, c in enumerate(self.sources, 1)
            ],
            "queries": list(self.queries),
            "route": list(self.route),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "notes": list(self.notes),
        }


def support_prompt(sentence: str, passages: Sequence[str]) -> list[dict[str, str]]:
    """A yes/no question: do these passages state what the sentence claims?"""
    joined = "\n\n".join(f"<passage>\n{p.strip()}\n</passage>" for p in passages)
    return [
        {"role": "system", "content": "You check claims against passages. Answer with one word: Yes or No."},
        {"role": "user", "content": f"{joined}\n\nClaim: {sentence}\n\nDo the passages support the claim? "
                                    "Answer Yes or No."},
    ]


class Answerer:
    """Answers questions about one collection with cited, checked sentences."""

    def __init__(self, settings: Settings, home: Path, collection: str = "default", llm: Any = None,
                 retriever: str | None = None, rerank: bool | None = None) -> None:
        self.settings = settings
        self.searcher = Searcher(settings, home, collection, retriever, rerank)
        self.collection = collection
        if llm is None:
            from rag.llm import LlmClient

            llm = LlmClient(settings.llm, home)
        self.llm = llm

    def ask(self, question: str, on_token: Callable[[str], None] | None = None,
            query: str | None = None) -> Answer:
        """Answer ``question``; ``query`` (e.g. a rewritten follow-up) is what gets searched."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        result = self.searcher.search(query or question, self.settings.answer.k)
        timings["retrieve_s"] = time.perf_counter() - t0
        chunks = result.results
        t1 = time.perf_counter()
        parts: list[str] = []
        for delta in self.llm.stream(answer_messages(question, chunks)):
            if not parts:
                timings["first_token_s"] = time.perf_counter() - t0
            parts.append(delta)
            if on_token:
                on_token(delta)
        timings["generate_s"] = time.perf_counter() - t1
        text = "".join(parts).strip()
        parsed = parse_answer(text, len(chunks))
        refused = is_refusal(text)
        t2 = time.perf_counter()
        sentences = self._check(parsed.sentences, chunks) if not refused else tuple(
            CheckedSentence(s.text, s.sources, None) for s in parsed.sentences)
        timings["check_s"] = time.perf_counter() - t2
        timings["total_s"] = time.perf_counter() - t0
        citations = tuple(self._citation(n, chunks[n - 1], sentences) for n in parsed.cited)
        notes = list(result.notes)
        if parsed.invalid:
            notes.append("removed citations of sources that do not exist: "
                         + ", ".join(f"[{n}]" for n in parsed.invalid))
        unsupported = [s for s in sentences if s.supported is False]
        if unsupported:
            notes.append(f"{len(unsupported)} sentence(s) not supported by the sources they cite")
        uncited = [s for s in sentences if not s.sources]
        if uncited and not refused:
            notes.append(f"{len(uncited)} sentence(s) cite no source")
        return Answer(question, parsed.text, refused, citations, tuple(chunks), sentences, parsed.invalid,
                      (query or question,), (self.collection,), timings, tuple(notes))

    def _check(self, sentences: Sequence[CitedSentence], chunks: Sequence[ScoredChunk]) -> tuple[CheckedSentence, ...]:
        out = []
        for s in sentences:
            if not s.sources or not self.settings.answer.check_support:
                out.append(CheckedSentence(s.text, s.sources, None))
                continue
            p = self.llm.yes_probability(support_prompt(s.text, [chunks[n - 1].text for n in s.sources]))
            out.append(CheckedSentence(s.text, s.sources, p >= self.settings.answer.support_threshold, round(p, 4)))
        return tuple(out)

    @staticmethod
    def _citation(n: int, chunk: ScoredChunk, sentences: Sequence[CheckedSentence]) -> Citation:
        verdicts = [s.supported for s in sentences if n in s.sources and s.supported is not None]
        supported = any(verdicts) if verdicts else None
        start, end = chunk.payload.get("start"), chunk.payload.get("end")
        return Citation(n, chunk.chunk_id, chunk.source, chunk.page,
                        int(start) if start is not None else None, int(end) if end is not None else None, supported)

    def close(self) -> None:
        """Release the collection and stop a local LLM server."""
        self.searcher.close()
        self.llm.close()
