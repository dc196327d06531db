"""Routing between described collections (real MiniLM, embedded Qdrant), merging, the LLM router, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from rag.query.answer import Answerer
from rag.core.config import RouteConfig, Settings
from rag.core.errors import StoreError
from rag.query.route import (
    choose_route,
    descriptions,
    parse_route_reply,
    read_description,
    routable,
    route_by_llm,
    write_description,
)
from tests.conftest import write
from tests.test_cli import one_line_error, rag

PLANTS = "How often should succulents be watered?"
COOKING = "How long should pasta boil?"


@pytest.fixture(scope="module")
def two_homes(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:  # type: ignore[no-untyped-def]
    """A home with a 'plants' and a 'cooking' collection (no descriptions yet)."""
    root = tmp_path_factory.mktemp("route")
    write(root / "plants" / "care.md", "# Watering\n\nWater succulents every two weeks in summer and once a month in "
          "winter.\n\n# Light\n\nMost cacti want four to six hours of direct sun.\n")
    write(root / "plants" / "pests.txt", "Spider mites leave fine webbing under leaves. Fungus gnats breed in wet soil.")
    write(root / "cooking" / "pasta.md", "# Pasta\n\nBoil dried pasta for eight to ten minutes in salted water, "
          "then drain it.\n\n# Sauce\n\nSimmer crushed tomatoes with garlic and olive oil for twenty minutes.\n")
    write(root / "cooking" / "bread.txt", "Knead bread dough for ten minutes and let it rise until doubled in size.")
    settings = Settings.model_validate({"chunking": {"chunk_size": 300, "chunk_overlap": 50}})
    home = root / "home"
    for name in ("plants", "cooking"):
        Ingestor(settings, home, name, embedder=embedder).run([root / name])
    return home


@pytest.fixture()
def described(two_homes: Path) -> Path:
    write_description(two_homes, "plants", "House plants and garden care: watering, light, repotting, pests")
    write_description(two_homes, "cooking", "Cooking recipes: pasta, sauces, baking bread, kitchen techniques")
    yield two_homes
    for name in ("plants", "cooking"):
        write_description(two_homes, name, "")


def settings_for(**route: object) -> Settings:
    return Settings.model_validate({"route": route, "rerank": {"enabled": False}})


def test_descriptions_are_stored_per_collection(two_homes: Path) -> None:
    assert routable(two_homes) == {}  # nothing described: no routing at all
    path = write_description(two_homes, "plants", "  Plants\nand   gardens ")
    try:
        assert path == two_homes / "collections" / "plants" / "description.txt"
        assert read_description(two_homes, "plants") == "Plants and gardens"
        assert descriptions(two_homes) == {"cooking": "", "plants": "Plants and gardens"}
        assert routable(two_homes) == {"cooking": "collection cooking", "plants": "Plants and gardens"}
    finally:
        write_description(two_homes, "plants", "")
    assert not path.exists() and read_description(two_homes, "plants") == ""
    with pytest.raises(StoreError, match="run `rag ingest PATH --collection nope`"):
        write_description(two_homes, "nope", "anything")


def test_embedding_router_sends_each_question_to_its_collection(described: Path) -> None:
    answerer = Answerer(settings_for(mode="embedding", margin=0.05), described, llm=object())
    try:
        plants = answerer.gather(PLANTS, 3)
        cooking = answerer.gather(COOKING, 3)
    finally:
        answerer.close_searchers()
    assert plants.route.collections == ("plants",) and plants.route.mode == "embedding"
    assert plants.route.scores["plants"] > plants.route.scores["cooking"]
    assert {c.collection for c in plants.chunks} == {"plants"}
    assert "succulents" in plants.chunks[0].text
    assert cooking.route.collections == ("cooking",)
    assert {c.collection for c in cooking.chunks} == {"cooking"}
    assert plants.llm_calls == 0 and plants.as_dict()["route"]["scores"].keys() == {"plants", "cooking"}


def test_wide_margin_searches_both_and_merges(described: Path) -> None:
    answerer = Answerer(settings_for(mode="embedding", margin=2.0), described, llm=object())
    try:
        evidence = answerer.gather(PLANTS, 4)
    finally:
        answerer.close_searchers()
    assert set(evidence.route.collections) == {"plants", "cooking"}
    assert evidence.route.collections[0] == "plants"  # best first
    by = [c.collection for c in evidence.chunks]
    assert by[0] == "plants" and "cooking" in by  # merged by reciprocal rank: each collection's best near the top
    assert len({c.chunk_id for c in evidence.chunks}) == 4
    assert all("collections" in c.scores for c in evidence.chunks)


def test_max_collections_and_explicit_collection(described: Path) -> None:
    answerer = Answerer(settings_for(mode="embedding", margin=2.0, max_collections=1), described, llm=object())
    try:
        assert answerer.gather(PLANTS, 2).route.collections == ("plants",)
    finally:
        answerer.close_searchers()
    fixed = Answerer(settings_for(mode="embedding"), described, "cooking", llm=object())
    try:
        evidence = fixed.gather(PLANTS, 2)
    finally:
        fixed.close_searchers()
    assert evidence.route.collections == ("cooking",) and evidence.route.mode == "fixed"
    assert {c.collection for c in evidence.chunks} == {"cooking"}


def test_route_mode_none_uses_default(described: Path) -> None:
    with pytest.raises(StoreError, match="collection 'default'"):
        Answerer(settings_for(mode="none"), described, llm=object())
    route = choose_route(PLANTS, {"a": "x", "b": "y"}, RouteConfig(mode="none"), embedder=None)
    assert route.collections == ("default",)


def test_parse_route_reply() -> None:
    names = ["cooking", "plants", "plants-old"]
    assert parse_route_reply("plants, cooking", names) == ["plants", "cooking"]
    assert parse_route_reply("Collections to search: Plants.", names) == ["plants"]
    assert parse_route_reply("plants-old", names) == ["plants-old"]
    assert parse_route_reply("none of them", names) == []



@pytest.mark.slow
def test_llm_router_names_collections_or_falls_back(described: Path, embedder, tiny_llm) -> None:  # type: ignore[no-untyped-def]
    candidates = routable(described)
    route = route_by_llm(PLANTS, candidates, tiny_llm, embedder, RouteConfig(mode="llm", margin=0.05))
    assert route.llm_calls == 1 and route.collections
    assert set(route.collections) <= set(candidates)
    if route.mode == "embedding":  # the tiny model named nothing usable: embeddings decided, and it says so
        assert route.note.startswith("the LLM named no collection") and route.collections == ("plants",)
    else:
        assert route.mode == "llm"


def test_cli_collections_describe_and_list(two_homes: Path) -> None:
    proc = rag(two_homes, "collections", "describe", "plants", "Garden and house plants")
    try:
        assert proc.returncode == 0, proc.stderr
        listed = json.loads(rag(two_homes, "collections", "list", "--json").stdout)
        assert listed == {"cooking": "", "plants": "Garden and house plants"}
    finally:
        write_description(two_homes, "plants", "")
    missing = rag(two_homes, "collections", "describe", "nope", "text")
    assert missing.returncode == 1 and "collection 'nope' does not exist" in one_line_error(missing)
