"""Cross-encoder reranking of the top fused results (sentence-transformers ``CrossEncoder``).

The model is ``[rerank] model`` (a hub id or a local path). Left empty, the
reranker shipped with rag (``rag/models/reranker``, compact weights over the packaged
MiniLM, see rag.core.ce_weights) is used when present, else the usual hub model
``cross-encoder/ms-marco-MiniLM-L-6-v2``. When no cross-encoder can be loaded
(for example offline without a cached copy), search says so once and keeps the
fused order instead of failing.

The final score blends the two signals: ``blend`` x z(cross-encoder) + (1 - blend) x
z(fused), z-scores taken over the reranked results. ``[rerank] blend`` sets it; left
empty, a model trained by ``rag tune reranker`` brings the value chosen on its
held-out questions, and any other model gets 1 (cross-encoder only).
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from rag.core.config import RerankConfig
from rag.core.errors import ModelLoadError
from rag.query.retrieve import ScoredChunk
from rag.core.threads import torch_threads

RERANK = "rerank"
HUB_DEFAULT = "cross-encoder/ms-marco-MiniLM-L-6-v2"
SHIPPED = Path(__file__).resolve().parents[1] / "models" / "reranker"


def default_model() -> str:
    """The shipped reranker's folder if present, else the usual hub cross-encoder id."""
    from rag.core.ce_weights import is_compact

    return str(SHIPPED) if is_compact(SHIPPED) or (SHIPPED / "config.json").exists() else HUB_DEFAULT


def _zscore(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    sd = arr.std()
    return (arr - arr.mean()) / sd if sd > 0 else np.zeros_like(arr)


def blended(fused: Sequence[float], ce: Sequence[float], blend: float) -> np.ndarray:
    """``blend`` x z(cross-encoder) + (1 - blend) x z(fused hybrid): the reranked order's score."""
    if blend >= 1.0:
        return np.asarray(ce, dtype=np.float64)
    return blend * _zscore(ce) + (1.0 - blend) * _zscore(fused)


class Reranker:
    """A loaded cross-encoder that scores (query, passage) pairs."""

    def __init__(
        self, model: str, batch_size: int = 32, device: str = "cpu", max_length: int = 256, threads: int = 0,
        blend: float | None = None,
    ) -> None:
        from rag.core.ce_weights import is_compact, load_compact
        from rag.core.embed import prepare_offline, resolve_model

        target, offline = resolve_model(model, setting="[rerank] model")
        prepare_offline(offline)
        recommended = 1.0
        try:
            if is_compact(target):
                self.model, meta = load_compact(target, max_length)
                recommended = float(meta.get("blend", 1.0))
            else:
                import torch
                from sentence_transformers import CrossEncoder

                with torch.random.fork_rng():  # a model without a trained head gets the same head every time
                    torch.manual_seed(0)
                    self.model = CrossEncoder(target, device=device, max_length=max_length)
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - any loader failure becomes one clear message
            raise ModelLoadError(
                f"cannot load cross-encoder {model!r}: {type(exc).__name__}: {exc}; set [rerank] model"
            ) from None
        self.name = model
        self.batch_size = batch_size
        self.threads = threads
        self.blend = recommended if blend is None else blend

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        """Relevance score of each text for the query (higher is better)."""
        return self.score_pairs([(query, t) for t in texts])

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Relevance score of each (query, text) pair; the queries may differ (one call for many searches)."""
        if not pairs:
            return []
        with torch_threads(self.threads):
            out = self.model.predict(list(pairs), batch_size=self.batch_size, show_progress_bar=False)
        return [float(x) for x in out]

    def rerank(self, query: str, chunks: Sequence[ScoredChunk], top_n: int,
               scored: Sequence[float] | None = None) -> list[ScoredChunk]:
        """Reorder the first ``top_n`` chunks by (blended) cross-encoder score; the rest keep their order below.

        ``scored``: this model's scores of those chunks when already computed (e.g. to compare blends).
        """
        head, tail = list(chunks[:top_n]), list(chunks[top_n:])
        scored = list(scored) if scored is not None else self.scores(query, [c.text for c in head])
        if len(scored) != len(head):
            raise ValueError(f"{len(scored)} precomputed scores for {len(head)} chunks")
        final = [float(x) for x in blended([c.score for c in head], scored, self.blend)] if head else []
        order = sorted(range(len(head)), key=lambda i: (-final[i], i))
        reranked = [
            replace(
                head[i],
                score=final[i],
                scores={**head[i].scores, RERANK: scored[i]},
                ranks={**head[i].ranks, RERANK: rank},
            )
            for rank, i in enumerate(order, 1)
        ]
        return reranked + tail


@lru_cache(maxsize=4)
def _load(model: str, batch_size: int, max_length: int, threads: int, blend: float | None) -> Reranker | str:
    try:
        return Reranker(model, batch_size, max_length=max_length, threads=threads, blend=blend)
    except ModelLoadError as exc:
        return str(exc)


def get_reranker(config: RerankConfig) -> tuple[Reranker | None, str | None]:
    """The configured reranker, or (None, why) when none can be loaded; loads once per process."""
    loaded = _load(config.model or default_model(), config.batch_size, config.max_length, config.threads, config.blend)
    if isinstance(loaded, str):
        return None, f"{loaded}; results keep the fused order (no reranking)"
    return loaded, None
