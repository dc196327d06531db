"""Free space on the disk that holds the home: checked before big writes, named in one line when it runs out.

The embedded engine writes through memory maps: on a full disk the kernel answers a write to
a mapped page with SIGBUS, which kills the process with no message. So every command checks
the free space before it opens a store (and the ingest before each batch) and stops with a
one-line error naming the disk instead. What is already stored stays intact: writes are made
in an order that a rerun completes (see ``ingest.pipeline``).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from rag.core.errors import DiskFullError, StoreError

# Room the engine needs to open a shard and append to its write-ahead log (it preallocates
# WAL segments of 32 MiB: opening a fresh copy of a small store took 40-48 MiB on tmpfs) plus the
# manifest journal; below this a command stops before writing.
MIN_FREE_BYTES = 64 << 20


def mount_point(path: str | os.PathLike[str]) -> Path:
    """The mount point of the file system that holds ``path`` (or its nearest existing parent)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p


def free_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes available to this user on the disk holding ``path``."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def disk_full(path: object, need: int | None = None, free: int | None = None) -> DiskFullError:
    """The one-line error naming the disk (its mount point) that holds ``path``."""
    where = str(path)
    free = free_bytes(where) if free is None else free
    amount = f"{free >> 20} MiB free" + (f", about {(need + (1 << 20) - 1) >> 20} MiB needed" if need else "")
    return DiskFullError(
        f"the disk {mount_point(where)} (holding {where}) is full ({amount}); free some space and rerun "
        "the command: what is already stored is intact"
    )


def write_error(exc: OSError, path: object) -> StoreError:
    """An OSError from writing ``path``: a DiskFullError when the disk is full, else a StoreError."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return disk_full(path)
    return StoreError(f"cannot write {path}: {exc.strerror or exc}")


def ensure_free(path: str | os.PathLike[str], need: int = 0) -> None:
    """Raise DiskFullError unless the disk holding ``path`` has ``need`` bytes plus the working margin free."""
    want = need + MIN_FREE_BYTES
    free = free_bytes(path)
    if free < want:
        raise disk_full(path, want, free)
