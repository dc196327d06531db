"""The answer decision, branch by branch, without a model: gate, join, verify, withdrawal and notes."""

from __future__ import annotations

from typing import Any

import pytest

from rag.query.cite import CheckedSentence
from rag.query.decide import (Decision, after_draft, after_gate, after_verify, asks_direct, asks_gate, asks_verify,
                              final)

DRAFT = "Water weekly [1]."
GATE_NOTE = ("not answered: the LLM judged that the sources do not contain the answer "
             "(P(yes) 0.20 < [answer] gate 0.5)")
JOIN_NOTE = ("the draft said the documents do not say, though a later hop added sources; asked again "
             "to join facts across them ([multihop] join)")
VERIFY_NOTE = ("the draft answer was withdrawn: the LLM judged that the sources do not state it "
               "(P(yes) 0.30 < [answer] verify 0.5; draft: 'Water weekly [1].')")
UNSUPPORTED_WITHDRAWN = ("the draft answer was withdrawn: none of its 2 cited sentence(s) is supported by the "
                         "sources it cites (draft: 'Water weekly [1].')")


def _sentence(sources: tuple[int, ...], supported: bool | None) -> CheckedSentence:
    return CheckedSentence(text="A claim.", sources=sources, supported=supported,
                           support_probability=None if supported is None else (0.9 if supported else 0.1))


BAD, GOOD, UNCHECKED, UNCITED = _sentence((1,), False), _sentence((2,), True), _sentence((1,), None), _sentence((), None)


@pytest.mark.parametrize("gate, n_sources, p, asked, gated", [
    (0.0, 3, None, False, False),  # gate off
    (0.5, 0, None, False, False),  # nothing to judge
    (0.5, 3, 0.2, True, True),  # below the threshold: refused before drafting
    (0.5, 3, 0.5, True, False),  # at the threshold: drafted
    (0.5, 3, 0.9, True, False),
])
def test_gate(gate: float, n_sources: int, p: float | None, asked: bool, gated: bool) -> None:
    assert asks_gate(gate, n_sources) is asked
    assert after_gate(p, gate) is gated


@pytest.mark.parametrize("gate, direct, n_sources, asked", [
    (0.0, 0.8, 3, True),  # direct alone asks the gate's question
    (0.0, 0.8, 0, False),
    (0.5, 0.0, 3, True),
    (0.0, 0.0, 3, False),
])
def test_gate_asked_for_direct(gate: float, direct: float, n_sources: int, asked: bool) -> None:
    assert asks_gate(gate, n_sources, direct) is asked


@pytest.mark.parametrize("p, direct, verify, directed", [
    (0.9, 0.8, 0.5, True),
    (0.8, 0.8, 0.5, True),  # at the threshold
    (0.7, 0.8, 0.5, False),  # below: the usual prompt, with its refusal
    (None, 0.8, 0.5, False),  # not asked
    (0.9, 0.0, 0.5, False),  # direct off
    (0.9, 0.8, 0.0, False),  # verify off: a draft without a refusal option would go unchecked
])
def test_direct(p: float | None, direct: float, verify: float, directed: bool) -> None:
    assert asks_direct(p, direct, verify) is directed


def test_no_join_after_a_direct_draft() -> None:
    assert after_draft(gated=False, draft_refused=True, verify=0.5, joinable=True, direct=True) is False


def test_direct_note_comes_first() -> None:
    d = final(draft=DRAFT, refused=False, sentences=[GOOD], invalid=[], gate=0.0, p_answerable=0.91, joined=False,
              verify=0.5, p_stated=0.3, refuse_unsupported=True, checker="verifier", direct=0.8, directed=True)
    assert d.withdrawn and d.notes[0] == ("asked for the answer without offering a refusal: the verifier judged "
                                          "that the sources contain it (P(yes) 0.91 >= [answer] direct 0.8)")
    assert d.notes[1].startswith("the draft answer was withdrawn: the verifier judged")
    plain = final(draft=DRAFT, refused=False, sentences=[GOOD], invalid=[], gate=0.0, p_answerable=0.91,
                  joined=False, verify=0.5, p_stated=0.9, refuse_unsupported=True, direct=0.8)
    assert not plain.withdrawn and not any("without offering" for n in plain.notes)


@pytest.mark.parametrize("gated, draft_refused, verify, joinable, joined", [
    (False, True, 0.5, True, True),  # a refused draft, a later hop's sources, verify on: ask again
    (True, True, 0.5, True, False),  # the gate refused: nothing was drafted
    (False, False, 0.5, True, False),  # the draft answers
    (False, True, 0.0, True, False),  # verify off: a retry would go unchecked
    (False, True, 0.5, False, False),  # join off, or every source from the first hop
])
def test_join(gated: bool, draft_refused: bool, verify: float, joinable: bool, joined: bool) -> None:
    assert after_draft(gated=gated, draft_refused=draft_refused, verify=verify, joinable=joinable) is joined


