"""Query expansion: multi-query and HyDE fused with the query's own ranking (real store, MiniLM, tiny LLM)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from rag.query.answer import Answerer
from rag.core.config import QueryConfig, Settings
from rag.query.expand import Expansion, expand_query, parse_queries, search_expanded
from rag.query.route import CollectionSearch


def test_parse_queries_strips_numbering_and_repeats() -> None:
    reply = "Here are queries:\n1. succulent watering schedule\n2) How often to water succulents?\n- cactus irrigation\n" \
            "* succulent watering schedule\nq4: overwatering roots"
    assert parse_queries(reply, "How often to water succulents?", 3) == (
        "succulent watering schedule", "cactus irrigation", "overwatering roots")
    assert parse_queries("", "q", 3) == ()
    assert parse_queries("a b\nc d\ne f", "q", 2) == ("a b", "c d")


@pytest.fixture()
def searcher(settings: Settings, rag_home: Path, embedder, docs: Path):  # type: ignore[no-untyped-def]
    Ingestor(settings, rag_home, embedder=embedder).run([docs])
    answerer = Answerer(settings, rag_home, llm=object(), rerank=False)
    yield answerer
    answerer.close_searchers()


def test_expansions_bring_in_what_the_query_alone_misses(searcher: Answerer) -> None:
    search = CollectionSearch(searcher.searchers)
    query = "zebra quokka"  # matches no word of the documents
    own = search_expanded(query, Expansion("none"), 3, search.search, search.retrieve)
    assert own == search.search(query, 3)  # no expansion: the query's own ranking, unchanged
    multi = search_expanded(query, Expansion("multi", queries=("spider mites webbing",)), 3, search.search,
                            search.retrieve)
    mites = [c for c in multi if "Spider mites" in c.text]
    assert mites and mites[0].ranks["q1"] == 1  # the alternative query's best result is in the evidence
    for c in multi:  # reciprocal rank fusion of the two rankings
        assert c.score == pytest.approx(sum(1 / (60 + c.ranks[n]) for n in ("query", "q1") if n in c.ranks))
    assert [c.score for c in multi] == sorted((c.score for c in multi), reverse=True)
    assert len(multi) == 3 and len({c.chunk_id for c in multi}) == 3
    hyde = search_expanded(query, Expansion("hyde", passage="Repot the fiddle-leaf fig every two years in spring."), 3,
                           search.search, search.retrieve)
    repot = [c for c in hyde if "Repot" in c.text]
    assert repot and repot[0].ranks["hyde"] == 1 and "dense" in repot[0].scores  # searched by meaning



@pytest.mark.slow
def test_multi_and_hyde_with_a_real_llm(settings: Settings, rag_home: Path, embedder, docs: Path,  # type: ignore[no-untyped-def]
                                        tiny_llm) -> None:
    question = "How often should succulents be watered?"
    multi = expand_query(question, QueryConfig(expand="multi", n=2), tiny_llm)
    assert multi.mode == "multi" and multi.llm_calls == 1 and len(multi.queries) <= 2
    assert all(q.strip() and q.lower() != question.lower() for q in multi.queries)
    hyde = expand_query(question, QueryConfig(expand="hyde"), tiny_llm)
    assert hyde.mode == "hyde" and hyde.llm_calls == 1 and hyde.passage and hyde.queries == ()
    assert expand_query(question, QueryConfig(), tiny_llm) == Expansion("none")

    Ingestor(settings, rag_home, embedder=embedder).run([docs])
    expanded = settings.model_copy(update={"query": QueryConfig(expand="multi", n=2),
                                           "answer": settings.answer.model_copy(update={"check_support": False})})
    answerer = Answerer(expanded, rag_home, llm=tiny_llm, rerank=False)
    try:
        evidence = answerer.gather(question, 3)
    finally:
        answerer.close_searchers()
    assert evidence.queries[0] == question and evidence.queries[1:] == evidence.expansion.queries
    assert evidence.llm_calls == 1 and "expand_s" in evidence.timings
    assert 1 <= len(evidence.chunks) <= 3
    trace = evidence.as_dict()
    assert trace["expansion"]["mode"] == "multi" and json.dumps(trace)
