"""The ingest manifest: which file versions a collection holds, in SQLite.

A file's row is written as ``pending`` (with its new hash) before any of its
points are stored and marked ``done`` only after its new points are stored and
its stale ones removed. After a crash, pending rows tell the next run what to
redo, so a rerun converges on the same store as an uninterrupted run.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from rag.core.disk import disk_full, write_error
from rag.core.errors import ManifestError, StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    source TEXT PRIMARY KEY,
    file_hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    chunks INTEGER NOT NULL DEFAULT 0,
    pipeline TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'done')),
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS failures (
    source TEXT PRIMARY KEY,
    file_hash TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class FileRow:
    """One file version as recorded in the manifest."""

    source: str
    file_hash: str
    size: int
    mtime_ns: int
    chunks: int
    pipeline: str
    state: str


F = TypeVar("F", bound=Callable[..., Any])


def sqlite_error(exc: sqlite3.Error, path: Path) -> StoreError:
    """A one-line project error for a SQLite failure on the manifest at ``path``."""
    text = str(exc)
    if "disk is full" in text or "database or disk is full" in text:
        return disk_full(path)
    damaged = ManifestError(
        f"the manifest of collection '{path.parent.name}' ({path}) is damaged ({text}); "
        "run `rag doctor` to rebuild it from the store"
    )
    if not isinstance(exc, sqlite3.OperationalError) or "malformed" in text or "not a database" in text:
        return damaged
    if "locked" in text:
        return StoreError(f"the manifest {path} is locked by another process; wait for it and try again")
    return StoreError(f"cannot use the manifest {path}: {text}")


def _guarded(method: F) -> F:
    """SQLite errors become one-line project errors (damaged file -> `rag doctor`; full disk -> the disk)."""

    @functools.wraps(method)
    def wrapper(self: "Manifest", *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise sqlite_error(exc, self.path) from None

    return wrapper  # type: ignore[return-value]


class Manifest:
    """Transactional access to the manifest database of one collection."""

    @_guarded
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(exc, path.parent) from None
        self.db = sqlite3.connect(str(path), isolation_level=None, timeout=30)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        except sqlite3.Error:
            self.db.close()
            raise

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    @_guarded
    def files(self) -> dict[str, FileRow]:
        """Every recorded file, by source."""
        rows = self.db.execute(
            "SELECT source, file_hash, size, mtime_ns, chunks, pipeline, state FROM files"
        ).fetchall()
        return {r[0]: FileRow(*r) for r in rows}

    @_guarded
    def mark_pending(self, rows: Iterable[FileRow]) -> None:
        """Record the file versions about to be written (one transaction)."""
        now = time.time()
        with self._transaction():
            self.db.executemany(
                "INSERT INTO files (source, file_hash, size, mtime_ns, chunks, pipeline, state, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?) ON CONFLICT(source) DO UPDATE SET "
                "file_hash=excluded.file_hash, size=excluded.size, mtime_ns=excluded.mtime_ns, "
                "chunks=excluded.chunks, pipeline=excluded.pipeline, state='pending', updated=excluded.updated",
                [(r.source, r.file_hash, r.size, r.mtime_ns, r.chunks, r.pipeline, now) for r in rows],
            )

    @_guarded
    def mark_done(self, sources: Iterable[str]) -> None:
        """The pending versions of these files are completely stored."""
        now = time.time()
        with self._transaction():
            self.db.executemany(
                "UPDATE files SET state='done', updated=? WHERE source=?", [(now, s) for s in sources]
            )
            self.db.executemany("DELETE FROM failures WHERE source=?", [(s,) for s in sources])

    @_guarded
    def touch(self, source: str, size: int, mtime_ns: int) -> None:
        """A file whose content is unchanged got a new modification time."""
        self.db.execute("UPDATE files SET size=?, mtime_ns=? WHERE source=?", (size, mtime_ns, source))

    @_guarded
    def remove(self, sources: Iterable[str]) -> None:
        """Forget files whose points were deleted."""
        with self._transaction():
            self.db.executemany("DELETE FROM files WHERE source=?", [(s,) for s in sources])
            self.db.executemany("DELETE FROM failures WHERE source=?", [(s,) for s in sources])

    @_guarded
    def failure(self, source: str, file_hash: str, pipeline: str) -> str | None:
        """The recorded reason this exact file version failed before, if any."""
        row = self.db.execute(
            "SELECT reason FROM failures WHERE source=? AND file_hash=? AND pipeline=?", (source, file_hash, pipeline)
        ).fetchone()
        return row[0] if row else None

    @_guarded
    def record_failure(self, source: str, file_hash: str, pipeline: str, reason: str) -> None:
        """Remember why a file version could not be read, so unchanged files are not re-parsed."""
        self.db.execute(
            "INSERT OR REPLACE INTO failures (source, file_hash, pipeline, reason) VALUES (?, ?, ?, ?)",
            (source, file_hash, pipeline, reason),
        )

    @_guarded
    def forget_failures(self, keep: Iterable[str]) -> None:
        """Drop failure records of files no longer present."""
        keep_set = set(keep)
        stale = [r[0] for r in self.db.execute("SELECT source FROM failures") if r[0] not in keep_set]
        self.db.executemany("DELETE FROM failures WHERE source=?", [(s,) for s in stale])

    @_guarded
    def get_meta(self, key: str) -> str | None:
        """A collection-level setting."""
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    @_guarded
    def set_meta(self, values: dict[str, str]) -> None:
        """Store collection-level settings (one transaction)."""
        with self._transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(values.items())
            )

    def _transaction(self) -> "_Tx":
        return _Tx(self.db)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
