"""``rag bench ingest``: pipeline throughput against the embedding model's raw speed."""

from __future__ import annotations

import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from rag.core.config import Settings, StoreConfig


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _chunk_texts(folder: Path, settings: Settings) -> list[str]:
    """The chunk texts the pipeline will embed (same discovery, loaders and chunker)."""
    from ingest.chunk import ChunkSettings, chunk_document
    from ingest.discover import discover
    from ingest.load import load_document
    from rag.core.errors import LoadError

    cfg = settings.ingest
    found = discover([folder], cfg.ignore_file, cfg.follow_symlinks, int(cfg.max_file_mb * 1_000_000))
    chunking = ChunkSettings(settings.chunking.chunk_size, settings.chunking.chunk_overlap)
    texts: list[str] = []
    for f in found.files:
        try:
            texts.extend(c.text for c in chunk_document(load_document(f.path, f.source), chunking))
        except LoadError:
            continue
    return texts


def bench_ingest(folder: Path, settings: Settings) -> dict[str, Any]:
    """Ingest ``folder`` into a temporary embedded store and encode the same chunk texts raw.

    The raw baseline is split in two halves, timed just before and just after the
    pipeline, so a machine that gets busier or quieter during the run affects both
    sides alike. Model loading is excluded from both (the model is loaded and warmed first).
    """
    from ingest.pipeline import Ingestor
    from rag.core.embed import get_embedder

    cfg = settings.embedding
    bench_settings = settings.model_copy(update={"store": StoreConfig()})
    rss_before = _peak_rss_mb()
    embedder = get_embedder(cfg.model, cfg.device, cfg.batch_size)
    embedder.embed(["warm-up sentence"] * 8)
    texts = _chunk_texts(folder, bench_settings)

    def raw(part: list[str]) -> float:
        t = time.perf_counter()
        embedder.model.encode(
            part, batch_size=cfg.batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )
        return time.perf_counter() - t

    raw_first = raw(texts[0::2])
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        t0 = time.perf_counter()
        report = Ingestor(bench_settings, Path(tmp), "bench", embedder=embedder).run([folder])
        pipeline_s = time.perf_counter() - t0
        rss_pipeline = _peak_rss_mb()
    raw_s = raw_first + raw(texts[1::2])
    pipeline_cps = report.chunks_embedded / pipeline_s if pipeline_s else 0.0
    raw_cps = len(texts) / raw_s if raw_s else 0.0
    return {
        "folder": str(folder),
        "files": report.files_added,
        "files_failed": len(report.files_failed),
        "chunks": report.chunks_total,
        "chunks_embedded": report.chunks_embedded,
        "pipeline_seconds": round(pipeline_s, 2),
        "pipeline_chunks_per_s": round(pipeline_cps, 1),
        "raw_encode_seconds": round(raw_s, 2),
        "raw_encode_chunks_per_s": round(raw_cps, 1),
        "ratio": round(pipeline_cps / raw_cps, 3) if raw_cps else None,
        "peak_rss_mb": round(rss_pipeline, 1),
        "rss_before_model_mb": round(rss_before, 1),
        "model": cfg.model,
        "batch_size": cfg.batch_size,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
