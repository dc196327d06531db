"""Answer metrics: hand-computed values for the definitions (SQuAD EM/F1, ALCE citations, faithfulness)."""

from __future__ import annotations

from typing import Sequence

import pytest

from evals.answer_metrics import (
    Statement, citation_scores, contains_answer, exact_match, faithfulness, is_short_reference, normalize_answer,
    refusal_values, statements, token_f1,
)

# A deterministic entailment rule for checking the ALCE bookkeeping by hand: contexts hold
# "facts" (words); a claim is entailed iff every one of its words is in the cited contexts.
FACTS = {1: {"a", "b"}, 2: {"c"}, 3: {"a"}}
CALLS: list[tuple[tuple[int, ...], str]] = []


def entails(numbers: Sequence[int], claim: str) -> bool:
    CALLS.append((tuple(numbers), claim))
    known = set().union(*(FACTS[n] for n in numbers)) if numbers else set()
    return set(claim.split()) <= known


def test_squad_normalisation_em_f1() -> None:
    assert normalize_answer("The  Cat, sat!") == "cat sat"
    assert normalize_answer("An apple a day") == "apple day"
    assert exact_match("the Eiffel Tower.", ["Eiffel tower"]) == 1.0
    assert exact_match("Eiffel", ["Eiffel tower", "tour Eiffel"]) == 0.0
    assert exact_match("The Eiffel Tower [1].", ["Eiffel tower"]) == 1.0  # citation markers are not answer text
    assert token_f1("Gustave Eiffel [1, 2] built it [3].", ["Gustave Eiffel"]) == token_f1("Gustave Eiffel built it.", ["Gustave Eiffel"])
    # pred {big, red, dog} vs ref {red, dog, runs}: 2 common -> P = R = 2/3 -> F1 = 2/3
    assert token_f1("the big red dog", ["red dog runs"]) == pytest.approx(2 / 3)
    assert token_f1("the big red dog", ["cat", "big red dog"]) == pytest.approx(2 * 1 * 1 / 2)  # best reference wins
    assert token_f1("", ["x"]) == 0.0 and token_f1("the", ["a"]) == 1.0  # both empty after normalisation
    assert token_f1("anything", []) == 0.0


def test_contains_is_whole_words() -> None:
    assert contains_answer("It was built in 1889 [1].", ["1889"]) == 1.0
    assert contains_answer("It was built in 18890.", ["1889"]) == 0.0
    assert contains_answer("Yes, it is.", ["no", "yes"]) == 1.0
    assert contains_answer("whatever", ["the"]) == 0.0  # a reference that normalises to nothing never matches


def test_short_reference_and_refusals() -> None:
    assert is_short_reference(["Paris"]) and is_short_reference(["Chief of Protocol of the United States"])
    assert not is_short_reference(["Seasonality, in which data experiences regular and predictable changes "
                                   "which recur every calendar year, is the method"])
    assert not is_short_reference([])
    assert refusal_values("The documents do not say.", False) == {
        "refusal_accuracy": 1.0, "refused_unanswerable": 1.0, "refused_answerable": None}
    assert refusal_values("Paris [1].", False)["refusal_accuracy"] == 0.0
    assert refusal_values("I don't know.", True) == {
        "refusal_accuracy": 0.0, "refused_unanswerable": None, "refused_answerable": 1.0}
    assert refusal_values("Paris.", None)["refusal_accuracy"] is None


def test_statements_keep_their_valid_citations() -> None:
    got = statements("Paris is big [1]. It has a tower [2][3]. Bye [7].", 3)
    assert got == [Statement("Paris is big.", (1,)), Statement("It has a tower.", (2, 3)), Statement("Bye.", ())]
    assert statements("", 3) == []
    # a line's answer-level citations apply to every statement when the answer has no markers
    assert statements("One. Two.", 3, ["2", "9", "x"]) == [Statement("One.", (2,)), Statement("Two.", (2,))]
    assert statements("One [1]. Two.", 3, ["2"]) == [Statement("One.", (1,)), Statement("Two.", ())]


def test_alce_citation_recall_and_precision_by_hand() -> None:
    claims = [
        Statement("a b", (1,)),     # recalled; its one citation precise
        Statement("a c", (1, 2)),   # recalled; neither alone entails, neither is removable -> both precise
        Statement("a", (1, 3)),     # recalled; each alone entails -> both precise
        Statement("c", (1, 2)),     # recalled; [1] alone fails while [2] still entails -> [1] imprecise
        Statement("b", (2,)),       # not recalled -> its citation imprecise
        Statement("a", ()),         # no citation -> not recalled, no citation counted
        Statement("d", (1, 2)),     # joint fails -> not recalled, both citations imprecise
    ]
    scores = citation_scores(claims, entails)
    assert scores is not None
    assert scores.recalled == (True, True, True, True, False, False, False)
    assert scores.precise == ((True,), (True, True), (True, True), (False, True), (False,), (), (False, False))
    assert scores.recall == pytest.approx(4 / 7)
    assert scores.citations == 10 and scores.precision == pytest.approx(6 / 10)
    assert citation_scores([], entails) is None
    uncited = citation_scores([Statement("a", ())], entails)
    assert uncited is not None and (uncited.recall, uncited.precision) == (0.0, 0.0)


def test_alce_precision_skips_checks_for_unrecalled_statements() -> None:
    CALLS.clear()
    citation_scores([Statement("d", (1, 2))], entails)
    assert CALLS == [((1, 2), "d")]  # the joint check fails: no per-citation checks follow


def test_faithfulness_uses_all_contexts_together() -> None:
    claims = [Statement("a b", ()), Statement("a c", (1,)), Statement("d", (2,))]
    CALLS.clear()
    assert faithfulness(claims, 3, entails) == pytest.approx(2 / 3)
    assert {numbers for numbers, _ in CALLS} == {(1, 2, 3)}
    assert faithfulness([], 3, entails) is None
    assert faithfulness(claims, 0, entails) == 0.0  # claims with nothing retrieved are unsupported
