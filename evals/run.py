"""Run a suite through the engine and score it: retrieval metrics, answer metrics, judge verdicts.

``run_suite`` searches (and answers, unless retrieval-only) every question of a suite on a
collection where the suite's documents were ingested; ``score_lines`` scores lines that
already carry an answer and its contexts, without the engine. Both give one result per
question (the ``--out`` JSONL line) and an :class:`EvalSummary` (means with 95% bootstrap
intervals, and per-question values for paired comparisons).

Retrieved chunks are mapped back to the suite's ``gold_sources``: a source under the suite
folder becomes its path relative to that folder (``docs/x.txt``), a ``beir:<name>/<id>``
source its doc id, and any other source that ends with a gold path (or whose file stem is
a gold doc id) that gold entry. A document counts once, at its best-ranked chunk.

Long runs resume: each finished question is appended to a cache file under
``<home>/eval-cache/``, keyed by a hash of the suite line, the configuration (settings,
options, judge) and the collection's state (the manifest's file versions). An interrupted
run skips what it already did; a changed document, setting or judge recomputes. The
answering model runs at temperature 0, so the same configuration gives the same numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import httpx
import openai

from evals.answer_metrics import (
    Verdicts, citation_scores, contains_answer, exact_match, faithfulness, is_short_reference, judged,
    refusal_values, statements, token_f1,
)
from evals.judge import (
    METHODS, RAGAS_METRICS, Judge, JudgeClient, JudgeError, JudgeOutputError, RagasJudge,
    correctness_question, endpoint_label, judge_config,
    make_judge, relevance_question,
)
from evals.metrics import bootstrap_ci, query_metrics
from evals.results import EvalItem, read_results
from evals.suite import SuiteItem, read_suite
from rag.query.cite import is_refusal
from rag.core.config import LlmConfig, Settings
from rag.core.errors import ConfigError, RagError
from rag.core.llm import Llm, LlmError
from rag.core.prompts import prompts_digest

__all__ = [
    "EVAL_VERSION", "EvalOptions", "EvalSummary", "MetricSummary", "SourceMapper", "run_suite", "score_lines",
    "summarise", "ANSWER_METRICS", "RETRIED_KINDS", "failure_kind", "needs_retry",
]

EVAL_VERSION = 4  # 2: EM/F1/contains ignore citation markers; 3: short_em / short_f1;
# 4: a short answer may be the answer's words in another form ("1969-1974" from "1969 to 1974")
"""Bumped when a metric's definition changes, so cached results are not reused across it."""

ANSWER_METRICS: tuple[str, ...] = (
    "faithfulness", "citation_recall", "citation_precision", "em", "f1", "contains", "short_em", "short_f1",
    "correctness", "relevance", "refusal_accuracy", "refused_unanswerable", "refused_answerable",
)
class EvalRunError(RagError):
    """A suite cannot be run or scored as asked."""


RETRIED_KINDS = frozenset({"timeout", "endpoint", "malformed", "judge"})
"""Error kinds that fail a question for now (a slow or failing endpoint, a judge's bad output): the
question is recorded with its error, not cached, and the next run retries it. The other kind,
``input`` (a question the engine cannot take, such as one longer than the embedder reads), is a result."""


def failure_kind(exc: BaseException) -> str:
    """``timeout``, ``endpoint`` (HTTP error, refused or broken connection), ``malformed`` or ``judge``."""
    if isinstance(exc, JudgeOutputError):
        return "malformed"
    if isinstance(exc, LlmError):
        cause = exc.__cause__ or exc.__context__  # the openai / httpx exception LlmError was made from
        while cause is not None:
            if isinstance(cause, (openai.APITimeoutError, httpx.TimeoutException)):
                return "timeout"
            cause = cause.__cause__ or cause.__context__
        return "endpoint"
    return "judge"


def _failure(stage: str, exc: BaseException) -> dict[str, str]:
    """The error record of a stage (``retrieval``, ``answer``, ``judge``) that failed for this question."""
    return {"metric": stage, "kind": failure_kind(exc), "error": str(exc)}


