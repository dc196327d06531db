"""The ingest pipeline on the real embedded Qdrant engine and the packaged MiniLM model."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from rag.core.bm25 import Bm25Index, fingerprint
from rag.core.config import Settings
from rag.core.errors import StoreLockedError
from rag.core.home import collection_paths
from rag.core.lexical import Analyzer
from rag.core.store import open_store
from tests.conftest import write


def run(settings: Settings, home: Path, embedder, *paths: Path, collection: str = "default"):  # type: ignore[no-untyped-def]
    return Ingestor(settings, home, collection, embedder=embedder).run(list(paths))


def store_state(settings: Settings, home: Path, collection: str = "default") -> dict[str, dict]:
    paths = collection_paths(home, collection)
    store = open_store(settings.store, paths.root, collection)
    try:
        return {cid: dict(p) for cid, p in store.scroll()}
    finally:
        store.close()


def assert_bm25_in_step(settings: Settings, home: Path, state: dict[str, dict]) -> None:
    index = Bm25Index.load(collection_paths(home, "default").bm25, Analyzer())
    assert index.info.fingerprint == fingerprint(state)
    assert sorted(index.ids) == sorted(state)


def test_first_ingest_then_nothing_to_do(settings, rag_home, embedder, docs) -> None:  # type: ignore[no-untyped-def]
    first = run(settings, rag_home, embedder, docs)
    assert first.files_added == 3 and first.files_failed == ()
    assert first.chunks_total == first.chunks_embedded > 3
    state = store_state(settings, rag_home)
    assert len(state) == first.chunks_total
    assert not any(".hidden" in p["source"] for p in state.values())
    assert_bm25_in_step(settings, rag_home, state)
    md = [p for p in state.values() if p["source"].endswith("guide.md")]
    assert any(p["headings"] == ["Watering", "Signs of thirst"] for p in md)

    again = run(settings, rag_home, embedder, docs)
    assert (again.files_unchanged, again.files_added, again.files_updated) == (3, 0, 0)
    assert again.chunks_embedded == 0 and not again.bm25_rebuilt
    assert store_state(settings, rag_home) == state


def test_changed_file_only_is_reembedded(settings, rag_home, embedder, docs) -> None:  # type: ignore[no-untyped-def]
    run(settings, rag_home, embedder, docs)
    before = store_state(settings, rag_home)
    notes = docs / "notes.txt"
    notes.write_text(notes.read_text() + "\nFertilise every four weeks from April to September.\n")
    report = run(settings, rag_home, embedder, docs)
    assert (report.files_updated, report.files_unchanged) == (1, 2)
    after = store_state(settings, rag_home)
    new_ids = set(after) - set(before)
    assert new_ids and report.chunks_embedded == len(new_ids)
    assert all(after[i]["source"] == str(notes) for i in new_ids)
    assert all(before[i]["source"] == str(notes) for i in set(before) - set(after))
    assert report.chunks_reused == sum(1 for p in after.values() if p["source"] == str(notes)) - len(new_ids)
    assert any("Fertilise" in p["text"] for p in after.values())
    assert_bm25_in_step(settings, rag_home, after)


def test_rechunking_unchanged_files_replaces_their_chunks(settings, rag_home, embedder, docs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """New chunk settings re-chunk every file; the old chunks go, even though no file changed."""
    run(settings, rag_home, embedder, docs)
    before = store_state(settings, rag_home)
    smaller = settings.model_copy(update={"chunking": settings.chunking.model_copy(update={"chunk_size": 120})})
    report = run(smaller, rag_home, embedder, docs)
    assert report.files_updated == 3
    after = store_state(smaller, rag_home)
    fresh_home = tmp_path / "fresh"
    run(smaller, fresh_home, embedder, docs)
    fresh = store_state(smaller, fresh_home)
    assert report.chunks_total == len(after) == len(fresh)
    assert report.chunks_removed == len(set(before) - set(after)) > 0
    assert sorted(p["text"] for p in after.values()) == sorted(p["text"] for p in fresh.values())
    assert_bm25_in_step(smaller, rag_home, after)


def test_deleted_file_is_removed_and_reported(settings, rag_home, embedder, docs) -> None:  # type: ignore[no-untyped-def]
    run(settings, rag_home, embedder, docs)
    (docs / "sub" / "pests.html").unlink()
    report = run(settings, rag_home, embedder, docs)
    assert report.deleted == (str(docs / "sub" / "pests.html"),) and report.chunks_removed > 0
    state = store_state(settings, rag_home)
    assert not any(p["source"].endswith("pests.html") for p in state.values())
    assert_bm25_in_step(settings, rag_home, state)


def test_other_roots_are_left_alone(settings, rag_home, embedder, docs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = write(tmp_path / "other" / "o.txt", "Orchids bloom once a year when nights are cool.")
    run(settings, rag_home, embedder, docs)
    run(settings, rag_home, embedder, other.parent)
    sources = {p["source"] for p in store_state(settings, rag_home).values()}
    assert str(other) in sources and str(docs / "notes.txt") in sources


def test_broken_update_keeps_previous_version(settings, rag_home, embedder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "d"
    doc = write(folder / "a.txt", "Basil likes warmth and daily light.")
    write(folder / "empty.txt", "")
    first = run(settings, rag_home, embedder, folder)
    assert [f.path for f in first.files_failed] == [str(folder / "empty.txt")]
    doc.write_bytes(b"")
    report = run(settings, rag_home, embedder, folder)
    reasons = {f.path: f.reason for f in report.files_failed}
    assert "kept" in reasons[str(doc)]
    assert any("Basil" in p["text"] for p in store_state(settings, rag_home).values())


def test_second_writer_gets_lock_error(settings, rag_home, embedder, docs) -> None:  # type: ignore[no-untyped-def]
    lock_path = collection_paths(rag_home, "default").lock
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from ingest.lock import WriterLock
            with WriterLock(Path({str(lock_path)!r}), "default"):
                print("locked", flush=True)
                time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLockedError, match=f"locked by process {holder.pid}"):
            run(settings, rag_home, embedder, docs)
    finally:
        holder.kill()
        holder.wait()
    assert run(settings, rag_home, embedder, docs).files_added == 3
