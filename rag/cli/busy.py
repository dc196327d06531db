"""Without a server: wait a bounded time for a busy store instead of failing at once, naming its holder."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, TypeVar

import click

from rag.core.errors import StoreLockedError

T = TypeVar("T")
DEFAULT_WAIT_S = 30.0


def wait_limit() -> float:
    """Seconds to wait for a busy store: ``RAG_LOCK_WAIT_S`` (0: fail at once), else 30."""
    try:
        return max(0.0, float(os.environ.get("RAG_LOCK_WAIT_S", DEFAULT_WAIT_S)))
    except ValueError:
        return DEFAULT_WAIT_S


def holders(folder: Path) -> list[str]:
    """The processes (of this user) that have files under ``folder`` open: 'pid N (command)'."""
    base = str(folder.resolve())
    found: list[str] = []
    me = os.getpid()
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target == base or target.startswith(base + os.sep):
                try:
                    cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                except OSError:
                    cmd = "?"
                found.append(f"pid {entry.name} ({_short(cmd)})")
                break
    return found


def _short(cmd: str, limit: int = 80) -> str:
    parts = cmd.split()
    for i, part in enumerate(parts):  # "python .../bin/rag search ..." -> "rag search ..."
        if part.endswith("/rag") or part == "rag":
            cmd = " ".join(["rag", *parts[i + 1:]])
            break
    return cmd if len(cmd) <= limit else cmd[: limit - 3] + "..."


def wait_for_store(fn: Callable[[], T], home: Path, collection: str | None = None) -> T:
    """Run ``fn``; while it finds the store locked by another process, say who holds it and retry, bounded."""
    deadline: float | None = None  # counted from the first time the store is found held
    told = False
    while True:
        try:
            return fn()
        except StoreLockedError as exc:
            if deadline is None:
                deadline = time.monotonic() + wait_limit()
            elif time.monotonic() >= deadline:
                raise
            if not told:
                folder = home / "collections" / collection if collection else home / "collections"
                who = holders(folder) if folder.exists() else []
                click.echo(f"rag: {exc}; held by {', '.join(who) if who else 'another process'}; waiting up to "
                           f"{wait_limit():.0f} s (RAG_LOCK_WAIT_S), or start `rag serve` so commands share the "
                           "store", err=True)
                told = True
            time.sleep(0.5)
