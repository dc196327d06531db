"""Cross-encoder reranking of the top fused results (sentence-transformers ``CrossEncoder``).

The model is ``[rerank] model`` (a hub id or a local path). Left empty, the
reranker shipped with rag is used when present, else the usual hub model
``cross-encoder/ms-marco-MiniLM-L-6-v2``. When no cross-encoder can be loaded
(for example offline without a cached copy), search says so once and keeps the
fused order instead of failing.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from rag.config import RerankConfig
from rag.errors import ModelLoadError
from rag.retrieve import ScoredChunk

RERANK = "rerank"
HUB_DEFAULT = "cross-encoder/ms-marco-MiniLM-L-6-v2"
SHIPPED = Path(__file__).resolve().parent / "models" / "reranker"


def default_model() -> str:
    """The shipped reranker's folder if present, else the usual hub cross-encoder id."""
    return str(SHIPPED) if (SHIPPED / "config.json").exists() else HUB_DEFAULT


class Reranker:
    """A loaded cross-encoder that scores (query, passage) pairs."""

    def __init__(
        self, model: str, batch_size: int = 32, device: str = "cpu", max_length: int = 256, threads: int = 0
    ) -> None:
        from rag.embed import prepare_offline, resolve_model

        target, offline = resolve_model(model, setting="[rerank] model")
        prepare_offline(offline)
        try:
            from sentence_transformers import CrossEncoder

            self.model: Any = CrossEncoder(target, device=device, max_length=max_length)
        except Exception as exc:  # noqa: BLE001 - any loader failure becomes one clear message
            raise ModelLoadError(
                f"cannot load cross-encoder {model!r}: {type(exc).__name__}: {exc}; set [rerank] model"
            ) from None
        self.name = model
        self.batch_size = batch_size
        self.threads = threads

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        """Relevance score of each text for the query (higher is better)."""
        if not texts:
            return []
        import torch

        previous = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            out = self.model.predict([(query, t) for t in texts], batch_size=self.batch_size, show_progress_bar=False)
        finally:
            torch.set_num_threads(previous)
        return [float(x) for x in out]

    def rerank(self, query: str, chunks: Sequence[ScoredChunk], top_n: int) -> list[ScoredChunk]:
        """Reorder the first ``top_n`` chunks by cross-encoder score; the rest keep their order below them."""
        head, tail = list(chunks[:top_n]), list(chunks[top_n:])
        scored = self.scores(query, [c.text for c in head])
        order = sorted(range(len(head)), key=lambda i: (-scored[i], i))
        reranked = [
            replace(
                head[i],
                score=scored[i],
                scores={**head[i].scores, RERANK: scored[i]},
                ranks={**head[i].ranks, RERANK: rank},
            )
            for rank, i in enumerate(order, 1)
        ]
        return reranked + tail


@lru_cache(maxsize=4)
def _load(model: str, batch_size: int, max_length: int, threads: int) -> Reranker | str:
    try:
        return Reranker(model, batch_size, max_length=max_length, threads=threads)
    except ModelLoadError as exc:
        return str(exc)


def get_reranker(config: RerankConfig) -> tuple[Reranker | None, str | None]:
    """The configured reranker, or (None, why) when none can be loaded; loads once per process."""
    loaded = _load(config.model or default_model(), config.batch_size, config.max_length, config.threads)
    if isinstance(loaded, str):
        return None, f"{loaded}; results keep the fused order (no reranking)"
    return loaded, None
