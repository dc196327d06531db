"""`rag ask`: retrieval + the tiny packaged LLM through a real llama.cpp server, citations validated."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from rag.query.answer import Answerer
from rag.query.cite import REFUSAL, parse_answer
from rag.core.config import Settings
from rag.core.errors import RagError
from tests.test_cli import one_line_error, rag

pytestmark = pytest.mark.slow



def test_ask_returns_checked_citations(settings: Settings, rag_home: Path, embedder, docs: Path, tiny_llm) -> None:  # type: ignore[no-untyped-def]
    Ingestor(settings, rag_home, embedder=embedder).run([docs])
    answerer = Answerer(settings, rag_home, llm=tiny_llm, rerank=False)
    streamed: list[str] = []
    try:
        answer = answerer.ask("How often should succulents be watered?", on_token=streamed.append)
    finally:
        answerer.searcher.close()
    assert answer.answer and "".join(streamed).strip().startswith(answer.answer.split()[0])
    assert 1 <= len(answer.sources) <= settings.answer.k
    n_sources = len(answer.sources)
    assert all(1 <= c.n <= n_sources for c in answer.citations)
    for c in answer.citations:
        chunk = answer.sources[c.n - 1]
        assert (c.chunk_id, c.source, c.start, c.end) == (chunk.chunk_id, chunk.source, chunk.start, chunk.end)
    for s in answer.sentences:
        assert all(1 <= n <= n_sources for n in s.sources)
        assert s.supported is None or (s.sources and 0.0 <= (s.support_probability or 0.0) <= 1.0)
    data = answer.as_dict()
    for key in ("answer", "refused", "citations", "sources", "queries", "route", "timings"):
        assert key in data
    assert data["timings"]["first_token_s"] > 0 and json.dumps(data)


def test_uncited_sentences_get_checked_citations_and_exact_quotes(settings: Settings, rag_home: Path, embedder,  # type: ignore[no-untyped-def]
                                                                  docs: Path, tiny_llm) -> None:
    Ingestor(settings, rag_home, embedder=embedder).run([docs])
    loose = settings.model_copy(update={"answer": settings.answer.model_copy(
        update={"verify": 0.0, "refuse_unsupported": False, "attribute": 0.01})})
    answerer = Answerer(loose, rag_home, llm=tiny_llm, rerank=False)
    try:
        answer = answerer.ask("How often should succulents be watered?")
    finally:
        answerer.searcher.close()
    if answer.refused:  # the tiny model refused by itself: nothing to attribute
        return
    assert answer.sentences and all(s.sources for s in answer.sentences)  # threshold 0.01: every sentence cites
    reparsed = parse_answer(answer.answer, len(answer.sources)).sentences
    assert [s.sources for s in reparsed] == [s.sources for s in answer.sentences]  # the markers are in the text
    for s in answer.sentences:
        assert s.supported is not None  # added citations are checked like written ones
        q = s.quote
        assert q is not None and q.n in s.sources
        chunk = answer.sources[q.n - 1]
        offset = q.start - chunk.start
        assert chunk.text[offset:offset + len(q.text)] == q.text and q.end - q.start == len(q.text)
    assert {c.n for c in answer.citations} == {n for s in answer.sentences for n in s.sources}
    added = {c.n for c in answer.citations if c.attributed}
    assert all(all(s.attributed for s in answer.sentences if n in s.sources) for n in added)
    assert "attribute_s" in answer.timings and json.dumps(answer.as_dict())


def test_gate_refuses_before_generating(settings: Settings, rag_home: Path, embedder, docs: Path, tiny_llm) -> None:  # type: ignore[no-untyped-def]
    Ingestor(settings, rag_home, embedder=embedder).run([docs])
    gated = settings.model_copy(update={"answer": settings.answer.model_copy(update={"gate": 1.0})})
    answerer = Answerer(gated, rag_home, llm=tiny_llm, rerank=False)
    streamed: list[str] = []
    try:
        answer = answerer.ask("How often should succulents be watered?", on_token=streamed.append)
        answerer.settings = settings  # gate off: no probability, an answer is generated
        plain = answerer.ask("How often should succulents be watered?")
    finally:
        answerer.searcher.close()
    p = answer.answerable_probability
    assert p is not None and 0.0 <= p <= 1.0 and "gate_s" in answer.timings
    if p < 1.0:  # the tiny model is never certain: the gate refuses, streams the refusal, cites nothing
        assert answer.refused and answer.answer == REFUSAL and "".join(streamed) == REFUSAL
        assert not answer.citations and any("[answer] gate" in n for n in answer.notes)
    assert plain.answerable_probability is None and "gate_s" not in plain.timings
    assert answer.as_dict()["answerable_probability"] == p


def test_verify_withdraws_a_draft_the_llm_does_not_confirm(settings: Settings, rag_home: Path, embedder, docs: Path,
                                                           tiny_llm) -> None:  # type: ignore[no-untyped-def]
    Ingestor(settings, rag_home, embedder=embedder).run([docs])
    strict = settings.model_copy(update={"answer": settings.answer.model_copy(update={"verify": 1.0, "checker": "llm"})})
    answerer = Answerer(strict, rag_home, llm=tiny_llm, rerank=False)
    try:
        answer = answerer.ask("How often should succulents be watered?")
        answerer.settings = settings.model_copy(update={"answer": settings.answer.model_copy(update={"verify": 0.0})})
        plain = answerer.ask("How often should succulents be watered?")  # verify off: no probability
    finally:
        answerer.searcher.close()
    assert plain.verified_probability is None and "verify_s" not in plain.timings
    # Decided on ``answer`` itself: llama.cpp's prompt cache makes two greedy drafts of one prompt differ
    # now and then, so ``plain`` may refuse where ``answer``'s draft did not.
    if answer.verified_probability is None:  # the tiny model refused by itself: nothing to verify
        assert answer.refused and not answer.withdrawn and "verify_s" not in answer.timings
        return
    p = answer.verified_probability
    assert p is not None and 0.0 <= p <= 1.0 and "verify_s" in answer.timings
    if p < 1.0:  # never certain: the draft is withdrawn, nothing is cited, the draft is kept in the notes
        assert answer.refused and answer.withdrawn and answer.answer == REFUSAL and not answer.citations
        assert all(s.supported is None for s in answer.sentences)
        assert any("[answer] verify" in n for n in answer.notes)
    assert answer.as_dict()["verified_probability"] == p


class _RefusingDraft:
    """The real tiny-model client, except that the first streamed answer is the refusal.

    SmolLM2-135M hardly ever writes the refusal sentence, so the refused draft that ``[multihop] join``
    reacts to is injected; the retry, its verification and everything after are the real model's.
    """

    def __init__(self, llm) -> None:  # type: ignore[no-untyped-def]
        self.llm, self.streams = llm, []

    def stream(self, messages, **kw):  # type: ignore[no-untyped-def]
        self.streams.append(messages)
        return iter([REFUSAL]) if len(self.streams) == 1 else self.llm.stream(messages, **kw)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.llm, name)


def test_join_asks_again_when_a_later_hop_added_sources(settings: Settings, rag_home: Path, embedder, docs: Path,
                                                       tiny_llm) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from rag.core.prompts import JOIN_SYSTEM

    Ingestor(settings, rag_home, embedder=embedder).run([docs])
    question = "How often should succulents be watered?"
    loose = settings.model_copy(update={"answer": settings.answer.model_copy(update={"verify": 0.01})})
    answerer = Answerer(loose, rag_home, llm=tiny_llm, rerank=False)
    try:
        first_hop_only = replace(answerer.gather(question), hops_of={}, added=frozenset())
        second = first_hop_only.chunks[1].chunk_id
        linked = replace(first_hop_only, hops_of={second: (2,)}, added=frozenset({second}))
        outcomes = []
        for evidence, join in ((first_hop_only, True), (linked, False), (linked, True)):
            answerer.settings = loose.model_copy(update={"multihop": loose.multihop.model_copy(update={"join": join})})
            answerer.llm = _RefusingDraft(tiny_llm)
            streamed: list[str] = []
            outcomes.append((answerer.ask(question, on_token=streamed.append, evidence=evidence), answerer.llm,
                             "".join(streamed)))
    finally:
        answerer.searcher.close()
    for answer, llm, _ in outcomes[:2]:  # no later hop, or join off: the refusal stands, nothing is asked again
        assert answer.refused and answer.answer == REFUSAL and not answer.joined and len(llm.streams) == 1
    answer, llm, streamed = outcomes[2]
    assert answer.joined and len(llm.streams) == 2 and llm.streams[1][0]["content"] == JOIN_SYSTEM
    assert llm.streams[1][1] == llm.streams[0][1]  # the same sources and question
    assert streamed.startswith(REFUSAL + "\n\n")  # the refusal was shown, then the retry streams
    assert any("[multihop] join" in n for n in answer.notes) and answer.as_dict()["joined"] is True
    if not answer.refused:  # the retry is checked like any draft: verified, citations validated
        assert answer.verified_probability is not None and answer.verified_probability >= 0.01
        assert answer.answer and not answer.withdrawn


def test_endpoint_down_is_one_line(tmp_path: Path, docs: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tmp_path / "h"
    assert rag(home, "ingest", str(docs)).returncode == 0
    proc = rag(home, "ask", "How often to water?", env={"RAG_LLM_BASE_URL": f"http://127.0.0.1:{port}/v1",
                                                         "RAG_LLM_MODEL": "x", "RAG_RERANK_ENABLED": "false"})
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert f"127.0.0.1:{port}" in line and "RAG_LLM_BASE_URL" in line


def test_empty_collection_says_ingest_first(settings: Settings, rag_home: Path) -> None:
    with pytest.raises(RagError, match="run `rag ingest"):
        Answerer(settings, rag_home, collection="nothing-here", llm=object())


def test_chat_session_commands(tmp_path: Path, docs: Path) -> None:
    home = tmp_path / "h"
    assert rag(home, "ingest", str(docs)).returncode == 0
    script = "/help\nHow often should succulents be watered?\nand in winter?\n/sources\n/collections\n/bogus\n/reset\n/quit\n"
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    proc = subprocess.run(
        [sys.executable, "-m", "rag.cli", "--home", str(home), "chat"], input=script, capture_output=True, text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "RAG_LLM_LOCAL_MODEL": "smollm2-135m-instruct",
             "RAG_LLM_THREADS": "1", "RAG_LLM_MAX_TOKENS": "64", "RAG_RERANK_ENABLED": "false",
             "RAG_ANSWER_CHECK_SUPPORT": "false"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "/sources      the passages behind the last answer" in proc.stdout
    screen = proc.stdout.replace("> ", "\n")  # the prompt shares a line with the next output
    assert "\n[1] " + str(docs) in screen  # /sources lists passages with their paths
    assert "\ndefault\n" in screen  # /collections
    assert "unknown command /bogus" in proc.stderr
    assert "(conversation cleared)" in proc.stdout
