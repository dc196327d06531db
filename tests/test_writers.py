"""Several writers (homes on different machines) ingesting into one shared server collection (issue 24, point 3).

Each writer has its own ``[ingest] source_id``; its re-ingest replaces and deletes only the chunks it
stored, even of a path another writer ingested too, and ``rag status`` on any of them shows every
writer. The server code path runs against qdrant-client's local mode (one in-process collection
shared by the homes, as a server's would be); the embedder is the packaged MiniLM.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from rag.cli.status import collect_status
from rag.core.config import Settings
from rag.core.errors import ConfigError
from rag.core.store import ORIGIN
from tests.conftest import write
from tests.test_pipeline import store_state


def writer(tmp_path: Path, source_id: str) -> Settings:
    return Settings.model_validate({
        "chunking": {"chunk_size": 300, "chunk_overlap": 50}, "ingest": {"source_id": source_id},
        "store": {"backend": "qdrant", "url": ":memory:", "collection_prefix": f"w{tmp_path.name}_"}})


def folder(root: Path, name: str, n: int) -> Path:
    for i in range(n):
        write(root / name / f"{name}-{i}.txt", f"Note {i} of {name}: the {name}{i} valve opens at {i + 3} bar. " * 8)
    return root / name


def test_two_writers_at_once_lose_and_duplicate_nothing_and_delete_only_their_own(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    a, b = writer(tmp_path, "laptop-a"), writer(tmp_path, "laptop-b")
    home_a, home_b = tmp_path / "home-a", tmp_path / "home-b"
    docs_a, docs_b = folder(tmp_path, "alpha", 12), folder(tmp_path, "beta", 12)
    reports: dict[str, object] = {}

    def run(name: str, settings: Settings, home: Path, docs: Path) -> None:
        reports[name] = Ingestor(settings, home, embedder=embedder).run([docs])

    threads = [threading.Thread(target=run, args=("a", a, home_a, docs_a)),
               threading.Thread(target=run, args=("b", b, home_b, docs_b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    ra, rb = reports["a"], reports["b"]
    state = store_state(a, home_a)
    assert len(state) == ra.chunks_embedded + rb.chunks_embedded  # type: ignore[attr-defined]
    by_origin = {o: {p["source"] for p in state.values() if p[ORIGIN] == o} for o in ("laptop-a", "laptop-b")}
    assert by_origin == {"laptop-a": {str(p) for p in docs_a.iterdir()}, "laptop-b": {str(p) for p in docs_b.iterdir()}}

    # each writer's deletions and updates touch only its own files
    (docs_a / "alpha-0.txt").unlink()
    write(docs_b / "beta-1.txt", "Beta one was rewritten: the valve now opens at nine bar.")
    Ingestor(a, home_a, embedder=embedder).run([docs_a])
    Ingestor(b, home_b, embedder=embedder).run([docs_b])
    after = store_state(b, home_b)
    sources = {(p[ORIGIN], Path(p["source"]).name) for p in after.values()}
    assert ("laptop-a", "alpha-0.txt") not in sources and ("laptop-a", "alpha-1.txt") in sources
    assert len({s for s in sources if s[0] == "laptop-b"}) == 12
    assert [p["text"] for p in after.values() if p["source"].endswith("beta-1.txt")] == \
        ["Beta one was rewritten: the valve now opens at nine bar."]

    # status on either machine shows both writers
    (col,) = collect_status(a, home_a)["collections"]
    assert col["writers"] == {"laptop-a": {"files": 11, "chunks": sum(1 for p in after.values() if p[ORIGIN] == "laptop-a")},
                              "laptop-b": {"files": 12, "chunks": sum(1 for p in after.values() if p[ORIGIN] == "laptop-b")}}


def test_the_same_path_on_two_writers_is_two_copies_each_kept_by_its_own_writer(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    a, b = writer(tmp_path, "site-a"), writer(tmp_path, "site-b")
    home_a, home_b = tmp_path / "home-a", tmp_path / "home-b"
    shared = tmp_path / "mnt" / "shared"  # a shared mount: the same absolute paths on both machines
    write(shared / "policy.md", "# Leave\n\nStaff get twenty days of paid leave a year.\n")
    write(shared / "travel.md", "# Travel\n\nBook trains for trips under four hours.\n")
    Ingestor(a, home_a, embedder=embedder).run([shared])
    Ingestor(b, home_b, embedder=embedder).run([shared])
    state = store_state(a, home_a)
    assert sorted(p[ORIGIN] for p in state.values()) == ["site-a", "site-a", "site-b", "site-b"]

    write(shared / "policy.md", "# Leave\n\nStaff get twenty-five days of paid leave a year.\n")
    (shared / "travel.md").unlink()
    Ingestor(a, home_a, embedder=embedder).run([shared])  # only writer a has seen the change so far
    texts = sorted((p[ORIGIN], p["text"].split("\n")[-1]) for p in store_state(a, home_a).values())
    assert texts == [("site-a", "Staff get twenty-five days of paid leave a year."),
                     ("site-b", "Book trains for trips under four hours."),
                     ("site-b", "Staff get twenty days of paid leave a year.")]

    # a writer's name is fixed once its files are stored
    renamed = writer(tmp_path, "site-c")
    with pytest.raises(ConfigError, match="as writer site-a but \\[ingest\\] source_id is site-c"):
        Ingestor(renamed, home_a, embedder=embedder).run([shared])
