"""Discovery skips hidden folders, honours the ignore file and does not follow links out."""

from __future__ import annotations

import os
from pathlib import Path

from ingest.discover import discover
from tests.conftest import write


def _names(found) -> set[str]:  # type: ignore[no-untyped-def]
    return {Path(f.source).name for f in found.files}


def test_hidden_and_ignored(tmp_path: Path) -> None:
    root = tmp_path / "d"
    write(root / "a.txt", "a")
    write(root / ".git" / "config", "x")
    write(root / ".env", "SECRET=1")
    write(root / "build" / "out.txt", "x")
    write(root / "keep" / "b.md", "b")
    write(root / "keep" / "c.log", "c")
    write(root / ".ragignore", "build/\n*.log\n")
    found = discover([root])
    assert _names(found) == {"a.txt", "b.md"}


def test_nested_ignore_file(tmp_path: Path) -> None:
    root = tmp_path / "d"
    write(root / "sub" / "x.txt", "x")
    write(root / "sub" / "y.txt", "y")
    write(root / "sub" / ".ragignore", "y.txt\n")
    write(root / "y.txt", "top-level y stays")
    assert _names(discover([root])) == {"x.txt", "y.txt"}
    assert any(f.source.endswith("d/y.txt") for f in discover([root]).files)


def test_symlinks_out_are_skipped_unless_asked(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside" / "secret.txt", "secret")
    root = tmp_path / "d"
    write(root / "a.txt", "a")
    os.symlink(outside, root / "link.txt")
    os.symlink(outside.parent, root / "linkdir")
    found = discover([root])
    assert _names(found) == {"a.txt"}
    reasons = {Path(s.source).name: s.reason for s in found.skipped}
    assert "outside the folder" in reasons["link.txt"]
    assert "outside the folder" in reasons["linkdir"]
    followed = discover([root], follow_symlinks=True)
    assert _names(followed) == {"a.txt", "link.txt", "secret.txt"}


def test_size_limit_and_single_file(tmp_path: Path) -> None:
    big = write(tmp_path / "big.txt", "x" * 5000)
    found = discover([big], max_file_bytes=1000)
    assert not found.files and "max_file_mb" in found.skipped[0].reason
    assert _names(discover([big])) == {"big.txt"}
