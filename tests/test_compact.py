"""Compact prompts (``[answer] context_tokens``): the packaged MiniLM ranks, the tiny LLM answers through a real server.

What is checked: the budget holds, kept sentences stay in document order at their real offsets,
cut parts are marked, citations and quotes still resolve against the whole chunk, and with the
setting off the prompt is byte for byte what it was.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from rag.core.config import Settings
from rag.core.errors import ConfigError
from rag.core.prompts import ANSWER_SYSTEM, ELISION
from rag.query.answer import Answerer
from rag.query.attribute import sentence_spans
from rag.query.compact import compact_sources, token_counter
from rag.query.prompt import answer_messages

QUESTION = "How often should succulents be watered?"

SOURCES = (
    "Watering guide\n\nSucculents store water in their leaves. Water succulents every two weeks in summer. "
    "In winter, water them once a month. Overwatering rots the roots, so let the soil dry between waterings. "
    "Terracotta pots help the soil dry faster.",
    "  Cacti want four to six hours of direct sun. A south-facing window is ideal. Rotate the pot monthly "
    "so the plant grows evenly. Sunburn shows as pale patches on the side facing the window.  ",
    'The ficus dislikes being moved. It drops leaves when its position changes. He said "repot in spring." '
    "Then it recovers. Dust the large leaves monthly so they can photosynthesise.",
)


def _pieces(shown: str) -> list[str]:
    """The kept text of a compacted source, split at its ellipses."""
    return [p.strip() for p in shown.split(ELISION) if p.strip()]


def test_budget_holds_and_kept_sentences_keep_document_order_and_offsets(embedder) -> None:  # type: ignore[no-untyped-def]
    count = token_counter(embedder)
    full = sum(count(s.strip()) for s in SOURCES)
    for budget in (20, 45, 80, full - 1):
        context = compact_sources(QUESTION, SOURCES, budget, embedder.embed, count)
        assert context.tokens <= budget and sum(count(t) for t in context.texts) <= budget
        assert len(context.sources) == len(SOURCES) and context.full_tokens == full
        assert any(s.cut for s in context.sources)
        for text, source in zip(SOURCES, context.sources):
            spans = list(source.spans)
            assert spans == sorted(spans) and all(a < b for a, b in spans)  # document order, no overlap
            assert all(b <= c for (_, b), (c, _) in zip(spans, spans[1:]))
            shown = [text[a:b] for a, b in spans]
            assert all(piece in source.text for piece in shown)  # the real text, verbatim
            positions = [source.text.index(piece) for piece in shown]
            assert positions == sorted(positions)
            if source.cut:  # every cut part is marked, and nothing but real text sits between the marks
                assert ELISION in source.text
                joined = re.sub(r"\s+", " ", " ".join(shown))
                assert re.sub(r"\s+", " ", " ".join(_pieces(source.text))) == joined
    tight = compact_sources(QUESTION, SOURCES, 45, embedder.embed, count)
    assert "every two weeks in summer" in tight.texts[0]  # the sentence that answers is the one kept
    assert SOURCES[1][tight.sources[1].spans[0][0]:].startswith(tight.texts[1].lstrip(ELISION + " ")[:20])


def test_neighbouring_sentences_keep_the_text_between_them(embedder) -> None:  # type: ignore[no-untyped-def]
    count = token_counter(embedder)
    text = SOURCES[2]
    spans = sentence_spans(text)
    context = compact_sources("What did he say about repotting in spring, and then?", [text],
                              count(text) - 3, embedder.embed, count)
    source = context.sources[0]
    assert source.cut and ELISION in source.text
    kept = [spans.index(s) for s in source.spans]
    for i, j in zip(kept, kept[1:]):
        if j == i + 1:  # touching pieces: the original text between them (here a closing quote) stays
            assert text[spans[i][0]:spans[j][1]] in source.text


def test_sources_that_fit_are_shown_whole_and_the_prompt_is_unchanged(embedder) -> None:  # type: ignore[no-untyped-def]
    count = token_counter(embedder)
    context = compact_sources(QUESTION, SOURCES, 10_000, embedder.embed, count)
    assert not any(s.cut for s in context.sources)
    assert context.texts == tuple(s.strip() for s in SOURCES)
    from rag.core.records import ScoredChunk

    chunks = [ScoredChunk(chunk_id=str(i), text=t, source="s.txt", score=1.0) for i, t in enumerate(SOURCES)]
    assert answer_messages(QUESTION, chunks, context.texts) == answer_messages(QUESTION, chunks)


def test_context_tokens_is_validated(tmp_path: Path) -> None:
    from rag.core.config import load_settings

    assert load_settings(tmp_path, environ={}).answer.context_tokens == 0  # off by default
    assert load_settings(tmp_path, environ={"RAG_ANSWER_CONTEXT_TOKENS": "400"}).answer.context_tokens == 400
    with pytest.raises(ConfigError, match="context_tokens"):
        load_settings(tmp_path, environ={"RAG_ANSWER_CONTEXT_TOKENS": "-1"})


class _Recording:
    """The real tiny-model client, recording the messages of every streamed answer."""

    def __init__(self, llm) -> None:  # type: ignore[no-untyped-def]
        self.llm, self.streams = llm, []

    def stream(self, messages, **kw):  # type: ignore[no-untyped-def]
        self.streams.append(messages)
        return self.llm.stream(messages, **kw)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.llm, name)


def _expected_prompt_today(question: str, texts: list[str]) -> str:
    """The answer prompt's user message as it was written before compact prompts existed."""
    sources = "\n\n".join(f"[{n}] {t.strip()}" for n, t in enumerate(texts, 1))
    return f"Sources:\n{sources}\n\nQuestion: {question}"


