"""Answer metrics: faithfulness, ALCE citation recall/precision, EM/F1, relevance, refusals.

The judged metrics take an ``entails(context_numbers, claim) -> bool`` function, where the
numbers (1-based) pick passages of the answer's contexts; :class:`Verdicts` builds one
from a judge and records every verdict. Kept as plain functions of that callable, the
definitions are checkable by hand.

* **Statements** are the answer's sentences (``rag.query.cite``), citation markers stripped, each
  with the context numbers it cites.
* **Faithfulness**: the share of statements that all retrieved contexts together entail.
* **Citation recall / precision** as ALCE computes them (Gao et al., 2023, ``eval.py``): a
  statement is recalled iff it has citations and their concatenation entails it; recall is
  averaged over statements. A citation is precise iff its statement is recalled and it is
  not the case that it alone fails to entail the statement while the other citations
  still do (with one citation: iff the statement is recalled). Precision is averaged over
  citations; an answer with statements but no citations has precision 0.
* **EM / F1** with SQuAD normalisation (lower case, no punctuation or articles), max over
  the references; ``contains`` is ALCE's string match (a normalised reference occurs in
  the answer), the useful one for long generated answers to short-answer questions.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from evals.judge import Judge, JudgeOutputError, YesNoQuestion
from evals.normalize import normalize_answer
from rag.query.cite import is_refusal, parse_answer

__all__ = [
    "Statement", "CitationScores", "Verdicts", "statements", "faithfulness", "citation_scores", "normalize_answer",
    "exact_match", "token_f1", "contains_answer", "is_short_reference", "refusal_values", "SHORT_ANSWER_WORDS",
]

Entails = Callable[[Sequence[int], str], bool]
CLAIM_KINDS = frozenset({"supported", "entails"})
"""Verdict kinds that are claim checks (``Judge.claim_probability``, the verifier's with ``--judge-method verifier``)."""
SHORT_ANSWER_WORDS = 10
"""References of at most this many words (normalised) are short answers, scored by EM/F1."""


@dataclass(frozen=True, slots=True)
class Statement:
    """One answer sentence (no citation markers) and the context numbers (1-based) it cites."""

    text: str
    citations: tuple[int, ...]


def statements(answer: str, n_contexts: int, cited: Sequence[str] = ()) -> list[Statement]:
    """Split an answer into statements; markers outside 1..n_contexts are dropped.

    ``cited`` (context numbers as strings, a suite line's ``citations``) applies to every
    statement, but only when the answer has no inline markers at all.
    """
    found = [Statement(s.text, s.sources) for s in parse_answer(answer, n_contexts).sentences]
    numbers = tuple(dict.fromkeys(int(c) for c in cited if c.strip().isdigit() and 1 <= int(c) <= n_contexts))
    if numbers and not any(s.citations for s in found):
        return [Statement(s.text, numbers) for s in found]
    return found


def faithfulness(claims: Sequence[Statement], n_contexts: int, entails: Entails) -> float | None:
    """Share of statements entailed by all contexts together; None without statements, 0 without contexts."""
    if not claims:
        return None
    if n_contexts == 0:
        return 0.0
    everything = tuple(range(1, n_contexts + 1))
    return sum(1 for s in claims if entails(everything, s.text)) / len(claims)


@dataclass(frozen=True, slots=True)
class CitationScores:
    """ALCE citation recall (over statements) and precision (over citations) of one answer."""

    recall: float
    precision: float
    statements: int
    citations: int
    recalled: tuple[bool, ...]
    precise: tuple[tuple[bool, ...], ...]


def citation_scores(claims: Sequence[Statement], entails: Entails) -> CitationScores | None:
    """ALCE citation recall and precision; None when the answer has no statements."""
    if not claims:
        return None
    recalled: list[bool] = []
    precise: list[tuple[bool, ...]] = []
    for s in claims:
        cited = tuple(dict.fromkeys(s.citations))
        joint = bool(cited) and entails(cited, s.text)
        recalled.append(joint)
        if not joint or len(cited) == 1:
            precise.append(tuple(joint for _ in cited))
            continue
        flags = []
        for n in cited:
            if entails((n,), s.text):
                flags.append(True)
            else:
                rest = tuple(m for m in cited if m != n)
                flags.append(not entails(rest, s.text))
        precise.append(tuple(flags))
    n_citations = sum(len(p) for p in precise)
    precision = sum(sum(p) for p in precise) / n_citations if n_citations else 0.0
    return CitationScores(sum(recalled) / len(claims), precision, len(claims), n_citations, tuple(recalled),
                          tuple(precise))


# --- short answers (SQuAD normalisation) ---------------------------------------------------



def exact_match(prediction: str, references: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised reference."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(r) for r in references))


def _f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, references: Sequence[str]) -> float:
    """SQuAD token F1, the best over the references."""
    return max((_f1(prediction, r) for r in references), default=0.0)


def contains_answer(prediction: str, references: Sequence[str]) -> float:
    """1.0 if a normalised reference occurs in the normalised prediction (ALCE's string match)."""
    pred = f" {normalize_answer(prediction)} "
    return float(any(f" {normalize_answer(r)} " in pred for r in references if normalize_answer(r)))


def is_short_reference(references: Sequence[str]) -> bool:
    """Whether every reference is a short answer (scored by EM/F1 rather than by a judge)."""
    return bool(references) and all(len(normalize_answer(r).split()) <= SHORT_ANSWER_WORDS for r in references)


def refusal_values(answer: str, answerable: bool | None) -> dict[str, float | None]:
    """Per-question refusal metrics: accuracy (refused iff unanswerable) and refusal rates by kind."""
    if answerable is None:
        return {"refusal_accuracy": None, "refused_unanswerable": None, "refused_answerable": None}
    refused = float(is_refusal(answer))
    return {
        "refusal_accuracy": refused if not answerable else 1.0 - refused,
        "refused_unanswerable": refused if not answerable else None,
        "refused_answerable": refused if answerable else None,
    }


# --- judged verdicts ------------------------------------------------------------------------


@dataclass
class Verdicts:
    """Asks a judge and remembers every verdict (and each error) for one question.

    Identical questions are asked once (ALCE's precision check repeats joint checks).
    """

    judge: Judge
    contexts: Sequence[str]
    question: str
    records: list[dict[str, Any]] = field(default_factory=list)
    _memo: dict[tuple[str, tuple[int, ...], str], float] = field(default_factory=dict)

    def ask(self, kind: str, prompt: YesNoQuestion, premises: tuple[int, ...] = (), claim: str = "") -> bool:
        """The thresholded verdict; JudgeOutputError propagates (the caller records it)."""
        return self._ask(kind, lambda: self.judge.probability(prompt), premises, claim or prompt.body)

    def _threshold(self, kind: str) -> float:
        return self.judge.claim_threshold if kind in CLAIM_KINDS else self.judge.threshold

    def _ask(self, kind: str, probability: Callable[[], float], premises: tuple[int, ...], claim: str) -> bool:
        key = (kind, premises, claim)
        if key not in self._memo:
            p = probability()
            self._memo[key] = p
            record: dict[str, Any] = {"kind": kind, "p_yes": round(p, 4), "verdict": p >= self._threshold(kind)}
            if premises:
                record["contexts"] = list(premises)
            if claim:
                record["claim"] = claim
            self.records.append(record)
        return self._memo[key] >= self._threshold(kind)

    def entails(self, numbers: Sequence[int], claim: str) -> bool:
        """ALCE-style entailment: do these contexts (1-based) entail the claim (no question shown)?"""
        premises = tuple(numbers)
        texts = [self.contexts[n - 1] for n in premises]
        return self._ask("entails", lambda: self.judge.claim_probability(texts, claim), premises, claim)

    def supported(self, numbers: Sequence[int], claim: str) -> bool:
        """Faithfulness check: do these contexts support the claim as an answer to the question?"""
        premises = tuple(numbers)
        texts = [self.contexts[n - 1] for n in premises]
        return self._ask("supported", lambda: self.judge.claim_probability(texts, claim, self.question), premises,
                         claim)

    def lookup(self, kind: str, premises: tuple[int, ...], claim: str) -> bool | None:
        """The verdict already given for this check, or None if it was not asked."""
        p = self._memo.get((kind, premises, claim))
        return None if p is None else p >= self._threshold(kind)

    def probabilities(self, kind: str) -> list[float]:
        """P(yes) of every recorded verdict of ``kind``, in order."""
        return [r["p_yes"] for r in self.records if r["kind"] == kind]


def judged(fn: Callable[[], Any], errors: list[dict[str, str]], metric: str) -> Any:
    """Run a judged metric; a malformed-output failure becomes an error record (kind ``malformed``) and None."""
    try:
        return fn()
    except JudgeOutputError as exc:
        errors.append({"metric": metric, "kind": "malformed", "error": str(exc)})
        return None
