"""Multi-hop retrieval: names followed to linked passages (no LLM), LLM-written hops with the tiny model, the bound."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from rag.query.answer import Answerer, explain_lines
from rag.core.config import Settings
from rag.query.multihop import chunk_titles, mentions, names_match, parse_next_query
from rag.core.records import ScoredChunk
from tests.conftest import write
from tests.test_cli import one_line_error, rag

QUESTION = "What government position was held by the woman who portrayed Corliss Archer in the film Kiss and Tell?"

# A bridge question: the film's passage names the actress; only her passage holds the answer,
# and it shares almost no words with the question, while distractors share many.
LINKED_DOCS = {
    "Kiss_and_Tell_(1945_film).txt": "Kiss and Tell (1945 film)\n\nKiss and Tell is a 1945 American comedy film in which "
    "the young Shirley Temple portrayed Corliss Archer. In the film, two teenage girls cause their parents much "
    "concern when they start to become interested in boys.",
    "Shirley_Temple.txt": "Shirley Temple\n\nShirley Temple Black (1928 - 2014) was an American actress, singer and dancer "
    "who was Hollywood's number one box-office draw as a child actress. As an adult, she was named United States "
    "ambassador to Ghana and to Czechoslovakia and also served as Chief of Protocol of the United States.",
    "Corliss_Archer_(radio).txt": "Corliss Archer (radio)\n\nMeet Corliss Archer is an American radio sitcom about a "
    "teenage girl, broadcast from 1943 to 1956. The woman who created the character wrote the stories of Corliss "
    "Archer for magazines before the film and the series.",
    "A_Kiss_for_Corliss.txt": "A Kiss for Corliss\n\nA Kiss for Corliss is a 1949 American comedy film, the sequel to "
    "the 1945 film Kiss and Tell. It features David Niven as a playboy.",
    "Kiss_and_Tell_(play).txt": "Kiss and Tell (play)\n\nKiss and Tell is a 1943 Broadway play by F. Hugh Herbert in "
    "which a teenage girl pretends to be pregnant. The play was adapted into the film Kiss and Tell, and the "
    "character of Corliss Archer held the stage for two years.",
    "Government_of_Ghana.txt": "Government of Ghana\n\nThe government of Ghana is a presidential republic. Each "
    "government position in the cabinet is held by a minister appointed by the president.",
    "Meet_Corliss_Archer_(TV_series).txt": "Meet Corliss Archer (TV series)\n\nMeet Corliss Archer is an American "
    "television sitcom of 1954 in which the woman who portrayed Corliss Archer was Ann Baker. The series followed "
    "the radio program.",
}


@pytest.fixture(scope="module")
def linked_home(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:  # type: ignore[no-untyped-def]
    """A collection of one-paragraph documents that mention each other by title."""
    root = tmp_path_factory.mktemp("linked")
    for name, text in LINKED_DOCS.items():
        write(root / "docs" / name, text)
    Ingestor(Settings(), root / "home", embedder=embedder).run([root / "docs"])
    return root / "home"


def hop_settings(mode: str, **multihop: object) -> Settings:
    return Settings.model_validate({"multihop": {"mode": mode, **multihop}, "answer": {"check_support": False}})


def names(chunks: tuple[ScoredChunk, ...]) -> list[str]:
    return [Path(c.source).name for c in chunks]


def test_mentions_are_capitalised_runs() -> None:
    text = ("Kiss and Tell is a 1945 American comedy film in which Shirley Temple portrayed Corliss Archer. "
            "The Duke of Wellington met him, and Apollo 11 flew.\nIn 1969 he left.")
    assert mentions(text) == ["Kiss and Tell", "American", "Shirley Temple", "Corliss Archer", "Duke of Wellington",
                              "Apollo 11"]
    assert mentions("the, and, of.") == []


def test_names_match_titles() -> None:
    chunk = ScoredChunk(chunk_id="c1", text="Kiss and Tell (1945 film)\n\nKiss and Tell is a film.",
                        source="/d/Kiss_and_Tell_(1945_film).txt", score=1.0, chunk_index=0, headings=())
    assert chunk_titles(chunk) == {"kiss and tell"}
    assert names_match("Kiss and Tell", chunk_titles(chunk))
    assert names_match("the Kiss and Tell", chunk_titles(chunk))
    assert not names_match("Tell", chunk_titles(chunk))  # a short fragment is no link
    assert not names_match("Shirley Temple", chunk_titles(chunk))
    later = ScoredChunk(chunk_id="c2", text="she later retired", source="/d/Shirley_Temple.txt", score=1.0,
                        chunk_index=1)
    assert chunk_titles(later) == {"shirley temple"}  # only the file name: the text's first line is no title


def test_parse_next_query() -> None:
    assert parse_next_query("DONE") == ""
    assert parse_next_query("Done.") == ""
    assert parse_next_query('Query: "Shirley Temple government position"\nbecause...') == (
        "Shirley Temple government position")
    assert parse_next_query("\n  Next search query: Ann Baker  \n") == "Ann Baker"
    assert parse_next_query("") == ""


def test_links_find_the_bridge_passage_single_step_misses(linked_home: Path) -> None:
    single = Answerer(hop_settings("off"), linked_home, llm=object(), rerank=False)
    try:
        one = single.gather(QUESTION, 3)
    finally:
        single.searcher.close()
    assert names(one.chunks)[0] == "Kiss_and_Tell_(1945_film).txt"
    assert "Shirley_Temple.txt" not in names(one.chunks)
    assert one.hops == () and one.llm_calls == 0

    hopping = Answerer(hop_settings("links", link_bonus=1.0), linked_home, llm=object(), rerank=False)
    try:
        two = hopping.gather(QUESTION, 3)
    finally:
        hopping.searcher.close()
    found = names(two.chunks)
    assert found[0] == "Kiss_and_Tell_(1945_film).txt"  # the first hop's best passage stays on top
    assert "Shirley_Temple.txt" in found[:2]
    assert len(two.hops) == 1 and two.hops[0].n == 2 and two.hops[0].strategy == "links"
    assert "Shirley Temple" in two.hops[0].queries
    assert "Corliss Archer" not in two.hops[0].queries  # names the question already holds are not followed
    shirley = next(c for c in two.chunks if c.source.endswith("Shirley_Temple.txt"))
    assert 2 in two.hops_of[shirley.chunk_id] and two.llm_calls == 0  # hop 2 linked it
    trace = two.as_dict()
    assert trace["source_hops"][found.index("Shirley_Temple.txt")] in ([1, 2], [2])
    json.dumps(trace)


def test_max_hops_bounds_the_rounds(linked_home: Path) -> None:
    answerer = Answerer(hop_settings("links", max_hops=3, link_bonus=1.0), linked_home, llm=object(), rerank=False)
    try:
        three = answerer.gather(QUESTION, 5)
        answerer.settings = hop_settings("links", max_hops=1)
        one = answerer.gather(QUESTION, 5)
    finally:
        answerer.searcher.close()
    assert 1 <= len(three.hops) <= 2 and [h.n for h in three.hops] == list(range(2, 2 + len(three.hops)))
    assert one.hops == ()



@pytest.mark.slow
def test_llm_hops_are_bounded_and_merged(linked_home: Path, tiny_llm) -> None:  # type: ignore[no-untyped-def]
    answerer = Answerer(hop_settings("llm", max_hops=3), linked_home, llm=tiny_llm, rerank=False)
    try:
        evidence = answerer.gather(QUESTION, 4)
        answer = answerer.ask(QUESTION, evidence=evidence)
    finally:
        answerer.searcher.close()
    assert 1 <= evidence.llm_calls <= 2  # one call per hop after the first, at most max_hops - 1
    assert len(evidence.hops) <= 2 and all(h.strategy == "llm" and len(h.queries) == 1 for h in evidence.hops)
    assert evidence.queries == (QUESTION, *(h.queries[0] for h in evidence.hops))
    assert names(evidence.chunks)[0] == "Kiss_and_Tell_(1945_film).txt"
    assert len(evidence.chunks) == 4 and len({c.chunk_id for c in evidence.chunks}) == 4
    if len(evidence.hops) < 2:
        assert evidence.stopped  # it stopped early only with a reason
    data = answer.as_dict()
    assert data["queries"] == list(evidence.queries) and data["retrieval"]["llm_calls"] == evidence.llm_calls
    shown = "\n".join(explain_lines(answer))
    if len(evidence.queries) > 1:
        assert f"queries searched: {' | '.join(evidence.queries)}" in shown
    assert f"LLM calls for retrieval: {evidence.llm_calls}" in shown and "route detail: default" in shown
    for hop in evidence.hops:
        assert f"hop {hop.n} (llm): {hop.queries[0]}" in shown


@pytest.mark.slow
def test_cli_ask_multihop_json(tmp_path: Path, linked_home: Path) -> None:
    env = {"RAG_LLM_LOCAL_MODEL": "smollm2-135m-instruct", "RAG_LLM_THREADS": "1", "RAG_LLM_MAX_TOKENS": "16",
           "RAG_RERANK_ENABLED": "false", "RAG_ANSWER_CHECK_SUPPORT": "false", "RAG_MULTIHOP_LINK_BONUS": "1.0"}
    proc = rag(linked_home, "ask", QUESTION, "--multihop", "links", "--json", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert data["queries"] == [QUESTION] and data["route"] == ["default"]
    assert data["retrieval"]["hops"][0]["strategy"] == "links" and data["retrieval"]["llm_calls"] == 0
    assert any(s["source"].endswith("Shirley_Temple.txt") for s in data["sources"])
    bad = rag(linked_home, "ask", QUESTION, "--max-hops", "9", env=env)
    assert bad.returncode == 2 and "--max-hops must be between 1 and 5" in one_line_error(bad)


def test_a_reranked_first_hop_matches_the_question_on_the_retrieval_scale() -> None:
    # how well a passage matches the question (the graph hop's lift of a passage about a name the best
    # passage uses) must not be 0 for every passage beyond the reranked head
    from rag.query.multihop import _match, _scaled

    def chunk(i: int, score: float, **scores: float) -> ScoredChunk:
        return ScoredChunk(chunk_id=f"c{i}", text="t", source="s", score=score, scores=scores)

    reranked = [chunk(0, 1.9, hybrid=0.9, rerank=3.0), chunk(1, -0.5, hybrid=0.7, rerank=1.0),
                chunk(2, 0.5, hybrid=0.5), chunk(3, 0.2, hybrid=0.2)]
    assert _scaled(reranked)["c2"] == _scaled(reranked)["c3"] == 0.0
    match = _match(reranked)
    assert match == pytest.approx({"c0": 1.0, "c1": 5 / 7, "c2": 3 / 7, "c3": 0.0})
    fused = [chunk(0, 0.9, hybrid=0.9), chunk(1, 0.7, hybrid=0.7), chunk(2, 0.5, hybrid=0.5)]
    assert _match(fused) == _scaled(fused)  # not reranked: the ranking's own scores
    everything = [chunk(0, 1.0, hybrid=0.2, rerank=2.0), chunk(1, -1.0, hybrid=0.9, rerank=0.0)]
    assert _match(everything) == _scaled(everything)  # all reranked: one scale already


def test_a_reranked_first_hop_keeps_its_order_in_the_pool() -> None:
    # the reranked head's blended z-scores run negative; the unreranked tail keeps fused scores
    # (~0.02): the pool must not rank the tail above the head's lower half
    from rag.query.multihop import _scaled

    scores = [1.9, 0.6, -0.4, -1.5, 0.021, 0.018]
    chunks = [ScoredChunk(chunk_id=f"c{i}", text="t", source="s", score=s) for i, s in enumerate(scores)]
    scaled = _scaled(chunks)
    values = [scaled[c.chunk_id] for c in chunks]
    assert values == sorted(values, reverse=True)
    assert values[0] == 1.0 and values[-1] == 0.0
    plain = _scaled([ScoredChunk(chunk_id=f"p{i}", text="t", source="s", score=s) for i, s in enumerate([3.0, 2.0, 1.0])])
    assert plain == {"p0": 1.0, "p1": 0.5, "p2": 0.0}
