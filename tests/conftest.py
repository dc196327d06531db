"""Shared fixtures: a temp home for every test; the packaged MiniLM model and the tiny LLM server, once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rag.core.config import Settings  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def rag_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the data/config home at a fresh temp dir; drop RAG_* overrides from the caller's shell."""
    for name in list(os.environ):
        if name.startswith("RAG_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("RAG_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    """The real packaged all-MiniLM-L6-v2 (loaded once per test session)."""
    from rag.core.embed import get_embedder

    return get_embedder("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """SmolLM2-135M served by a real local llama.cpp server, started once per test session.

    Its answers, rewrites and routes are poor; the HTTP path, streaming and parsing are real.
    """
    from rag.core.config import LlmConfig
    from rag.core.llm import LlmClient

    client = LlmClient(LlmConfig(local_model="smollm2-135m-instruct", threads=1, context_tokens=4096, max_tokens=96),
                       tmp_path_factory.mktemp("llm-home"))
    yield client
    client.close()


@pytest.fixture()
def settings() -> Settings:
    """Default settings with small chunks so tiny fixtures give several chunks."""
    return Settings.model_validate({"chunking": {"chunk_size": 300, "chunk_overlap": 50}})


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Create a file (and its folders)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


@pytest.fixture()
def docs(tmp_path: Path) -> Path:
    """A small folder of real documents in several formats."""
    root = tmp_path / "docs"
    write(
        root / "guide.md",
        "# Watering\n\nWater succulents every two weeks in summer and once a month in winter. "
        "Overwatering rots the roots.\n\n## Signs of thirst\n\nWrinkled leaves mean the plant is thirsty. "
        "Give it a deep soak and let the soil dry out completely.\n\n# Light\n\nMost cacti want four to six "
        "hours of direct sun. A south-facing window is ideal in the northern hemisphere.\n",
    )
    write(
        root / "notes.txt",
        "The ficus lyrata, or fiddle-leaf fig, dislikes being moved. It drops leaves when its position "
        "changes.\n\nRepot it every two years in spring, one size up. Use a chunky, well-draining mix "
        "with bark and perlite.\n\nDust the large leaves monthly so they can photosynthesise.\n",
    )
    write(
        root / "sub" / "pests.html",
        "<html><head><title>Pests</title><script>var x = 1;</script></head><body><nav>Home | About</nav>"
        "<h1>Spider mites</h1><p>Spider mites leave fine webbing under leaves. Wash the plant and raise "
        "humidity.</p><h2>Fungus gnats</h2><p>Fungus gnats breed in wet soil. Let the top layer dry and use "
        "yellow sticky traps.</p></body></html>",
    )
    write(root / ".hidden" / "secret.txt", "this must not be ingested")
    return root