@pytest.mark.slow
def test_answer_reads_compacted_sources_but_cites_the_whole_chunks(settings: Settings, rag_home: Path, embedder,  # type: ignore[no-untyped-def]
                                                                   docs: Path, tiny_llm) -> None:
    Ingestor(settings, rag_home, embedder=embedder).run([docs])
    off = settings.model_copy(update={"answer": settings.answer.model_copy(
        update={"verify": 0.0, "refuse_unsupported": False, "attribute": 0.01})})
    budget = 60
    on = off.model_copy(update={"answer": off.answer.model_copy(update={"context_tokens": budget})})
    answerer = Answerer(off, rag_home, llm=_Recording(tiny_llm), rerank=False)
    try:
        plain = answerer.ask(QUESTION)
        answerer.settings = on
        compacted = answerer.ask(QUESTION)
    finally:
        answerer.searcher.close()
    recorded_off, recorded_on = answerer.llm.streams
    # off: the prompt is byte for byte today's, and nothing about compaction is reported
    assert plain.context is None and plain.as_dict()["context"] is None and "compact_s" not in plain.timings
    assert recorded_off[0]["content"] == ANSWER_SYSTEM
    assert recorded_off[1]["content"] == _expected_prompt_today(QUESTION, [c.text for c in plain.sources])
    # on: the same sources, numbered alike, but the LLM read only their best sentences within the budget
    context = compacted.context
    assert context is not None and "compact_s" in compacted.timings
    assert [c.chunk_id for c in compacted.sources] == [c.chunk_id for c in plain.sources]
    assert [c.text for c in compacted.sources] == [c.text for c in plain.sources]  # whole chunks, not the cut text
    assert context.tokens <= budget < context.full_tokens
    assert recorded_on[1]["content"] == answer_messages(QUESTION, compacted.sources, context.texts)[1]["content"]
    assert ELISION in recorded_on[1]["content"] and len(recorded_on[1]["content"]) < len(recorded_off[1]["content"])
    for n in range(1, len(compacted.sources) + 1):
        assert f"[{n}] " in recorded_on[1]["content"]
    for chunk, source in zip(compacted.sources, context.sources):
        assert all(chunk.text[a:b] in source.text for a, b in source.spans)  # offsets into the whole chunk
    data = compacted.as_dict()
    assert data["context"]["budget"] == budget and len(data["context"]["kept"]) == len(compacted.sources)
    assert any(line.startswith("compact prompt:") for line in data["explain"])
    # citations and quotes resolve against the whole chunk, never against the shortened text
    for c in compacted.citations:
        chunk = compacted.sources[c.n - 1]
        assert (c.chunk_id, c.start, c.end) == (chunk.chunk_id, chunk.start, chunk.end)
    for s in compacted.sentences:
        q = s.quote
        if q is None:
            continue
        chunk = compacted.sources[q.n - 1]
        offset = q.start - chunk.start
        assert chunk.text[offset:offset + len(q.text)] == q.text
