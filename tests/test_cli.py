"""The `rag` command line as a user runs it: JSON output, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, write


def rag(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", "--home", str(home), *args],
        capture_output=True, text=True, env=full_env, timeout=600,
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("rag: error: ")
    return lines[0]


def test_ingest_status_search_json(tmp_path: Path, docs: Path) -> None:
    home = tmp_path / "h"
    write(docs / "empty.txt", "")
    write(docs / "picture.png", "not really a png")
    proc = rag(home, "ingest", str(docs), "--json")
    assert proc.returncode == 3, proc.stderr  # some failed, the rest went in
    report = json.loads(proc.stdout)
    for key in ("files_added", "files_updated", "files_unchanged", "files_deleted", "files_failed",
                "chunks_total", "chunks_embedded", "seconds"):
        assert key in report
    assert report["files_added"] == 3
    assert report["files_failed"] == [{"path": str(docs / "empty.txt"), "reason": "empty file"}]
    assert [s["path"] for s in report["files_skipped"]] == [str(docs / "picture.png")]

    status = json.loads(rag(home, "status", "--json").stdout)
    (col,) = status["collections"]
    assert (col["name"], col["files"], col["chunks"]) == ("default", 3, report["chunks_total"])
    assert col["embedding_model"] == "all-MiniLM-L6-v2" and col["dimensions"] == 384

    found = rag(home, "search", "fungus gnats in wet soil", "-k", "2", "--no-rerank", "--json")
    assert found.returncode == 0, found.stderr
    result = json.loads(found.stdout)
    first = result["results"][0]
    assert first["source"].endswith("pests.html") and first["rank"] == 1
    assert set(first["scores"]) == {"dense", "sparse", "hybrid"}
    for key in ("chunk_id", "page", "text", "score"):
        assert key in first

    empty = rag(home, "search", "  ")
    assert empty.returncode != 0 and "empty query" in one_line_error(empty)
    bad_k = rag(home, "search", "water", "-k", "0")
    assert bad_k.returncode != 0 and "-k" in one_line_error(bad_k)
    unknown = rag(home, "search", "water", "--retriever", "nope")
    assert unknown.returncode != 0 and "unknown retriever 'nope'" in one_line_error(unknown)


def test_errors_are_one_line(tmp_path: Path) -> None:
    home = tmp_path / "h"
    missing = rag(home, "ingest", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "no such file or folder" in one_line_error(missing)
    write(home / "config.toml", "[chunking]\nchunk_sise = 3\n")
    bad = rag(home, "status")
    assert bad.returncode == 2 and "chunk_sise" in one_line_error(bad)
    (home / "config.toml").unlink()
    env_bad = rag(home, "status", env={"RAG_STORE_URI": "x"})
    assert env_bad.returncode == 2 and "RAG_STORE_URI" in one_line_error(env_bad)
    no_col = rag(home, "search", "water", "--collection", "ghost")
    assert no_col.returncode == 1 and "does not exist" in one_line_error(no_col)
    beir = rag(home, "eval", "beir", str(tmp_path))
    assert beir.returncode == 1 and "corpus.jsonl" in one_line_error(beir)


def test_nothing_to_ingest_exit_code(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    write(folder / "a.png", "x")
    proc = rag(tmp_path / "h", "ingest", str(folder), "--json")
    assert proc.returncode == 4
    assert json.loads(proc.stdout)["files_skipped"][0]["reason"] == "unsupported file type '.png'"
