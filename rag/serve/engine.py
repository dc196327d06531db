"""The resident engine: the home's collections and the models, loaded once and shared by every request.

Concurrency, in one place:

- model calls: the shared embedder and reranker run on one thread of their own
  (:class:`rag.serve.batching.ModelWorker`); every request hands its model work to it and waits,
  and what queued while it was busy runs as one batched call (a Hugging Face fast tokenizer shared
  between threads fails with "Already borrowed", and on a CPU one call over many queries costs
  much less than many calls). The rest of a search (the store's searches, BM25, fusion) runs on
  the request's own thread, concurrently with the others.
- ``answering``: one answer at a time owns the LLM (it generates, then judges its own sentences);
  other answers queue on it. Its retrieval shares the model thread with the searches.
- ingests run one at a time on a background thread with their own embedder; a search during an
  ingest reads the shared store (the engine locks its write-ahead log per process, so the ingest
  and the searches use one open shard). When an ingest finishes, the collection's searchers are
  rebuilt (once the searches using them are done) so filters and the BM25 index see the new files.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from rag.core.config import Settings
from rag.core.errors import CollectionNotFoundError, ConfigError, RagError
from rag.core.home import collection_paths, list_collections
from rag.query.answer import Answer, Answerer
from rag.query.chat import ChatSession
from rag.query.route import descriptions
from rag.query.search import SearchResult, Searcher
from rag.query.retrieve import SearchFilter
from rag.serve.batching import BatchedEmbedder, BatchedReranker, ModelWorker


class Forbidden(RagError):
    """The request is understood but not allowed (a path outside ``[serve] ingest_roots``)."""


class Cancelled(RagError):
    """The client went away; the answer it asked for was stopped."""


class Busy(RagError):
    """The engine is shutting down and takes no new work."""


@dataclass(frozen=True, slots=True)
class AnswerOptions:
    """Per-request overrides of how an answer is gathered (the ``rag ask`` options)."""

    retriever: str | None = None
    expand: str | None = None
    multihop: str | None = None
    max_hops: int | None = None


def answer_settings(settings: Settings, options: AnswerOptions) -> Settings:
    """The settings with ``[query] expand`` and ``[multihop]`` overridden as ``options`` asks."""
    if options.expand is not None:
        settings = settings.model_copy(update={"query": settings.query.model_copy(update={"expand": options.expand})})
    hop: dict[str, Any] = {}
    if options.multihop is not None:
        hop["mode"] = options.multihop
    if options.max_hops is not None:
        if not 1 <= options.max_hops <= 5:
            raise ConfigError(f"max_hops must be between 1 and 5 (got {options.max_hops})")
        hop["max_hops"] = options.max_hops
    if hop:
        settings = settings.model_copy(update={"multihop": settings.multihop.model_copy(update=hop)})
    return settings


@dataclass
class IngestJob:
    """One background ingest and its progress (what ``GET /v1/ingest/{id}`` returns)."""

    id: str
    collection: str
    paths: tuple[str, ...]
    state: str = "queued"  # queued -> running -> done | failed
    files_total: int | None = None
    files_done: int = 0
    chunks_embedded: int = 0
    notes: list[str] = field(default_factory=list)
    report: dict[str, Any] | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of a job."""
        return {"id": self.id, "collection": self.collection, "paths": list(self.paths), "state": self.state,
                "files_total": self.files_total, "files_done": self.files_done,
                "chunks_embedded": self.chunks_embedded, "notes": list(self.notes), "report": self.report,
                "error": self.error, "created": self.created, "finished": self.finished}

    # the ingest pipeline's Progress protocol
    def start(self, files: int) -> None:
        self.files_total = files

    def file_done(self, source: str, chunks: int) -> None:
        self.files_done += 1

    def embedded(self, chunks: int) -> None:
        self.chunks_embedded += chunks

    def note(self, message: str) -> None:
        self.notes.append(message)


