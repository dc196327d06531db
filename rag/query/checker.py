"""Who answers the yes/no questions about support: the trained verifier or the LLM (``[answer] checker``).

Two questions are asked after a draft: does a cited source state this sentence (the per-sentence
support check, ``[answer] check_support``), and do the cited sources state this answer to the
question (``[answer] verify``); one before it, when ``[answer] gate`` is on: do the sources hold
an answer to the question (the verifier reads the question itself as the claim). The LLM answers
each with one round trip (seconds on a CPU); the verifier (rag.query.verify_model) with one
cross-encoder pass per source window (milliseconds).

``auto`` takes the verifier when its weights load and the LLM otherwise, and says so in ``note``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from rag.core.config import AnswerConfig
from rag.core.errors import ModelLoadError
from rag.core.llm import Llm
from rag.core.records import ScoredChunk
from rag.query.cite import strip_markers
from rag.query.prompt import answerable_messages, support_prompt, verify_messages
from rag.query.verify_model import Verifier, answer_claim, get_verifier


def plain(text: str) -> str:
    """``text`` without its ``[n]`` citation markers, spaces normalised (the verifier reads claims as trained)."""
    return " ".join(strip_markers(text).split())


class Checker(Protocol):
    """P(yes) for the two support questions, with the thresholds that turn it into a verdict."""

    name: str  # "verifier" or "llm"
    label: str  # what ran, for --explain and --json (model folder or LLM)
    note: str  # why this checker ran when another was asked for ("" otherwise)
    support_threshold: float
    verify_threshold: float

    def supported(self, sentence: str, sources: Sequence[str]) -> float: ...

    def stated(self, question: str, answer: str, sources: Sequence[str]) -> float: ...

    def answerable(self, question: str, chunks: Sequence[ScoredChunk], shown: Sequence[str] | None) -> float: ...


@dataclass
class LlmChecker:
    """The LLM's log-probability of "Yes" (one round trip per question)."""

    llm: Llm
    support_threshold: float
    verify_threshold: float
    note: str = ""
    name: str = "llm"
    label: str = "llm"

    def supported(self, sentence: str, sources: Sequence[str]) -> float:
        return self.llm.yes_probability(support_prompt(sentence, sources))

    def stated(self, question: str, answer: str, sources: Sequence[str]) -> float:
        return self.llm.yes_probability(verify_messages(question, answer, sources))

    def answerable(self, question: str, chunks: Sequence[ScoredChunk], shown: Sequence[str] | None) -> float:
        return self.llm.yes_probability(answerable_messages(question, chunks, shown))


@dataclass
class VerifierChecker:
    """The trained verifier's P(supported), compared with its own threshold (from its model card).

    The LLM thresholds (``support_threshold``, ``verify``) are calibrated on the LLM's P(yes) and
    do not carry over; ``verify`` > 0 still turns the whole-answer check on.
    """

    verifier: Verifier
    note: str = ""
    name: str = "verifier"

    @property
    def label(self) -> str:
        return f"verifier ({self.verifier.folder})"

    @property
    def support_threshold(self) -> float:
        return self.verifier.threshold

    @property
    def verify_threshold(self) -> float:
        return self.verifier.threshold

    def supported(self, sentence: str, sources: Sequence[str]) -> float:
        return self.verifier.support(plain(sentence), sources)

    def stated(self, question: str, answer: str, sources: Sequence[str]) -> float:
        return self.verifier.support(answer_claim(plain(answer), question), sources)

    def answerable(self, question: str, chunks: Sequence[ScoredChunk], shown: Sequence[str] | None) -> float:
        """The best P(supported) of the question itself, as the claim, against any window of any source."""
        return self.verifier.support(" ".join(question.split()), [c.text for c in chunks])


def make_checker(cfg: AnswerConfig, llm: Llm, threads: int = 0) -> Checker:
    """The checker ``cfg.checker`` names; ``auto`` falls back to the LLM (with a note) without verifier weights.

    ``verifier`` without loadable weights raises ModelLoadError (its message says how to train them
    or to set ``[answer] checker = "llm"``).
    """
    llm_checker = LlmChecker(llm, cfg.support_threshold, cfg.verify)
    if cfg.checker == "llm":
        return llm_checker
    verifier, why = get_verifier(cfg.verifier or None, threads)
    if verifier is not None:
        return VerifierChecker(verifier)
    if cfg.checker == "verifier":
        raise ModelLoadError(f"{why}; or set [answer] checker = \"llm\"")
    llm_checker.note = f"support checked by the LLM: {why}"
    return llm_checker
