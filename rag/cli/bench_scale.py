"""``rag bench scale``: how search, memory, disk and re-ingest grow with a collection (no embedding model).

For each size, in a temporary home, three child processes run one after the other:

1. build: a synthetic collection written through the project's own store code (the configured
   ``[store]`` backend and settings): unit vectors around ``clusters`` random centres (so the
   approximate index has real neighbourhoods to find), text drawn at random from a real corpus (a
   folder of documents, or a ``.jsonl`` with a ``text`` field) so the sparse (in-engine BM25) side
   sees a real vocabulary; then the engine's index build (``optimize``), timed; the exact top-10 of
   the queries (NumPy, brute force) is saved;
2. search (once per ``--ef`` value): a fresh process opens the collection, as ``rag ask`` or
   ``rag serve`` would, and times dense / sparse / hybrid searches (hybrid = both searches and the
   project's RRF merge, as the ``hybrid`` retriever runs them); recall@10 of the dense search
   against the exact top-10; its peak RSS is the search's alone;
3. re-ingest: one changed file through the real pipeline (the packaged embedder embeds that file's
   chunks; the rest stays), five changes each in a ``rag ingest`` of its own (the median is the
   row's figure), with the time it takes just to open and close the collection; then five more
   while the collection is held open, as ``rag ingest`` runs through a running ``rag serve`` (the
   engine's open shard is shared: no load, no close).

Rows also give the write rate, the build's peak RSS, the store's size on disk and the load average
while searching (these machines are shared: a busy machine slows every figure).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from rag.core.config import Settings

COLLECTION = "scale"
REINGEST_REPEATS = 5  # changes timed per way of re-ingesting; the row gives their median (one run is noisy)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _progress(message: str) -> None:
    import sys

    print(f"[scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else 0.0


def corpus_texts(path: Path, settings: Settings, limit: int = 20_000) -> list[str]:
    """Chunk texts of a real corpus: a ``.jsonl`` (``text``, and ``title`` when present) or a folder of documents."""
    if path.suffix == ".jsonl":
        out = []
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    row = json.loads(line)
                    text = " ".join(str(row.get(k, "")) for k in ("title", "text")).strip()
                    if text:
                        out.append(text[: settings.chunking.chunk_size])
                if len(out) >= limit:
                    break
        return out
    from rag.cli.bench import _chunk_texts

    return _chunk_texts(path, settings)[:limit]


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def synthetic_vectors(n: int, dims: int, clusters: int, seed: int, start: int = 0, noise: float = 0.35) -> np.ndarray:
    """Rows ``start..start+n`` of a fixed clustered set of unit vectors (the same rows for the same seed)."""
    centres = _unit(np.random.default_rng(seed).standard_normal((clusters, dims)))
    rng = np.random.default_rng(seed + 1 + start)
    which = rng.integers(0, clusters, n)
    return _unit(centres[which] + noise * rng.standard_normal((n, dims)) / np.sqrt(dims) * 4)


def _batches(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(n, start + size)


def _exact_top(vectors_path: Path, n: int, dims: int, queries: np.ndarray, k: int) -> list[list[int]]:
    """Exact top-k rows by cosine (brute force over the memory-mapped vectors, in blocks)."""
    data = np.memmap(vectors_path, dtype=np.float32, mode="r", shape=(n, dims))
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), k), dtype=np.int64)
    for start, end in _batches(n, 100_000):
        scores = queries @ np.asarray(data[start:end]).T
        cand_s = np.concatenate([best_s, scores], axis=1)
        cand_i = np.concatenate([best_i, np.arange(start, end)[None, :].repeat(len(queries), 0)], axis=1)
        top = np.argpartition(-cand_s, k - 1, axis=1)[:, :k]
        best_s = np.take_along_axis(cand_s, top, 1)
        best_i = np.take_along_axis(cand_i, top, 1)
    order = np.argsort(-best_s, axis=1)
    return np.take_along_axis(best_i, order, 1).tolist()


def _point_id(i: int) -> str:
    from rag.core.store import point_uuid

    return point_uuid(f"scale\x00{i}")


def _store_settings(settings: Settings, ef: int | None) -> Settings:
    return settings if ef is None else settings.model_copy(
        update={"store": settings.store.model_copy(update={"hnsw_ef": ef})})


def build_size(n: int, settings: Settings, corpus: list[str], work: Path, queries: int = 200, k: int = 10,
               clusters: int = 1000, seed: int = 7) -> dict[str, Any]:
    """Write ``n`` synthetic chunks under ``work``, build the engine's index, and save the queries with their exact top-k."""
    from rag.core.home import collection_paths
    from rag.core.lexical import Analyzer, bm25_document_weights
    from rag.core.store import StoredPoint, open_store

    dims = 384
    paths = collection_paths(work / "home", COLLECTION)
    paths.root.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.store, paths.root, COLLECTION)
    store.create(dims)
    analyzer = Analyzer(settings.bm25.language, settings.bm25.stopwords)
    tokens = [analyzer.tokens(t) for t in corpus]
    avgdl = float(np.mean([len(t) for t in tokens])) or 1.0
    sparse = [bm25_document_weights(t, avgdl, settings.bm25.k1, settings.bm25.b) for t in tokens]
    rng = np.random.default_rng(seed)
    vectors_path = work / "vectors.f32"
    t0 = time.perf_counter()
    with open(vectors_path, "wb") as raw:
        for start, end in _batches(n, 2_000):
            vectors = synthetic_vectors(end - start, dims, clusters, seed, start)
            raw.write(vectors.tobytes())
            which = rng.integers(0, len(corpus), end - start)
            store.upsert([
                StoredPoint(_point_id(start + j), vectors[j].tolist(), sparse[w][0], sparse[w][1],
                            {"text": corpus[w], "source": f"/synthetic/doc{(start + j) // 20}.txt", "file_type": "txt",
                             "chunk_index": (start + j) % 20, "start": 0, "end": len(corpus[w]), "version": "v1"})
                for j, w in enumerate(which)])
            if end % 100_000 == 0:
                _progress(f"{n:,}: {end:,} written ({end / (time.perf_counter() - t0):,.0f} points/s)")
    store.flush()
    write_s = time.perf_counter() - t0
    _progress(f"{n:,}: written in {write_s:,.0f} s; building the index")
    t1 = time.perf_counter()
    store.optimize()
    optimize_s = time.perf_counter() - t1
    store.close()
    _progress(f"{n:,}: index built in {optimize_s:,.0f} s")
    query_vectors = synthetic_vectors(queries, dims, clusters, seed, 10**9)  # around the same centres
    query_texts = [" ".join(corpus[int(i)].split()[:8]) for i in rng.integers(0, len(corpus), queries)]
    exact = _exact_top(vectors_path, n, dims, query_vectors, k)
    vectors_path.unlink()
    (work / "queries.json").write_text(json.dumps(
        {"vectors": query_vectors.tolist(), "texts": query_texts, "exact": exact, "avgdl": avgdl}))
    disk_mb = sum(f.stat().st_size for f in (paths.root / "qdrant").rglob("*") if f.is_file()) / 1e6 \
        if (paths.root / "qdrant").exists() else None
    return {"chunks": n, "write_points_per_s": round(n / write_s, 1), "write_seconds": round(write_s, 1),
            "index_build_seconds": round(optimize_s, 1), "build_peak_rss_mb": round(_peak_rss_mb(), 1),
            "disk_mb": None if disk_mb is None else round(disk_mb, 1)}


