"""One thread owns the shared models; calls queued by many requests run as one batched call.

Why: the embedder and the reranker cannot serve two threads at once (a Hugging Face fast
tokenizer shared between threads fails with "Already borrowed"), and on a CPU one call over
eight queries costs much less than eight calls (fixed per-call costs, bigger matrix products).
So every request thread hands its model work to :class:`ModelWorker` and waits; the worker takes
whatever has queued while it was busy and runs each kind of work as one call. Nothing waits for
a batch to fill: a lone request runs at once, and batches form only under load.

Everything else a search does (the store's dense and sparse searches, BM25 scoring, fusion)
runs on the request threads, concurrently.
"""

from __future__ import annotations

import copy
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Sequence, TypeVar

import numpy as np

from rag.core.embed import EmbedderInfo
from rag.core.records import ScoredChunk
from rag.core.threads import torch_threads

Item = TypeVar("Item")
Out = TypeVar("Out")


@dataclass(eq=False)
class _Job(Generic[Item, Out]):
    run: Callable[[list[Item]], list[Out]]
    item: Item
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class ModelWorker:
    """A thread that runs queued model calls, batching the calls of one kind that queued together.

    ``submit(run, item)`` blocks until ``run([.., item, ..])`` has run on the worker thread and
    returns that item's result; ``run`` gets every queued item of its kind (the same function) in
    order and must return one result per item. An exception in ``run`` is raised in the thread of
    every caller of that batch. ``max_batch`` bounds how many items one call takes.
    """

    def __init__(self, max_batch: int = 64, name: str = "rag-models") -> None:
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job[Any, Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._name = name
        self.calls = 0  # model calls made (each serves one batch)
        self.items = 0  # items served

    def submit(self, run: Callable[[list[Item]], list[Out]], item: Item) -> Out:
        """Run ``item`` through ``run`` on the worker (batched with others queued meanwhile)."""
        if threading.current_thread() is self._thread:  # a batch function that needs a model itself
            return run([item])[0]
        self._ensure_started()
        job: _Job[Item, Out] = _Job(run, item)
        self._queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the worker after the calls already queued."""
        with self._start_lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join(30)
                self._thread = None

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        pending: list[_Job[Any, Any]] = []
        while True:
            if not pending:
                first = self._queue.get()
                if first is None:
                    return
                pending.append(first)
            stop = False
            while True:  # take what queued while the last batch ran; never wait for more
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                pending.append(job)
            run = pending[0].run
            batch = [j for j in pending if j.run == run][: self.max_batch]
            taken = set(map(id, batch))
            pending = [j for j in pending if id(j) not in taken]
            self._run(run, batch)
            if stop:
                for job in pending:
                    self._run(job.run, [job])
                return

    def _run(self, run: Callable[[list[Any]], list[Any]], batch: list[_Job[Any, Any]]) -> None:
        try:
            results = run([j.item for j in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} items returned {len(results)} results")
            for job, result in zip(batch, results):
                job.result = result
        except BaseException as exc:  # noqa: BLE001 - raised again in each caller's thread
            for job in batch:
                job.error = exc
        finally:
            self.calls += 1
            self.items += len(batch)
            for job in batch:
                job.done.set()


class BatchedEmbedder:
    """An :class:`Embedder` whose ``embed`` calls run on a :class:`ModelWorker`, batched across requests.

    ``count_tokens`` runs on the caller's thread with a tokenizer copy of its own (it is cheap, and a
    tokenizer must not be shared between threads).
    """

    def __init__(self, inner: Any, worker: ModelWorker, threads: int = 0) -> None:
        self.inner = inner
        self.worker = worker
        self.threads = threads
        self._local = threading.local()

    @property
    def info(self) -> EmbedderInfo:
        return self.inner.info  # type: ignore[no-any-return]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.worker.submit(self._embed_many, tuple(texts))

    def _embed_many(self, items: list[tuple[str, ...]]) -> list[np.ndarray]:
        flat = [t for item in items for t in item]
        with torch_threads(self.threads):
            vectors = self.inner.embed(flat)
        out, at = [], 0
        for item in items:
            out.append(vectors[at: at + len(item)])
            at += len(item)
        return out

    def count_tokens(self, text: str) -> int:
        tokenizer = getattr(self._local, "tokenizer", None)
        if tokenizer is None:  # copied on the worker, while nothing else uses the shared one
            tokenizer = self._local.tokenizer = self.worker.submit(self._copy_tokenizer, None)
        return len(tokenizer(text, add_special_tokens=True)["input_ids"])

    def _copy_tokenizer(self, items: list[None]) -> list[Any]:
        return [copy.deepcopy(self.inner.model.tokenizer) for _ in items]


class BatchedReranker:
    """A reranker whose cross-encoder calls run on a :class:`ModelWorker`, pairs of many queries in one call."""

    def __init__(self, inner: Any, worker: ModelWorker) -> None:
        self.inner = inner
        self.worker = worker

    def __getattr__(self, name: str) -> Any:  # name, blend, threads... of the wrapped reranker
        return getattr(self.inner, name)

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        return self.worker.submit(self._score_many, (query, tuple(texts)))

    def _score_many(self, items: list[tuple[str, tuple[str, ...]]]) -> list[list[float]]:
        flat = [text for _, texts in items for text in texts]
        queries = [query for query, texts in items for _ in texts]
        scores = self.inner.score_pairs(list(zip(queries, flat)))
        out, at = [], 0
        for _, texts in items:
            out.append(scores[at: at + len(texts)])
            at += len(texts)
        return out

    def rerank(self, query: str, chunks: Sequence[ScoredChunk], top_n: int,
               scored: Sequence[float] | None = None) -> list[ScoredChunk]:
        if scored is None:
            scored = self.scores(query, [c.text for c in chunks[:top_n]])
        return self.inner.rerank(query, chunks, top_n, scored)  # type: ignore[no-any-return]
