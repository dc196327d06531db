"""kill -9 at every write point of an ingest, then rerun: the store equals an uninterrupted run's."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from rag.core.bm25 import Bm25Index, fingerprint
from rag.core.config import Settings
from rag.core.home import collection_paths
from rag.core.lexical import Analyzer
from tests.conftest import REPO, write
from tests.test_pipeline import store_state

SCRIPT = """
import json, sys
from pathlib import Path
from rag.core.config import Settings
from ingest.pipeline import Ingestor
settings = Settings.model_validate(json.loads(sys.argv[3]))
Ingestor(settings, Path(sys.argv[1]), "default").run([sys.argv[2]])
"""

FIRST_POINTS = ["after_pending", "mid_upsert", "after_upsert", "before_bm25"]
UPDATE_POINTS = ["after_pending", "mid_upsert", "after_upsert", "after_delete_stale", "after_delete", "before_bm25"]


def crash_run(home: Path, folder: Path, settings: Settings, point: str) -> None:
    env = {**os.environ, "RAG_FAULT_KILL_AT": point, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(home), str(folder), settings.model_dump_json()],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def comparable(settings: Settings, home: Path) -> dict[str, tuple]:
    state = store_state(settings, home)
    index = Bm25Index.load(collection_paths(home, "default").bm25, Analyzer())
    assert index.info.fingerprint == fingerprint(state), "BM25 index out of step with the store"
    return {
        cid: (p["source"], p["start"], p["end"], p["text"], p["file_hash"], p["headings"])
        for cid, p in state.items()
    }


def make_v1(folder: Path) -> None:
    for i in range(4):
        write(folder / f"doc{i}.md", f"# Topic {i}\n\n" + f"Paragraph about subject {i} and more words. " * 40)
    write(folder / "plain.txt", "A plain text file about tomatoes and peppers.\n" * 20)


def make_v2(folder: Path) -> None:
    (folder / "doc1.md").write_text("# Topic one, rewritten\n\n" + "Entirely new words on ferns. " * 50)
    (folder / "doc2.md").unlink()
    write(folder / "new.txt", "A new file about compost and worms.\n" * 10)


@pytest.mark.slow
def test_kill9_at_every_point_converges(tmp_path: Path, settings: Settings, embedder) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "docs"
    make_v1(folder)
    ref = tmp_path / "ref"
    Ingestor(settings, ref, embedder=embedder).run([folder])
    reference_v1 = comparable(settings, ref)

    for point in FIRST_POINTS:
        home = tmp_path / f"first-{point}"
        crash_run(home, folder, settings, point)
        report = Ingestor(settings, home, embedder=embedder).run([folder])
        assert comparable(settings, home) == reference_v1, point
        assert report.chunks_total == len(reference_v1)

    homes = {}
    for point in UPDATE_POINTS:
        homes[point] = tmp_path / f"update-{point}"
        shutil.copytree(ref, homes[point])
    make_v2(folder)
    Ingestor(settings, ref, embedder=embedder).run([folder])
    reference_v2 = comparable(settings, ref)
    assert reference_v2 != reference_v1

    for point, home in homes.items():
        crash_run(home, folder, settings, point)
        Ingestor(settings, home, embedder=embedder).run([folder])
        assert comparable(settings, home) == reference_v2, point