def search_size(settings: Settings, work: Path, k: int = 10) -> dict[str, Any]:
    """Open the collection in this (fresh) process and time dense, sparse and hybrid searches; recall vs exact."""
    from rag.core.home import collection_paths
    from rag.core.lexical import Analyzer, query_weights
    from rag.core.records import ScoredChunk
    from rag.core.store import open_store
    from rag.query.merge import merge

    saved = json.loads((work / "queries.json").read_text())
    analyzer = Analyzer(settings.bm25.language, settings.bm25.stopwords)
    paths = collection_paths(work / "home", COLLECTION)
    t_open = time.perf_counter()
    store = open_store(settings.store, paths.root, COLLECTION)
    store.count()
    open_s = time.perf_counter() - t_open
    load_before = os.getloadavg()[0]
    dense_ms, sparse_ms, hybrid_ms, recall = [], [], [], []
    try:
        for vector, text, exact in zip(saved["vectors"], saved["texts"], saved["exact"]):
            a = time.perf_counter()
            hits = store.search_dense(vector, k)
            b = time.perf_counter()
            qi, qv = query_weights(analyzer.tokens(text))
            store.search_sparse(qi, qv, k)
            c = time.perf_counter()
            depth = settings.retrieval.candidates
            rankings = {}
            for name, found in (("dense", store.search_dense(vector, depth)), ("sparse", store.search_sparse(qi, qv, depth))):
                rankings[name] = [ScoredChunk(chunk_id=h.id, text=str(h.payload.get("text", "")), source="",
                                              score=h.score, scores={name: h.score}, ranks={name: r})
                                  for r, h in enumerate(found, 1)]
            merge(rankings, settings.retrieval.weights, settings.retrieval.fusion, settings.retrieval.rrf_k)[:k]
            d = time.perf_counter()
            dense_ms.append((b - a) * 1000)
            sparse_ms.append((c - b) * 1000)
            hybrid_ms.append((d - c) * 1000)
            recall.append(len({_point_id(i) for i in exact} & {h.id for h in hits}) / k)
    finally:
        store.close()
    return {
        "hnsw_ef": settings.store.hnsw_ef, "open_seconds": round(open_s, 2),
        "dense_p50_ms": round(_percentile(dense_ms, 50), 2), "dense_p95_ms": round(_percentile(dense_ms, 95), 2),
        "sparse_p50_ms": round(_percentile(sparse_ms, 50), 2), "sparse_p95_ms": round(_percentile(sparse_ms, 95), 2),
        "hybrid_p50_ms": round(_percentile(hybrid_ms, 50), 2), "hybrid_p95_ms": round(_percentile(hybrid_ms, 95), 2),
        "recall_at_10_vs_exact": round(float(np.mean(recall)), 4), "search_peak_rss_mb": round(_peak_rss_mb(), 1),
        "load_avg_search": round((load_before + os.getloadavg()[0]) / 2, 2),
    }


