"""Configuration: TOML file, environment overrides, and errors that name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.core.config import default_config_toml, load_settings, resolve_home
from rag.core.errors import ConfigError


def test_defaults_without_file(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    assert settings.store.backend == "edge"
    assert settings.embedding.model == "all-MiniLM-L6-v2"


def test_file_and_env_override(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[chunking]\nchunk_size = 500\n[store]\nbackend = "qdrant"\n')
    settings = load_settings(tmp_path, environ={"RAG_STORE_URL": "http://db:6333", "RAG_CHUNKING_CHUNK_SIZE": "700"})
    assert settings.chunking.chunk_size == 700
    assert settings.store.backend == "qdrant"
    assert settings.store.url == "http://db:6333"


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[chunking]\nchunk_sise = 500\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'chunking.chunk_sise'"):
        load_settings(tmp_path, environ={})


def test_unknown_section_is_named(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[chunkin]\nchunk_size = 500\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'chunkin'"):
        load_settings(tmp_path, environ={})


def test_unknown_env_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RAG_STORE_URI"):
        load_settings(tmp_path, environ={"RAG_STORE_URI": "x"})


def test_invalid_values(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[chunking]\nchunk_size = 100\nchunk_overlap = 100\n")
    with pytest.raises(ConfigError, match="chunk_overlap"):
        load_settings(tmp_path, environ={})
    (tmp_path / "config.toml").write_text('[store]\nbackend = "pinecone"\n')
    with pytest.raises(ConfigError, match="store.backend"):
        load_settings(tmp_path, environ={})


def test_broken_toml(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[chunking\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_settings(tmp_path, environ={})


def test_generated_config_round_trips(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(default_config_toml())
    assert load_settings(tmp_path, environ={}) == load_settings(tmp_path / "none", environ={})


def test_home_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_home(tmp_path) == tmp_path.resolve()
    monkeypatch.setenv("RAG_HOME", str(tmp_path / "h"))
    assert resolve_home(None) == (tmp_path / "h").resolve()
    monkeypatch.delenv("RAG_HOME")
    assert resolve_home(None) == (Path.home() / ".local/share/rag").resolve()