def error_kinds(result: dict[str, Any]) -> list[str]:
    """The kinds of ``result``'s errors (a record without one, from ragas, is ``judge``)."""
    return [e.get("kind", "judge") for e in result.get("errors") or []]


def needs_retry(result: dict[str, Any] | None) -> bool:
    """Whether a (cached) result is missing or failed for now, so the next run computes it again."""
    return result is None or any(kind in RETRIED_KINDS for kind in error_kinds(result))


@dataclass(frozen=True, slots=True)
class EvalOptions:
    """How to run a suite: where, how deep, and which judge."""

    collection: str = "default"
    retrieval_only: bool = False
    limit: int | None = None
    depth: int = 20
    ks: tuple[int, ...] = (1, 3, 5, 10, 20)
    retriever: str | None = None
    rerank: bool | None = None
    judge: bool = True
    judge_url: str | None = None
    judge_model: str | None = None
    judge_method: str = "logprob"
    judge_threshold: float = 0.5
    ragas: tuple[str, ...] = ()
    use_cache: bool = True

    @property
    def cutoffs(self) -> tuple[int, ...]:
        """The cutoffs reported: ``ks`` up to ``depth`` (deeper ones would only repeat the last)."""
        return tuple(k for k in self.ks if k <= self.depth) or (self.depth,)

    def check(self) -> None:
        """Reject impossible values with one line naming the option."""
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be at least 1 (got {self.limit})")
        if not 1 <= self.depth <= 1000:
            raise ConfigError(f"--depth must be between 1 and 1000 (got {self.depth})")
        if self.judge_method not in METHODS:
            raise ConfigError(f"unknown judge method {self.judge_method!r}; use one of {', '.join(METHODS)}")
        if not 0.0 <= self.judge_threshold <= 1.0:
            raise ConfigError(f"--judge-threshold must be between 0 and 1 (got {self.judge_threshold})")
        unknown = [m for m in self.ragas if m not in RAGAS_METRICS]
        if unknown:
            raise ConfigError(f"unknown ragas metric {unknown[0]!r}; choose from {', '.join(RAGAS_METRICS)}")


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """A metric's mean over the questions it applies to, with a 95% bootstrap interval."""

    mean: float
    low: float
    high: float
    n: int


