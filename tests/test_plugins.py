"""A real third-party retriever plugin (tests/plugin_example), installed with pip into a temp dir.

The package registers two entry points in ``rag.retrievers``: ``keyword`` (works) and
``broken`` (raises ImportError at import). It is never installed into the venv: the
``rag`` subprocesses see it through PYTHONPATH, the in-process tests through sys.path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pytest

import tests.conftest as conftest
from rag.core.errors import RagError
from rag.query.retrieve import PluginFailure, Retriever, RetrieverContext, discover_retrievers, make_retriever
from plugins.contract import RetrieverContract
from tests.test_retriever_contract import build_collection

EXAMPLE = Path(__file__).resolve().parent / "plugin_example"
BROKEN_ERROR = "ImportError: example of a broken plugin"


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package pip-installed (offline, no deps) into a temp target dir."""
    root = tmp_path_factory.mktemp("plugin")
    src = root / "src"  # build from a copy: setuptools writes build/ and *.egg-info beside the sources
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = root / "site"
    cmd = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-index", "--no-deps", "--no-build-isolation", "--target", str(target), str(src),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (target / "rag_example_retriever.py").exists()
    return target


@pytest.fixture(scope="module")
def on_path(plugin_dir: Path) -> Iterator[ModuleType]:
    """The install dir on sys.path for this module's tests; yields the imported ``keyword`` module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(plugin_dir))
        import rag_example_retriever  # type: ignore[import-not-found]

        try:
            yield rag_example_retriever
        finally:
            sys.modules.pop("rag_example_retriever", None)
            sys.modules.pop("rag_example_broken", None)


# -- in-process -----------------------------------------------------------------------------------


def test_discovery_reports_broken_and_keeps_the_rest(on_path: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """The broken plugin is reported by name; keyword and the built-ins still load."""
    factories, failures = discover_retrievers()
    assert {"dense", "bm25", "sparse", "hybrid", "keyword"} <= set(factories)
    assert factories["keyword"] is on_path.factory
    assert failures == [PluginFailure("broken", BROKEN_ERROR)]

    monkeypatch.setenv("RAG_RETRIEVERS", "keyword")  # the broken plugin is then not even imported
    factories, failures = discover_retrievers()
    assert set(factories) == {"dense", "bm25", "sparse", "hybrid", "keyword"} and failures == []


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[RetrieverContext]:
    """The conftest ``docs`` folder ingested in-process (for the contract)."""
    yield from build_collection(tmp_path_factory, embedder)


def test_make_retriever_broken_names_it(on_path: ModuleType, collection: RetrieverContext) -> None:
    """Asking for the broken plugin is a RagError naming it and its error."""
    with pytest.raises(RagError, match=r"'broken' failed to load: ImportError: example of a broken plugin"):
        make_retriever("broken", collection)


class TestKeywordContract(RetrieverContract):
    """The example plugin passes the same contract as the built-ins."""

    @pytest.fixture()
    def retriever(self, on_path: ModuleType, collection: RetrieverContext) -> Retriever:
        return make_retriever("keyword", collection)

    @pytest.fixture()
    def contract_queries(self) -> list[str]:
        return ["water succulents every two weeks", "spider mites", "the leaves of the plant and the soil"]


# -- the real CLI ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli(plugin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Run ``rag --home HOME ...`` in a subprocess that sees the plugin; returns the runner."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(plugin_dir), env.get("PYTHONPATH", "")) if p)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    home = tmp_path_factory.mktemp("cli") / "home"

    def rag(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "rag.cli", "--home", str(home), *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)

    return rag


@pytest.fixture(scope="module")
def ingested(cli: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``rag ingest`` of the conftest docs through the CLI, once."""
    docs = conftest.docs.__wrapped__(tmp_path_factory.mktemp("cli-docs"))  # type: ignore[attr-defined]
    done = cli("ingest", str(docs), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["files_added"] == 3
    return cli


def broken_note(stderr: str) -> None:
    """The search still says, on one note line, that 'broken' failed to load."""
    notes = [line for line in stderr.splitlines() if line.startswith("rag: note:") and "'broken'" in line]
    assert len(notes) == 1 and BROKEN_ERROR in notes[0], stderr


def test_cli_search_with_plugin(ingested: Any) -> None:
    """``--retriever keyword`` runs the installed plugin (its scores are kept, reranked or not)."""
    done = ingested("search", "water succulents", "--retriever", "keyword", "-k", "3", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["retriever"] == "keyword"
    assert out["results"] and all("keyword" in r["scores"] for r in out["results"])
    assert any(r["source"].endswith("guide.md") for r in out["results"])
    broken_note(done.stderr)


def test_cli_broken_plugin_is_one_line(ingested: Any) -> None:
    """``--retriever broken`` fails with one stderr line naming it and its error, no traceback."""
    done = ingested("search", "water succulents", "--retriever", "broken", "--json")
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("rag: error:") and "'broken'" in lines[0] and BROKEN_ERROR in lines[0]
    assert "Traceback" not in done.stderr


def test_cli_builtin_still_works(ingested: Any) -> None:
    """A built-in retriever works while the broken plugin is installed."""
    done = ingested("search", "spider mites", "--retriever", "bm25", "--no-rerank", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["retriever"] == "bm25" and not out["reranked"]
    assert out["results"] and all("bm25" in r["scores"] for r in out["results"])
    assert out["results"][0]["source"].endswith("pests.html")
    broken_note(done.stderr)
