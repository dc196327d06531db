"""The embedding model: the packaged default loads offline; a missing model fails with the setting to change."""

from __future__ import annotations

import numpy as np
import pytest

from rag.core.embed import resolve_model
from rag.core.errors import ModelLoadError


def test_packaged_default_embeds(embedder) -> None:  # type: ignore[no-untyped-def]
    vectors = embedder.embed(["Water succulents every two weeks.", "Spider mites leave webbing."])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.info.max_seq_length == 256


def test_missing_local_path_names_the_setting(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelLoadError, match=r"does not exist; set \[embedding\] model"):
        resolve_model(str(tmp_path / "no-model"))


def test_unreachable_hub_id_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=r"hub is unreachable; set \[embedding\] model"):
        resolve_model("someone/not-a-cached-model")