@dataclass(frozen=True, slots=True)
class EvalSummary:
    """Means and intervals of every metric, per-question values, and what produced them."""

    suite: str
    collection: str | None
    questions: int
    cached: int
    metrics: dict[str, MetricSummary]
    per_question: dict[str, dict[str, float | None]]
    judges: tuple[dict[str, str], ...]
    errors: int
    seconds: float = 0.0
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    retry: tuple[str, ...] = ()
    """Ids of the questions that failed for now (``RETRIED_KINDS``): a rerun computes only these."""

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` shape: means, intervals, counts, and per-question values (for ``compare``)."""
        return {
            "suite": self.suite,
            "collection": self.collection,
            "questions": self.questions,
            "cached": self.cached,
            "metrics": {k: round(m.mean, 4) for k, m in self.metrics.items()},
            "ci95": {k: [round(m.low, 4), round(m.high, 4)] for k, m in self.metrics.items()},
            "n": {k: m.n for k, m in self.metrics.items()},
            "judges": list(self.judges),
            "errors": self.errors,
            "errors_by_kind": self.errors_by_kind,
            "retry": list(self.retry),
            "seconds": round(self.seconds, 2),
            "per_question": self.per_question,
        }


class RunProgress(Protocol):
    """What a runner reports while it works (the CLI draws a bar with an ETA)."""

    def start(self, total: int, cached: int) -> None: ...
    def advance(self, question_id: str) -> None: ...
    def failed(self, question_id: str, kinds: Sequence[str]) -> None:
        """A question was recorded with errors of these kinds (called before its ``advance``)."""


# --- sources -> gold ids --------------------------------------------------------------------


class SourceMapper:
    """Maps stored chunk sources to the suite's gold ids (see the module docstring)."""

    def __init__(self, suite_dir: Path, gold: Iterable[str]) -> None:
        self.roots = tuple(dict.fromkeys([Path(os.path.normpath(suite_dir.absolute())), suite_dir.resolve()]))
        self.gold = set(gold)
        self._by_name: dict[str, list[str]] = {}
        self._by_stem: dict[str, str] = {}
        for g in self.gold:
            self._by_name.setdefault(PurePosixPath(g).name, []).append(g)
            if "/" not in g and "." not in g:
                self._by_stem[g] = g

    def doc_id(self, source: str) -> str:
        """The gold id ``source`` stands for, else its suite-relative path, else the source itself."""
        if source.startswith("beir:") and "/" in source:
            return source.split("/", 1)[1]
        rel = None
        path = Path(source)
        if path.is_absolute():
            for root in self.roots:
                try:
                    rel = path.relative_to(root).as_posix()
                    break
                except ValueError:
                    continue
        if rel is not None and rel in self.gold:
            return rel
        posix = source.replace(os.sep, "/")
        for g in self._by_name.get(PurePosixPath(posix).name, ()):
            if posix == g or posix.endswith("/" + g):
                return g
        stem = PurePosixPath(posix).stem
        if stem in self._by_stem:
            return stem
        return rel if rel is not None else source

    def ranking(self, sources: Iterable[str]) -> list[str]:
        """Doc ids in rank order, each once (at its best-ranked chunk)."""
        return list(dict.fromkeys(self.doc_id(s) for s in sources))


# --- cache ----------------------------------------------------------------------------------


class ResultCache:
    """Per-question results appended to a JSONL file as they finish; read back on the next run."""

    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled
        self._results: dict[str, dict[str, Any]] = {}
        if enabled and path.is_file():
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        entry = json.loads(line)
                        self._results[entry["key"]] = entry["result"]
                    except (ValueError, KeyError, TypeError):
                        continue  # a line torn by an interrupted write: recompute that question

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached result for ``key``, if any."""
        return self._results.get(key)

    def put(self, key: str, result: dict[str, Any]) -> None:
        """Remember ``result`` (appended and synced at once, so a kill loses at most this one)."""
        self._results[key] = result
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"key": key, "result": result}, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def collection_state(settings: Settings, home: Path, collection: str) -> str:
    """A hash of the collection's file versions and embedding model (changes when the content does)."""
    from rag.core.manifest import Manifest
    from rag.core.home import collection_paths

    paths = collection_paths(home, collection)
    if not paths.manifest.is_file():
        raise EvalRunError(
            f"collection '{collection}' does not exist under {home}; ingest the suite's documents first: "
            f"rag ingest SUITE_DIR/docs --collection {collection}"
        )
    manifest = Manifest(paths.manifest)
    try:
        rows = sorted((r.source, r.file_hash, r.pipeline, r.state) for r in manifest.files().values())
        model = manifest.get_meta("embedding_model")
    finally:
        manifest.close()
    return _digest({"files": rows, "model": model})


_UNKEYED = {"llm": ("threads", "timeout_s"), "embedding": ("batch_size", "query_threads", "device"),
            "rerank": ("batch_size", "threads"), "eval": ("llm_timeout_s",)}


def config_fingerprint(settings: Settings, options: EvalOptions, judge: LlmConfig | None) -> dict[str, Any]:
    """The settings and options that can change a result (threads, timeouts and batch sizes cannot)."""
    dumped = settings.model_dump()
    for section, keys in _UNKEYED.items():
        for key in keys:
            dumped[section].pop(key, None)
    skip = {"limit", "use_cache"} | ({"judge", "judge_url", "judge_model", "judge_method", "judge_threshold", "ragas"}
                                      if judge is None else set())
    opts = {f.name: getattr(options, f.name) for f in fields(options) if f.name not in skip}
    return {
        "version": EVAL_VERSION, "prompts": prompts_digest(), "settings": dumped, "options": opts,
        "judge": None if judge is None else {"endpoint": endpoint_label(judge), "model": judge.model},
    }


# --- the engine (search + answer) -----------------------------------------------------------


class _Engine:
    """The collection's answerer (search, and answers when wanted), opened on first use.

    Evidence is gathered ``depth`` deep for the retrieval metrics; the answer is written from
    its top ``[answer] k`` passages, the same ones ``rag ask`` would use.
    """

    def __init__(self, settings: Settings, home: Path, options: EvalOptions, llm: Callable[[], Llm]) -> None:
        self.settings, self.home, self.options, self.llm = settings, home, options, llm
        self.answerer: Any = None

    def _open(self) -> Any:
        if self.answerer is None:
            from rag.query.answer import Answerer

            o = self.options
            self.answerer = Answerer(self.settings, self.home, o.collection, llm=self.llm(), retriever=o.retriever,
                                     rerank=o.rerank)
        return self.answerer

    def gather(self, question: str) -> Any:
        """The evidence for ``question``, ``depth`` passages deep."""
        return self._open().gather(question, self.options.depth)

    def answer(self, question: str, evidence: Any) -> Any:
        """The answer written from the top ``[answer] k`` passages of ``evidence``."""
        top = replace(evidence, chunks=evidence.chunks[: self.settings.answer.k])
        return self._open().ask(question, evidence=top)

    def close(self) -> None:
        if self.answerer is not None:
            self.answerer.close()


# --- scoring --------------------------------------------------------------------------------


def retrieval_values(gold: Sequence[str], ranking: Sequence[str], ks: Sequence[int]) -> dict[str, float]:
    """MAP, MRR, nDCG@k and recall@k of one ranking against binary gold (trec_eval semantics)."""
    values = query_metrics({g: 1 for g in gold}, list(ranking), ks)
    names = ["map", "mrr"] + [f"{m}@{k}" for k in ks for m in ("ndcg", "recall")]
    return {n: values[n] for n in names}


class Scorer:
    """Answer metrics for one answer, with the judge (and ragas) made on first need."""

    def __init__(self, judge_factory: Callable[[], Judge] | None,
                 ragas_factory: Callable[[], RagasJudge] | None) -> None:  # fmt: skip
        self._judge_factory = judge_factory
        self._ragas_factory = ragas_factory
        self._judge: Judge | None = None
        self._ragas: RagasJudge | None = None

    @property
    def judge(self) -> Judge | None:
        if self._judge is None and self._judge_factory is not None:
            self._judge = self._judge_factory()
        return self._judge

    @property
    def ragas(self) -> RagasJudge | None:
        if self._ragas is None and self._ragas_factory is not None:
            self._ragas = self._ragas_factory()
        return self._ragas

    def score(self, item: SuiteItem, answer: str, contexts: Sequence[str], out: dict[str, Any]) -> dict[str, Any]:
        """Answer metrics of ``answer`` given ``contexts``; verdicts, statements and errors go into ``out``."""
        errors: list[dict[str, str]] = out.setdefault("errors", [])
        values: dict[str, float | None] = dict.fromkeys(ANSWER_METRICS)
        refused = is_refusal(answer)
        claims = statements(answer, len(contexts), item.citations or ())
        values.update(refusal_values(answer, item.answerable))
        refs = [r for r in item.answers or () if r.strip()]
        if refs and is_short_reference(refs):
            values.update(em=exact_match(answer, refs), f1=token_f1(answer, refs), contains=contains_answer(answer, refs))
        judge = self.judge
        verdicts = Verdicts(judge, contexts, item.question) if judge is not None else None
        if verdicts is not None:
            out["judge"] = judge.info.as_dict()
            if refs and is_short_reference(refs):
                values.update(self._short(judge, item.question, answer, refs, refused, errors, out))
            if refs and not is_short_reference(refs):
                values["correctness"] = 0.0 if refused else judged(
                    lambda: float(any(verdicts.ask("correct", correctness_question(item.question, r, answer))
                                      for r in refs)), errors, "correctness")
            if not refused and claims:
                values["faithfulness"] = judged(
                    lambda: faithfulness(claims, len(contexts), verdicts.supported), errors, "faithfulness")
                cites = judged(lambda: citation_scores(claims, verdicts.entails), errors, "citations")
                if cites is not None:
                    values.update(citation_recall=cites.recall, citation_precision=cites.precision)
                values["relevance"] = judged(
                    lambda: float(verdicts.ask("relevant", relevance_question(item.question, answer))), errors,
                    "relevance")
            out["verdicts"] = verdicts.records
        if self.ragas is not None and not refused:
            sample = {"user_input": item.question, "response": answer, "retrieved_contexts": list(contexts),
                      "reference": refs[0] if refs else ""}
            values.update(self.ragas.score(sample, errors))
            out["ragas_judge"] = self.ragas.info.as_dict()
        out["refused"] = refused
        out["statements"] = [{"text": s.text, "citations": list(s.citations)} for s in claims]
        if verdicts is not None:
            everything = tuple(range(1, len(contexts) + 1))
            for s in out["statements"]:
                s["supported"] = verdicts.lookup("supported", everything, s["text"])
                cited = tuple(dict.fromkeys(s["citations"]))
                s["recalled"] = verdicts.lookup("entails", cited, s["text"]) if cited else None
        return values

    @staticmethod
    def _short(judge: Judge, question: str, answer: str, refs: Sequence[str], refused: bool,
               errors: list[dict[str, str]], out: dict[str, Any]) -> dict[str, float | None]:  # fmt: skip
        """EM / F1 of the short answer the judge reads out of ``answer`` (a refusal scores 0)."""
        if refused:
            return {"short_em": 0.0, "short_f1": 0.0}
        short = judged(lambda: judge.short_answer(question, answer), errors, "short_answer")
        if short is None:
            return {}
        out["short_answer"] = short
        return {"short_em": exact_match(short, refs), "short_f1": token_f1(short, refs)}

    def close(self) -> None:
        if self._ragas is not None:
            self._ragas.close()
        if self._judge is not None:
            self._judge.close()


def _base_line(item: SuiteItem) -> dict[str, Any]:
    keep = ("id", "question", "answers", "gold_sources", "answerable")
    data = item.to_json()
    return {k: data[k] for k in keep if k in data}


def _evaluate(entry: EvalItem, engine: _Engine | None, scorer: Scorer, mapper: SourceMapper,
              options: EvalOptions) -> dict[str, Any]:  # fmt: skip
    """One question's result line."""
    item = entry.item
    out = _base_line(item)
    out["errors"] = []
    metrics: dict[str, Any] = {}
    retrieved = list(entry.retrieved) if entry.retrieved is not None else None
    answer, contexts, sources = item.answer, list(item.contexts or []), list(entry.context_sources or [])
    timings: dict[str, float] = {}
    precomputed = item.answer is not None and item.contexts is not None
    if not precomputed and engine is not None:
        t0 = time.perf_counter()
        stage, answer = "retrieval", None
        try:
            evidence = engine.gather(item.question)
            chunks = evidence.chunks
            retrieved = mapper.ranking(c.source for c in chunks)
            top = chunks[: engine.settings.answer.k]
            contexts = [c.text for c in top]
            sources = [mapper.doc_id(c.source) for c in top]
            if not options.retrieval_only:
                stage = "answer"
                ans = engine.answer(item.question, evidence)
                answer = ans.answer
                timings.update({k: round(v, 3) for k, v in ans.timings.items()})
                out["answer_checks"] = {
                    "withdrawn": ans.withdrawn, "answerable_probability": ans.answerable_probability,
                    "verified_probability": ans.verified_probability, "joined": ans.joined, "direct": ans.direct,
                    "notes": list(ans.notes),
                }
        except ConfigError as exc:  # e.g. a question longer than the embedder reads: counts as nothing found
            out["errors"].append({"metric": "retrieval", "kind": "input", "error": str(exc)})
            retrieved, answer, contexts, sources = [], None, [], []
        except LlmError as exc:  # slow or failing endpoint: this question fails for now, the run goes on
            out["errors"].append(_failure(stage, exc))
        timings["engine_s"] = round(time.perf_counter() - t0, 3)
    if retrieved is not None:
        out["retrieved"] = retrieved
        if item.gold_sources:
            metrics.update(retrieval_values(item.gold_sources, retrieved, options.cutoffs))
    if answer is not None and not options.retrieval_only:
        t1 = time.perf_counter()
        out["answer"] = answer
        out["contexts"] = contexts
        if sources:
            out["context_sources"] = sources
        try:
            metrics.update(scorer.score(item, answer, contexts, out))
        except (LlmError, JudgeError) as exc:  # the judge's endpoint failed: no judged metrics for now
            out["errors"].append(_failure("judge", exc))
            out.setdefault("statements", [])
        cited = sorted({n for s in out["statements"] for n in s["citations"]})
        out["citations"] = [str(n) for n in cited]
        timings["score_s"] = round(time.perf_counter() - t1, 3)
    elif contexts:
        out["contexts"] = contexts
        if sources:
            out["context_sources"] = sources
    out["metrics"] = metrics
    out["timings"] = timings
    return out


def summarise(results: Sequence[dict[str, Any]], suite: str, collection: str | None, cached: int = 0,
              seconds: float = 0.0, n_boot: int = 1000) -> EvalSummary:  # fmt: skip
    """Means with 95% bootstrap intervals over the questions each metric applies to (None: not applicable)."""
    names: dict[str, None] = {}
    for r in results:
        for k in r.get("metrics", {}):
            names.setdefault(k, None)
    metrics: dict[str, MetricSummary] = {}
    for name in names:
        values = [r["metrics"][name] for r in results if r.get("metrics", {}).get(name) is not None]
        if not values:
            continue
        mean = sum(values) / len(values)
        low, high = bootstrap_ci(values, n=n_boot, seed=0) if len(values) > 1 else (mean, mean)
        metrics[name] = MetricSummary(mean, low, high, len(values))
    kinds = Counter(kind for r in results for kind in error_kinds(r))
    judges: dict[str, dict[str, str]] = {}
    for r in results:
        for key in ("judge", "ragas_judge"):
            if r.get(key):
                judges.setdefault(json.dumps(r[key], sort_keys=True), r[key])
    return EvalSummary(
        suite=suite, collection=collection, questions=len(results), cached=cached, metrics=metrics,
        per_question={r["id"]: dict(r.get("metrics", {})) for r in results}, judges=tuple(judges.values()),
        errors=sum(kinds.values()), seconds=seconds, errors_by_kind=dict(sorted(kinds.items())),
        retry=tuple(r["id"] for r in results if r.get("errors") and needs_retry(r)),
    )


def _cache_path(home: Path, source: Path, collection: str | None) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]", "_", source.resolve().parent.name + "-" + source.stem)[:60]
    tag = hashlib.sha256(f"{source.resolve()}|{collection}".encode()).hexdigest()[:12]
    return home / "eval-cache" / f"{slug}-{tag}.jsonl"


def _judge_factories(settings: Settings, home: Path, options: EvalOptions, shared: Callable[[], JudgeClient],
                     judge_llm: LlmConfig) -> tuple[Callable[[], Any] | None, Callable[[], Any] | None]:  # fmt: skip
    def client() -> JudgeClient:
        return shared() if judge_llm == settings.llm else JudgeClient(judge_llm, home)

    judge_factory = None
    if options.judge and options.judge_method == "verifier":  # no weights: one clear error before any work
        from rag.core.errors import ModelLoadError
        from rag.query.verify_model import get_verifier

        loaded, why = get_verifier(settings.answer.verifier or None)
        if loaded is None:
            raise ModelLoadError(why or "no verifier")
    if options.judge:
        def judge_factory() -> Judge:
            return make_judge(judge_llm, home, options.judge_method, options.judge_threshold, client=client(),
                              verifier=settings.answer.verifier or None)
    ragas_factory = None
    if options.ragas:
        def ragas_factory() -> RagasJudge:
            return RagasJudge(client(), endpoint_label(judge_llm), options.ragas)
    return judge_factory, ragas_factory


def eval_settings(settings: Settings) -> Settings:
    """The user's settings with answers at temperature 0, ``[eval] llm_timeout_s`` for every LLM call, and no
    answer-time support check (the judge does it)."""
    return settings.model_copy(update={
        "llm": settings.llm.model_copy(update={"temperature": 0.0, "timeout_s": settings.eval.llm_timeout_s}),
        "answer": settings.answer.model_copy(update={"check_support": False}),
    })


def _run(entries: Sequence[EvalItem], source: Path, settings: Settings, home: Path, options: EvalOptions,
         needs_engine: bool, progress: RunProgress | None) -> tuple[list[dict[str, Any]], EvalSummary]:  # fmt: skip
    options.check()
    settings = eval_settings(settings)
    started = time.perf_counter()
    judge_llm = judge_config(settings, options.judge_url, options.judge_model)
    collection = options.collection if needs_engine else None
    state = collection_state(settings, home, options.collection) if needs_engine else "none"
    judged_run = (options.judge or bool(options.ragas)) and not options.retrieval_only
    fingerprint = config_fingerprint(settings, options, judge_llm if judged_run else None)
    cache = ResultCache(_cache_path(home, source, collection), enabled=options.use_cache)
    keys = {e.item.id: _digest({"item": e.item.to_json(), "retrieved": e.retrieved, "sources": e.context_sources,
                                "config": fingerprint, "state": state}) for e in entries}
    todo = [e for e in entries if needs_retry(cache.get(keys[e.item.id]))]
    if progress is not None:
        progress.start(len(todo), len(entries) - len(todo))
    gold = {g for e in entries for g in e.item.gold_sources or ()}
    mapper = SourceMapper(source.parent, gold)

    shared_client: list[JudgeClient] = []

    def shared() -> JudgeClient:
        if not shared_client:
            shared_client.append(JudgeClient(settings.llm, home))
        return shared_client[0]

    judge_factory, ragas_factory = _judge_factories(settings, home, options, shared, judge_llm)
    scorer = Scorer(judge_factory, ragas_factory)
    engine = _Engine(settings, home, options, shared) if needs_engine else None
    fresh: dict[str, dict[str, Any]] = {}
    try:
        for entry in todo:
            result = _evaluate(entry, engine, scorer, mapper, options)
            result["key"] = keys[entry.item.id]
            fresh[entry.item.id] = result
            if not needs_retry(result):  # a failure is not a result: the next run asks again
                cache.put(keys[entry.item.id], result)
            elif progress is not None:
                progress.failed(entry.item.id, [k for k in error_kinds(result) if k in RETRIED_KINDS])
            if progress is not None:
                progress.advance(entry.item.id)
    finally:
        try:
            scorer.close()
        finally:
            if engine is not None:
                engine.close()
            for c in shared_client:
                c.close()
    results = [fresh.get(e.item.id) or cache.get(keys[e.item.id]) or {} for e in entries]
    summary = summarise(results, str(source), collection, cached=len(entries) - len(todo),
                        seconds=time.perf_counter() - started)
    return results, summary


def run_suite(suite: Path, settings: Settings, home: Path, options: EvalOptions,
              progress: RunProgress | None = None) -> tuple[list[dict[str, Any]], EvalSummary]:  # fmt: skip
    """Search/answer and score every question of ``suite`` (the first ``options.limit``)."""
    items = read_suite(suite)
    if options.limit:
        items = items[: options.limit]
    entries = [EvalItem(i) for i in items]
    needs_engine = any(i.answer is None or i.contexts is None for i in items)
    return _run(entries, suite, settings, home, options, needs_engine, progress)


def score_lines(path: Path, settings: Settings, home: Path, options: EvalOptions,
                progress: RunProgress | None = None) -> tuple[list[dict[str, Any]], EvalSummary]:  # fmt: skip
    """Score lines that already carry answers and contexts (``read_results``) without the engine."""
    entries = read_results(path)
    if options.limit:
        entries = entries[: options.limit]
    return _run(entries, path, settings, home, replace(options, retrieval_only=False), False, progress)
