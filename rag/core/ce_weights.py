"""Compact cross-encoder weights: only what differs from a base model, in fp16 safetensors.

A reranker fine-tuned from the packaged all-MiniLM-L6-v2 with its word embeddings
frozen differs from that base in about 11M of its 22.7M parameters; stored in fp16
that is ~22 MB instead of 90 MB, small enough to ship inside the repository. The
folder holds ``reranker.safetensors`` and ``rag_reranker.json`` (base model, its
weights' sha256, max length, the recommended score blend and training metadata).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from rag.core.errors import ModelLoadError

META = "rag_reranker.json"
WEIGHTS = "reranker.safetensors"


def is_compact(folder: str | Path, meta_name: str = META) -> bool:
    """Whether ``folder`` holds compact weights (rather than a full model folder)."""
    return (Path(folder) / meta_name).is_file()


def read_meta(folder: str | Path, meta_name: str = META) -> dict[str, Any]:
    """The metadata of a compact cross-encoder folder (``meta_name``: the verifier's differs)."""
    path = Path(folder) / meta_name
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}; rerun `rag tune reranker` to rewrite it") from None
    if not isinstance(meta, dict) or "base" not in meta:
        raise ModelLoadError(f"{path} lacks 'base'; rerun `rag tune reranker` to rewrite it")
    return meta


def _base_digest(base_path: str) -> str | None:
    weights = Path(base_path) / "model.safetensors"
    if not weights.is_file():
        return None
    h = hashlib.sha256()
    with open(weights, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def new_cross_encoder(base: str, max_length: int, seed: int = 13) -> Any:
    """A ``CrossEncoder`` with one output on ``base`` (a hub id, path or 'all-MiniLM-L6-v2'); the head is seeded."""
    import torch

    from rag.core.embed import prepare_offline, resolve_model

    target, offline = resolve_model(base, setting="--base")
    prepare_offline(offline)
    from sentence_transformers import CrossEncoder

    torch.manual_seed(seed)
    quiet = logging.getLogger("sentence_transformers.base.model")  # "Converting SentenceTransformer model ..."
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return CrossEncoder(target, num_labels=1, max_length=max_length, device="cpu")
    finally:
        quiet.setLevel(level)


def save_compact(model: Any, base: str, folder: str | Path, meta: dict[str, Any], weights_name: str = WEIGHTS,
                 meta_name: str = META) -> dict[str, Any]:
    """Write the tensors of ``model`` that differ from a fresh ``base`` cross-encoder, as fp16; returns the meta."""
    import torch
    from safetensors.torch import save_file

    from rag.core.embed import resolve_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    reference = new_cross_encoder(base, model.max_seq_length).state_dict()
    delta = {
        name: tensor.detach().to(torch.float16).contiguous()
        for name, tensor in model.state_dict().items()
        if name not in reference or not torch.equal(tensor, reference[name])
    }
    tmp = folder / f".{weights_name}.tmp"
    save_file(delta, str(tmp))
    tmp.replace(folder / weights_name)
    full = {"base": base, "base_sha256": _base_digest(resolve_model(base)[0]), "max_length": model.max_seq_length,
            "tensors": len(delta), **meta}
    (folder / meta_name).write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    return full


def load_compact(folder: str | Path, max_length: int | None = None, weights_name: str = WEIGHTS,
                 meta_name: str = META) -> tuple[Any, dict[str, Any]]:
    """Rebuild a cross-encoder from its base plus the stored tensors; checks the base is the one trained on."""
    from safetensors.torch import load_file

    from rag.core.embed import resolve_model

    folder = Path(folder)
    meta = read_meta(folder, meta_name)
    base_path = resolve_model(str(meta["base"]), setting="the reranker's base model")[0]
    expected = meta.get("base_sha256")
    if expected and _base_digest(base_path) not in (None, expected):
        raise ModelLoadError(f"{folder}: its base model {meta['base']!r} is not the copy it was trained on "
                             "(weights differ); reinstall that base model or retrain with `rag tune reranker`")
    model = new_cross_encoder(str(meta["base"]), int(max_length or meta.get("max_length") or 256))
    try:
        delta = load_file(str(folder / weights_name))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {folder / weights_name}: {exc}") from None
    state = model.state_dict()
    unknown = [k for k in delta if k not in state]
    if unknown:
        raise ModelLoadError(f"{folder / weights_name} has tensors the base model lacks (first: {unknown[0]}); "
                             "it was made for another base")
    model.load_state_dict({k: v.to(state[k].dtype) for k, v in delta.items()}, strict=False)
    model.eval()
    return model, meta
