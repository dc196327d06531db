"""The answer decision: given what each answering stage found, answer, refuse, ask again or withdraw.

Answering runs in steps that call the LLM (gate, draft, join, verify, support checks); each
step's outcome decides whether the next runs. The decisions live here as pure functions so
that every branch is table-tested without a model (``tests/test_decide.py``), and
``Answerer.ask`` only runs the stages and applies what these functions say:

1. ``asks_gate`` / ``after_gate`` / ``asks_direct``: ask the gate's question first? Did it refuse
   before any draft? Is the draft asked for without a refusal option (``[answer] direct``)?
2. ``after_draft``: the draft refused though a later hop added sources: ask again to join them?
3. ``asks_verify`` / ``after_verify``: ask ``[answer] verify``? Are the draft's sentences then
   attributed and checked, or is the draft already withdrawn?
4. ``final``: is the answer refused, is a draft withdrawn, and what the notes say.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rag.query.cite import CheckedSentence


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What becomes of a draft: ``refused`` (the answer is the refusal), ``withdrawn`` (a draft was
    written, then replaced by the refusal, and cites nothing), and the notes that say why."""

    refused: bool
    withdrawn: bool
    notes: tuple[str, ...]


def _below(p: float | None, threshold: float) -> bool:
    """A yes/no check was asked and its P(yes) fell short of its threshold."""
    return p is not None and p < threshold


def asks_gate(gate: float, n_sources: int, direct: float = 0.0) -> bool:
    """Whether to ask the gate's question before drafting: ``[answer] gate`` or ``[answer] direct`` is on
    and there are sources to judge."""
    return (gate > 0 or direct > 0) and n_sources > 0


def after_gate(p_answerable: float | None, gate: float) -> bool:
    """Whether the gate refuses without a draft: asked, it judged the sources short of the answer."""
    return _below(p_answerable, gate)


def asks_direct(p_answerable: float | None, direct: float, verify: float) -> bool:
    """Whether the draft is asked for with the prompt that offers no refusal (``[answer] direct``).

    Only when the gate's question was asked and judged the sources to hold the answer with P(yes)
    at or above ``direct``, and ``[answer] verify`` is on to check the draft.
    """
    return direct > 0 and verify > 0 and p_answerable is not None and p_answerable >= direct


def after_draft(*, gated: bool, draft_refused: bool, verify: float, joinable: bool, direct: bool = False) -> bool:
    """Whether to ask again, to join facts across hops (``[multihop] join``).

    Only a draft that was written (not gated) and refused, when ``joinable`` (join is on and a
    later hop found one of the sources) and ``[answer] verify`` is on to check the retry. A draft
    asked for without a refusal option (``direct``) that still refused is not asked again.
    """
    return not gated and not direct and verify > 0 and draft_refused and joinable


def asks_verify(verify: float, refused: bool) -> bool:
    """Whether to ask the ``[answer] verify`` check: it is on and the draft answers."""
    return verify > 0 and not refused


def after_verify(*, refused: bool, p_stated: float | None, verify: float) -> bool:
    """Whether the draft's sentences get attributed and checked: it answers and verify did not reject it."""
    return not (refused or _below(p_stated, verify))


def should_withdraw(sentences: Sequence[CheckedSentence], refused: bool) -> bool:
    """True when some sentences were checked and every one failed against its own sources.

    Such an answer is a guess dressed in citations; ``[answer] refuse_unsupported`` replaces it
    with a refusal. Uncited sentences are not checked, so they neither trigger nor prevent this.
    """
    checked = [s for s in sentences if s.supported is not None]
    return not refused and bool(checked) and not any(s.supported for s in checked)


def final(*, draft: str, refused: bool, sentences: Sequence[CheckedSentence], invalid: Sequence[int],
          gate: float, p_answerable: float | None, joined: bool, verify: float, p_stated: float | None,
          refuse_unsupported: bool, checker: str = "llm", direct: float = 0.0,
          directed: bool = False) -> Decision:
    """The outcome of a draft (``draft``: its text after citation checks; ``refused``: it is a refusal).

    A draft the verify check rejected, or (with ``refuse_unsupported``) whose every checked
    sentence failed, is withdrawn: the answer becomes the refusal. The notes say, in order:
    the draft asked for without a refusal option (``directed``, ``[answer] direct``), join asked
    again, why a draft was withdrawn, the gate's refusal, removed citations, unsupported
    sentences, and uncited sentences of an answer that stands.
    """
    notes: list[str] = []
    judge, limit = ("LLM", f"[answer] verify {verify:g}") if checker == "llm" else \
        ("verifier", f"its threshold {verify:g}")
    if directed and p_answerable is not None:
        notes.append(f"asked for the answer without offering a refusal: the {judge} judged that the sources contain "
                     f"it (P(yes) {p_answerable:.2f} >= [answer] direct {direct:g})")
    if joined:
        notes.append("the draft said the documents do not say, though a later hop added sources; asked again "
                     "to join facts across them ([multihop] join)")
    unverified = _below(p_stated, verify)
    withdrawn = unverified or (refuse_unsupported and should_withdraw(sentences, refused))
    if unverified:
        notes.append(f"the draft answer was withdrawn: the {judge} judged that the sources do not state it "
                     f"(P(yes) {p_stated:.2f} < {limit}; draft: {draft[:160]!r})")
    elif withdrawn:
        checked = [s for s in sentences if s.supported is not None]
        notes.append(f"the draft answer was withdrawn: none of its {len(checked)} cited sentence(s) is "
                     f"supported by the sources it cites (draft: {draft[:160]!r})")
    refused = refused or withdrawn
    if after_gate(p_answerable, gate):
        notes.append(f"not answered: the {judge} judged that the sources do not contain the answer "
                     f"(P(yes) {p_answerable:.2f} < [answer] gate {gate:g})")
    if invalid:
        notes.append("removed citations of sources that do not exist: " + ", ".join(f"[{n}]" for n in invalid))
    unsupported = [s for s in sentences if s.supported is False]
    if unsupported:
        notes.append(f"{len(unsupported)} sentence(s) not supported by the sources they cite")
    uncited = [s for s in sentences if not s.sources]
    if uncited and not refused:
        notes.append(f"{len(uncited)} sentence(s) cite no source")
    return Decision(refused=refused, withdrawn=withdrawn, notes=tuple(notes))