def reingest_size(settings: Settings, corpus: list[str], work: Path, embedder: Any = None) -> dict[str, Any]:
    """Re-ingest one changed file with the real pipeline next to the synthetic chunks, and index that change."""
    from ingest.pipeline import Ingestor
    from rag.core.bm25 import GENERATION
    from rag.core.home import collection_paths
    from rag.core.manifest import Manifest
    from rag.core.store import open_store

    home = work / "home"
    paths = collection_paths(home, COLLECTION)
    avgdl = json.loads((work / "queries.json").read_text())["avgdl"]
    manifest = Manifest(paths.manifest)
    try:
        manifest.set_meta({"embedding_model": settings.embedding.model, "dimensions": "384",
                           "avgdl": str(round(avgdl, 3)), GENERATION: "1"})
    finally:
        manifest.close()
    docs = work / "docs"
    docs.mkdir(exist_ok=True)
    changed = docs / "changed.txt"
    versions = iter(range(1, 10_000))

    def change() -> None:  # the file's next version: six other texts of the corpus
        i = next(versions) * 6
        changed.write_text("\n\n".join(corpus[(i + j) % len(corpus)] for j in range(6)), encoding="utf-8")

    changed.write_text("\n\n".join(corpus[:6]), encoding="utf-8")
    Ingestor(settings, home, COLLECTION, embedder=embedder).run([docs])
    t_open = time.perf_counter()  # what opening and closing the collection costs (part of every command)
    opened = open_store(settings.store, paths.root, COLLECTION)
    opened.count()
    opened.close()
    open_s = time.perf_counter() - t_open
    cold: list[float] = []
    for _ in range(REINGEST_REPEATS):  # each change in its own `rag ingest`: the collection opened and closed
        change()
        t2 = time.perf_counter()
        report = Ingestor(settings, home, COLLECTION, embedder=embedder).run([docs])
        cold.append(round(time.perf_counter() - t2, 2))
    store = open_store(settings.store, paths.root, COLLECTION)  # what indexing the change costs the engine
    resident: list[float] = []
    try:
        t3 = time.perf_counter()
        store.optimize()
        optimize_change_s = time.perf_counter() - t3
        # The same kind of change while the collection is held open, as in `rag serve` (its searchers hold
        # the shard; an ingest job there opens the same one, so it pays neither the load nor the close).
        store.count()
        for _ in range(REINGEST_REPEATS):
            change()
            t4 = time.perf_counter()
            again = Ingestor(settings, home, COLLECTION, embedder=embedder).run([docs])
            resident.append(round(time.perf_counter() - t4, 2))
    finally:
        store.close()
    return {"reingest_one_file_seconds": float(np.median(cold)), "reingest_runs_seconds": cold,
            "open_close_seconds": round(open_s, 2),
            "reingest_resident_seconds": float(np.median(resident)), "reingest_resident_runs_seconds": resident,
            "reingest_resident_chunks_embedded": again.chunks_embedded,
            "reingest_chunks_embedded": report.chunks_embedded, "reingest_bm25_rebuilt": report.bm25_rebuilt,
            "index_after_change_seconds": round(optimize_change_s, 2)}