@pytest.mark.parametrize("verify, refused, p, asked, checking", [
    (0.0, False, None, False, True),  # verify off: the sentences are checked
    (0.5, True, None, False, False),  # a refusal: nothing to verify or check
    (0.5, False, 0.3, True, False),  # below: withdrawn, the sentences go unchecked
    (0.5, False, 0.5, True, True),  # at the threshold: stands
    (0.5, False, 0.8, True, True),
])
def test_verify(verify: float, refused: bool, p: float | None, asked: bool, checking: bool) -> None:
    assert asks_verify(verify, refused) is asked
    assert after_verify(refused=refused, p_stated=p, verify=verify) is checking


BASE: dict[str, Any] = dict(draft=DRAFT, refused=False, sentences=(GOOD,), invalid=(), gate=0.0, p_answerable=None,
                            joined=False, verify=0.0, p_stated=None, refuse_unsupported=True)


@pytest.mark.parametrize("changes, refused, withdrawn, notes", [
    pytest.param({}, False, False, (), id="supported"),
    pytest.param({"refused": True, "sentences": (UNCHECKED,), "draft": "The documents do not say.", "gate": 0.5,
                  "p_answerable": 0.2}, True, False, (GATE_NOTE,), id="gated"),
    pytest.param({"gate": 0.5, "p_answerable": 0.7}, False, False, (), id="gate-passed"),
    pytest.param({"refused": True, "sentences": (UNCITED,), "draft": "The documents do not say."}, True, False, (),
                 id="refused-draft"),
    pytest.param({"joined": True, "verify": 0.5, "p_stated": 0.8}, False, False, (JOIN_NOTE,), id="joined"),
    pytest.param({"joined": True, "refused": True, "sentences": (UNCITED,), "verify": 0.5}, True, False,
                 (JOIN_NOTE,), id="joined-still-refused"),
    pytest.param({"verify": 0.5, "p_stated": 0.3, "sentences": (UNCHECKED,)}, True, True, (VERIFY_NOTE,),
                 id="verified-below"),
    pytest.param({"verify": 0.5, "p_stated": 0.5}, False, False, (), id="verified-at-threshold"),
    pytest.param({"verify": 0.5, "p_stated": 0.9}, False, False, (), id="verified-above"),
    pytest.param({"sentences": (BAD, BAD)}, True, True,
                 (UNSUPPORTED_WITHDRAWN, "2 sentence(s) not supported by the sources they cite"),
                 id="all-unsupported-withdrawn"),
    pytest.param({"sentences": (BAD, BAD), "refuse_unsupported": False}, False, False,
                 ("2 sentence(s) not supported by the sources they cite",), id="all-unsupported-kept"),
    pytest.param({"sentences": (BAD, GOOD)}, False, False,
                 ("1 sentence(s) not supported by the sources they cite",), id="some-supported"),
    pytest.param({"sentences": (BAD, UNCITED, BAD)}, True, True,
                 (UNSUPPORTED_WITHDRAWN, "2 sentence(s) not supported by the sources they cite"),
                 id="unsupported-and-uncited-withdrawn"),
    pytest.param({"sentences": (GOOD, UNCITED, UNCITED)}, False, False, ("2 sentence(s) cite no source",),
                 id="uncited"),
    pytest.param({"sentences": (UNCITED,)}, False, False, ("1 sentence(s) cite no source",), id="only-uncited"),
    pytest.param({"invalid": (4, 7)}, False, False, ("removed citations of sources that do not exist: [4], [7]",),
                 id="invalid-citations"),
    pytest.param({"joined": True, "verify": 0.5, "p_stated": 0.3, "invalid": (9,), "sentences": (UNCHECKED, UNCITED)},
                 True, True, (JOIN_NOTE, VERIFY_NOTE, "removed citations of sources that do not exist: [9]"),
                 id="notes-in-order"),
])
def test_final(changes: dict[str, Any], refused: bool, withdrawn: bool, notes: tuple[str, ...]) -> None:
    assert final(**{**BASE, **changes}) == Decision(refused=refused, withdrawn=withdrawn, notes=notes)


def test_decisions_are_built_with_keywords() -> None:
    with pytest.raises(TypeError):
        Decision(True, False, ())  # type: ignore[misc]
    with pytest.raises(TypeError):
        CheckedSentence("A claim.", (1,), True)  # type: ignore[misc]
