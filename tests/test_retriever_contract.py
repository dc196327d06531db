"""Every built-in retriever (dense, bm25, sparse, hybrid) passes the plugin contract of plugins.contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

import tests.conftest as conftest
from ingest.pipeline import Ingestor
from rag.core.config import Settings
from rag.query.retrieve import Retriever, RetrieverContext, make_retriever
from plugins.contract import RetrieverContract

QUERIES = [
    "how often should I water succulents",  # guide.md
    "spider mites webbing under leaves",  # sub/pests.html
    "the leaves of the plant and the soil",  # many chunks of every file: gives the order checks teeth
]


def build_collection(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[RetrieverContext]:
    """The conftest ``docs`` folder ingested once into a fresh home; yields an open RetrieverContext."""
    root = tmp_path_factory.mktemp("contract")
    docs = conftest.docs.__wrapped__(root)  # type: ignore[attr-defined] - the fixture's own function
    settings: Settings = conftest.settings.__wrapped__()  # type: ignore[attr-defined]
    home = root / "home"
    report = Ingestor(settings, home, embedder=embedder).run([docs])
    assert report.files_added == 3 and not report.files_failed
    ctx = RetrieverContext(settings, home, "default")
    ctx.embedder = embedder  # the session's model; skips a second lookup
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[RetrieverContext]:
    """One ingested ``docs`` collection shared by every test of this module."""
    yield from build_collection(tmp_path_factory, embedder)


class BuiltIn(RetrieverContract):
    """The contract for a built-in retriever found through its entry point."""

    plugin = ""

    @pytest.fixture()
    def retriever(self, collection: RetrieverContext) -> Retriever:
        return make_retriever(self.plugin, collection)

    @pytest.fixture()
    def contract_queries(self) -> list[str]:
        return QUERIES


class TestDense(BuiltIn):
    plugin = "dense"


class TestBm25(BuiltIn):
    plugin = "bm25"


class TestSparse(BuiltIn):
    plugin = "sparse"


class TestHybrid(BuiltIn):
    plugin = "hybrid"

    def test_keeps_every_part(self, retriever: Retriever) -> None:
        """Each fused result keeps the rank and score of the parts that found it."""
        results = retriever.retrieve(QUERIES[0], 5)
        assert results
        assert all({"dense", "sparse"} & set(r.ranks) for r in results)
        assert results[0].ranks.keys() >= {"dense", "sparse", "hybrid"}
        assert all(r.score == r.scores["hybrid"] for r in results)


def test_module_builds_one_collection(collection: RetrieverContext) -> None:
    """The shared collection holds md, txt and html chunks (the filter checks rely on md)."""
    types = {p.get("file_type") for _, p in collection.store.scroll(with_payload=True)}
    assert types == {"md", "txt", "html"}
    assert isinstance(collection.home, Path)