def _build_child(n: int, settings_json: str, corpus: list[str], work: str, queries: int) -> dict[str, Any]:
    return build_size(n, Settings.model_validate_json(settings_json), corpus, Path(work), queries=queries)


def _search_child(settings_json: str, work: str) -> dict[str, Any]:
    return search_size(Settings.model_validate_json(settings_json), Path(work))


def _reingest_child(settings_json: str, corpus: list[str], work: str) -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = Settings.model_validate_json(settings_json)
    from rag.core.embed import get_embedder

    cfg = settings.embedding
    return reingest_size(settings, corpus, Path(work), get_embedder(cfg.model, cfg.device, cfg.batch_size))


def run_size(n: int, settings: Settings, corpus: list[str], work: Path, queries: int = 200,
             efs: Sequence[int | None] = (None,)) -> dict[str, Any]:
    """Build, search (once per ``efs`` value, each in a fresh process: its peak RSS is the search's) and re-ingest."""
    import multiprocessing

    def child(fn: Any, *args: Any) -> dict[str, Any]:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            return pool.apply(fn, args)

    row = child(_build_child, n, settings.model_dump_json(), corpus, str(work), queries)
    searches = []
    for ef in efs:
        _progress(f"{n:,}: searching" + ("" if ef is None else f" with hnsw_ef {ef}"))
        searches.append(child(_search_child, _store_settings(settings, ef).model_dump_json(), str(work)))
    _progress(f"{n:,}: re-ingesting one file")
    row.update(searches[0])
    if len(searches) > 1:
        row["by_hnsw_ef"] = searches
    row.update(child(_reingest_child, settings.model_dump_json(), corpus, str(work)))
    row["peak_rss_mb"] = max(row["build_peak_rss_mb"], *(s["search_peak_rss_mb"] for s in searches))
    return row


def bench_scale(sizes: Sequence[int], corpus_path: Path, settings: Settings, queries: int = 200,
                work: Path | None = None, efs: Sequence[int] = ()) -> dict[str, Any]:
    """Measure every size (each phase in a child process of its own) and collect the rows."""
    corpus = corpus_texts(corpus_path, settings)
    if not corpus:
        from rag.core.errors import ConfigError

        raise ConfigError(f"no text found in {corpus_path}; give a folder of documents or a .jsonl with a text field")
    rows = []
    base = Path(tempfile.mkdtemp(prefix="rag-scale-", dir=work))
    try:
        for n in sizes:
            folder = base / f"n{n}"
            folder.mkdir()
            rows.append(run_size(n, settings, corpus, folder, queries, tuple(efs) or (None,)))
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    store = settings.store
    return {"corpus": str(corpus_path), "corpus_chunks": len(corpus), "queries": queries, "backend": store.backend,
            "store_settings": {k: v for k, v in store.model_dump().items()
                               if v is not None and k not in ("url", "api_key_env", "collection_prefix", "timeout_s")},
            "cpu_count": os.cpu_count(), "sizes": rows}