def path_allowed(path: Path, roots: Sequence[str]) -> bool:
    """Whether ``path`` (links resolved) lies inside one of ``roots`` (links resolved)."""
    real = Path(os.path.realpath(path))
    for root in roots:
        base = Path(os.path.realpath(Path(root).expanduser()))
        if real == base or base in real.parents:
            return True
    return False


class ReadWriteLock:
    """Many readers at once, or one writer; a waiting writer goes before new readers."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cv:
            while self._writer or self._writers_waiting:
                self._cv.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cv:
                self._readers -= 1
                self._cv.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cv:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cv.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cv:
                self._writer = False
                self._cv.notify_all()


class Engine:
    """Owns a home's collections and models for the life of the server; every method is thread-safe."""

    def __init__(self, settings: Settings, home: Path, llm: Any = None) -> None:
        self.settings = settings
        self.home = home
        self._llm = llm
        self._own_llm = llm is None
        self._cache_lock = threading.Lock()
        self.worker = ModelWorker()
        self._batched_embedder: BatchedEmbedder | None = None
        self.in_use = ReadWriteLock()  # searches and retrievals read the open searchers; a refresh writes
        self.answering = threading.Lock()
        self._searchers: dict[tuple[str, str | None, bool | None], Searcher] = {}
        self._answerers: dict[tuple[str | None, AnswerOptions], Answerer] = {}
        self._ingest_embedder: Any = None
        self.jobs: dict[str, IngestJob] = {}
        self._queue: list[IngestJob] = []
        self._queue_cv = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closing = False
        self.started = time.time()

    # -- models -------------------------------------------------------------------

    @property
    def llm(self) -> Any:
        """The LLM client (the local llama.cpp server starts on first use, or in :meth:`warm`)."""
        with self._cache_lock:
            if self._llm is None:
                from rag.core.llm import LlmClient

                self._llm = LlmClient(self.settings.llm, self.home)
            return self._llm

    def _private_embedder(self) -> Any:
        """A second instance of the configured embedder (not the process-wide cached one)."""
        from rag.core.embed import get_embedder

        cfg = self.settings.embedding
        return get_embedder.__wrapped__(cfg.model, cfg.device, cfg.batch_size)

    def _share_models(self, searcher: Searcher) -> None:
        """Route a searcher's model calls through the model thread (batched with other requests')."""
        with self._cache_lock:
            if self._batched_embedder is None:
                from rag.core.embed import get_embedder

                cfg = self.settings.embedding
                self._batched_embedder = BatchedEmbedder(
                    get_embedder(cfg.model, cfg.device, cfg.batch_size), self.worker, cfg.query_threads)
        searcher.use_models(self._batched_embedder, lambda reranker: BatchedReranker(reranker, self.worker))

    def warm(self, llm: bool = True) -> list[str]:
        """Load the embedder and reranker, open the collections and start the LLM now: the first request pays nothing.

        Returns notes on what could not be warmed (an unreachable LLM leaves search working; chat
        requests then report the error).
        """
        from rag.core.embed import get_embedder
        from rag.query.rerank import get_reranker

        cfg = self.settings.embedding
        get_embedder(cfg.model, cfg.device, cfg.batch_size)
        if self.settings.rerank.enabled:
            get_reranker(self.settings.rerank)
        if llm and self.settings.answer.checker != "llm":
            from rag.query.verify_model import get_verifier

            get_verifier(self.settings.answer.verifier or None)  # loaded once per process; none: the LLM checks
        for name in list_collections(self.home):
            try:
                self.searcher(name)
            except RagError:  # an empty or unreadable collection is reported when it is searched
                pass
        if llm:
            from rag.core.prompts import WARM_UP

            try:
                self.llm.chat([{"role": "user", "content": WARM_UP}], max_tokens=1)
            except RagError as exc:
                return [f"the LLM did not start ({exc}); search works, chat answers will fail until it does"]
        return []

    # -- collections and search ---------------------------------------------------

    def collections(self) -> list[dict[str, Any]]:
        """Every collection of the home with its description and number of chunks."""
        from rag.core.store import open_store

        out = []
        for name, text in descriptions(self.home).items():
            chunks = None
            try:  # in this process the store is shared with the searchers and a running ingest
                with self._cache_lock:
                    store = open_store(self.settings.store, collection_paths(self.home, name).root, name)
                    try:
                        chunks = store.count()
                    finally:
                        store.close()
            except RagError:
                pass
            out.append({"name": name, "description": text, "chunks": chunks})
        return out

    def require(self, collection: str) -> None:
        """Raise CollectionNotFoundError unless the collection exists (the name is checked too)."""
        collection_paths(self.home, collection)  # validates the name
        if collection not in list_collections(self.home):
            raise CollectionNotFoundError(
                f"collection '{collection}' does not exist under {self.home}; ingest into it first "
                f"(`rag ingest PATH --collection {collection}` or POST /v1/ingest)")

    def searcher(self, collection: str, retriever: str | None = None, rerank: bool | None = None) -> Searcher:
        """The open searcher of a collection (built on first use and kept)."""
        self.require(collection)
        key = (collection, retriever, rerank)
        with self._cache_lock:
            found = self._searchers.get(key)
        if found is not None:
            return found
        built = Searcher(self.settings, self.home, collection, retriever, rerank)
        self._share_models(built)
        with self._cache_lock:
            found = self._searchers.setdefault(key, built)
        if found is not built:  # another request built it meanwhile
            built.close()
        return found

    def search(self, query: str, collection: str = "default", k: int = 10, retriever: str | None = None,
               rerank: bool | None = None, flt: SearchFilter | None = None) -> SearchResult:
        """The top ``k`` chunks of a collection for ``query`` (queued behind other queries on the models)."""
        self._check_open()
        if k < 1 or k > self.settings.serve.max_k:
            raise ConfigError(f"k must be between 1 and {self.settings.serve.max_k} (got {k}); [serve] max_k")
        if not query.strip():
            from rag.query.search import EMPTY_QUERY

            raise ConfigError(EMPTY_QUERY)
        with self.in_use.reading():
            return self.searcher(collection, retriever, rerank).search(query, k, flt)

    # -- answers -------------------------------------------------------------------

    def answerer(self, collection: str | None, options: AnswerOptions = AnswerOptions()) -> Answerer:
        """The kept answerer for a collection (None: routed among the home's collections)."""
        if collection is not None:
            self.require(collection)
        key = (collection, options)
        with self._cache_lock:
            found = self._answerers.get(key)
        if found is not None:
            return found
        llm = self.llm
        answerer = Answerer(answer_settings(self.settings, options), self.home, collection, llm=llm,
                            retriever=options.retriever)
        for s in answerer.searchers.values():
            self._share_models(s)
        with self._cache_lock:
            self._answerers[key] = answerer
        return answerer

    def answer(self, question: str, collection: str | None = None, history: Sequence[tuple[str, str]] = (),
               options: AnswerOptions = AnswerOptions(), on_token: Callable[[str], None] | None = None,
               cancelled: threading.Event | None = None) -> tuple[Answer, str]:
        """Answer the last message of a conversation; earlier turns rewrite it into a standalone query.

        Returns the answer and the query searched. Answers queue for the LLM one at a time; a
        set ``cancelled`` event stops the answer at its next token (the client went away).
        """
        self._check_open()
        if not question.strip():
            raise ConfigError("empty question; send what you want to know as the last user message")
        with self.answering:
            if cancelled is not None and cancelled.is_set():
                raise Cancelled("the client went away before its answer started")
            answerer = self.answerer(collection, options)
            session = ChatSession(answerer)
            session.history = list(history)
            query = session.standalone_query(question)
            with self.in_use.reading():
                evidence = answerer.gather(query)

            def token(delta: str) -> None:
                if cancelled is not None and cancelled.is_set():
                    raise Cancelled("the client went away; its answer was stopped")
                if on_token is not None:
                    on_token(delta)

            return answerer.ask(query, on_token=token, query=query, evidence=evidence), query

    # -- ingest --------------------------------------------------------------------

    def check_ingest_paths(self, paths: Sequence[str], trusted: bool = False) -> list[str]:
        """Absolute, existing paths under ``[serve] ingest_roots`` (any path for a ``trusted`` local client)."""
        if not paths:
            raise ConfigError("nothing to ingest: give at least one folder or file")
        out = []
        for raw in paths:
            path = Path(raw).expanduser()
            if not path.is_absolute():
                raise ConfigError(f"ingest paths must be absolute paths on the server's machine (got {raw!r})")
            if not trusted:
                roots = self.settings.serve.ingest_roots
                if not roots:
                    raise Forbidden("ingest over HTTP is off; list the allowed folders in [serve] ingest_roots")
                if not path_allowed(path, roots):
                    raise Forbidden(f"{raw} is outside the folders [serve] ingest_roots allows")
            if not path.exists():
                raise ConfigError(f"{raw} does not exist on the server's machine")
            out.append(str(path))
        return out

    def start_ingest(self, paths: Sequence[str], collection: str = "default") -> IngestJob:
        """Queue an ingest of checked ``paths``; it runs in the background, one ingest at a time."""
        self._check_open()
        collection_paths(self.home, collection)  # validates the name
        job = IngestJob(uuid.uuid4().hex[:12], collection, tuple(paths))
        with self._queue_cv:
            self.jobs[job.id] = job
            self._queue.append(job)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="rag-ingest", daemon=True)
                self._worker.start()
            self._queue_cv.notify()
        return job

    def _work(self) -> None:
        while True:
            with self._queue_cv:
                while not self._queue and not self._closing:
                    self._queue_cv.wait()
                if not self._queue:
                    return
                job = self._queue.pop(0)
            self._run_job(job)

    def _run_job(self, job: IngestJob) -> None:
        from ingest.pipeline import Ingestor

        job.state = "running"
        try:
            if self._ingest_embedder is None:
                self._ingest_embedder = self._private_embedder()
            ingestor = Ingestor(self.settings, self.home, job.collection, job, embedder=self._ingest_embedder)
            report = ingestor.run(list(job.paths))
            job.report = report.as_dict()
            job.state = "done"
        except RagError as exc:
            job.error, job.state = str(exc), "failed"
        except Exception as exc:  # noqa: BLE001 - a job's failure is reported, the server keeps serving
            job.error, job.state = f"{type(exc).__name__}: {exc}", "failed"
        finally:
            job.finished = time.time()
            self.refresh(job.collection)

    def refresh(self, collection: str) -> None:
        """Rebuild the searchers of a collection on next use (after an ingest changed its files)."""
        with self.answering, self.in_use.writing(), self._cache_lock:
            stale = [k for k in self._searchers if k[0] == collection]
            for key in stale:
                self._searchers.pop(key).close()
            for key in [k for k in self._answerers if k[0] in (collection, None)]:
                self._answerers.pop(key).close_searchers()

    # -- life cycle ----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing:
            raise Busy("the server is shutting down; retry against the next one")

    def close(self, wait_ingest_s: float = 60.0) -> None:
        """Stop taking work, let a running ingest finish (bounded), flush and release the stores, stop the LLM."""
        with self._queue_cv:
            self._closing = True
            for job in self._queue:
                job.state, job.error = "failed", "the server shut down before this ingest started"
            self._queue.clear()
            self._queue_cv.notify_all()
        if self._worker is not None:
            self._worker.join(wait_ingest_s)
        with self.answering, self.in_use.writing(), self._cache_lock:
            for searcher in self._searchers.values():
                searcher.close()
            self._searchers.clear()
            for answerer in self._answerers.values():
                answerer.close_searchers()
            self._answerers.clear()
        self.worker.close()
        if self._own_llm and self._llm is not None:
            self._llm.close()
