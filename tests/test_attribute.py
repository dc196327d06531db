"""Uncited answer sentences cite the source that states them; every cited sentence gets an exact quote."""

from __future__ import annotations

from rag.query.attribute import attribute, source_sentences
from rag.query.cite import CitedSentence, add_markers, parse_answer

SOURCES = [
    "Watering. Succulents need water every two weeks in summer. In winter, once a month is enough.",
    "Ferns like a humid room.\nMist them daily or stand the pot on wet pebbles.",
]


def test_markers_are_written_after_the_right_sentences() -> None:
    text = "Water every two weeks [1]. Mist ferns daily. Nothing else matters."
    parsed = parse_answer(text, 2)
    marked = add_markers(parsed.text, [(), (2,), ()])
    assert marked == "Water every two weeks [1]. Mist ferns daily. [2] Nothing else matters."
    assert [s.sources for s in parse_answer(marked, 2).sentences] == [(1,), (2,), ()]


def test_source_sentences_are_exact_spans() -> None:
    spans = source_sentences(SOURCES[1])
    assert [SOURCES[1][a:b] for a, b in spans] == ["Ferns like a humid room.",
                                                     "Mist them daily or stand the pot on wet pebbles."]


def test_uncited_sentences_cite_the_source_that_states_them(embedder) -> None:  # type: ignore[no-untyped-def]
    sentences = [
        CitedSentence("Succulents should be watered every two weeks in summer.", ()),
        CitedSentence("Ferns want humid air.", (2,)),
        CitedSentence("The stock market closed higher on Tuesday.", ()),
    ]
    out = attribute(sentences, SOURCES, embedder.embed, 0.5)
    assert [s.sources for s in out.sentences] == [(1,), (2,), ()]
    assert out.added == (True, False, False)
    first, second, third = out.quotes
    assert first is not None and SOURCES[0][first.start:first.end] == "Succulents need water every two weeks in summer."
    assert second is not None and second.source == 2 and SOURCES[1][second.start:second.end] == "Ferns like a humid room."
    assert third is None  # nothing states it: left uncited, no quote
    off = attribute(sentences, SOURCES, embedder.embed, 0.0)
    assert [s.sources for s in off.sentences] == [(), (2,), ()] and not any(off.added)


def test_titles_and_underlines_are_not_quoted() -> None:
    text = "Sourdough starter notes\n=======================\nFeed it once a day at room temperature."
    assert [text[a:b] for a, b in source_sentences(text)] == ["Feed it once a day at room temperature."]


def test_hard_wrapped_sentences_are_quoted_whole() -> None:
    text = "Keep the starter in the fridge and feed it once\na week, the day before baking.\nNext line here starts."
    assert [text[a:b] for a, b in source_sentences(text)] == [
        "Keep the starter in the fridge and feed it once\na week, the day before baking.", "Next line here starts."]


def test_a_sentence_citing_an_unquotable_source_keeps_its_citation_and_no_quote(embedder) -> None:  # type: ignore[no-untyped-def]
    out = attribute([CitedSentence("Succulents need water.", (2,))], [SOURCES[0], "Ferns"], embedder.embed, 0.5)
    assert out.sentences[0].sources == (2,) and out.quotes == (None,) and out.added == (False,)
