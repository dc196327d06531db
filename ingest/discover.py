"""Find the files to ingest under the given paths.

Hidden files and folders (``.git``, ``.venv``...) are skipped; an ignore file in
gitignore syntax (``.ragignore`` by default) is honoured in every folder, for
that folder and below. Symbolic links are not followed unless asked, so an
ingest never reads outside the folder it was pointed at.

The walk is iterative and enters every real folder once (by device and inode), so
link loops and deep nesting end; a folder or file that cannot be read is reported
in ``Discovery.unreadable`` and the ingest keeps what the index already has of it.
Sources are :func:`rag.core.names.source_of` strings (safe for names that are not UTF-8).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pathspec

from rag.core.errors import RagError
from rag.core.names import source_of


@dataclass(frozen=True, slots=True)
class FoundFile:
    """A regular file to consider, with what tells whether it changed."""

    path: Path
    source: str
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class Skipped:
    """A path left out on purpose, with the reason shown to the user."""

    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class Discovery:
    """What a walk over the ingest roots found."""

    roots: tuple[str, ...]
    files: tuple[FoundFile, ...]
    skipped: tuple[Skipped, ...]
    unreadable: tuple[Skipped, ...] = ()  # folders/files that exist but cannot be read: keep what the index has


def _spec(folder: Path, ignore_file: str) -> pathspec.PathSpec | None:
    candidate = folder / ignore_file
    if not ignore_file or not candidate.is_file():
        return None
    try:
        lines = candidate.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return pathspec.GitIgnoreSpec.from_lines(lines)


def _ignored(path: Path, is_dir: bool, specs: list[tuple[Path, pathspec.PathSpec]]) -> bool:
    for base, spec in specs:
        rel = path.relative_to(base).as_posix() + ("/" if is_dir else "")
        if spec.match_file(rel):
            return True
    return False


def discover(
    paths: list[str | os.PathLike[str]], ignore_file: str = ".ragignore", follow_symlinks: bool = False,
    max_file_bytes: int | None = None,
) -> Discovery:
    """Walk ``paths`` (folders or single files) and list the files to ingest, sorted by source."""
    files: dict[str, FoundFile] = {}
    skipped: list[Skipped] = []
    unreadable: list[Skipped] = []
    roots: list[str] = []
    for raw in paths:
        root = Path(os.path.normpath(Path(raw).expanduser().absolute()))
        if not root.exists():
            raise RagError(f"{source_of(Path(raw))}: no such file or folder; check the path")
        roots.append(source_of(root))
        if not root.is_dir():  # a file, or a device or pipe (reported as not a regular file)
            _add(root, files, skipped, unreadable, max_file_bytes)
            continue
        _walk(root, ignore_file, follow_symlinks, files, skipped, unreadable, max_file_bytes)
    ordered = tuple(files[k] for k in sorted(files))
    return Discovery(
        roots=tuple(roots), files=ordered, skipped=tuple(sorted(skipped, key=lambda s: s.source)),
        unreadable=tuple(sorted(unreadable, key=lambda s: s.source)),
    )


def _walk(
    root: Path, ignore_file: str, follow_symlinks: bool, files: dict[str, FoundFile],
    skipped: list[Skipped], unreadable: list[Skipped], max_file_bytes: int | None,
) -> None:
    """Iterative walk (no recursion limit); each real folder is entered once, so link loops end."""
    real_root = os.path.realpath(root)
    visited: set[tuple[int, int]] = set()
    with contextlib.suppress(OSError):
        st = root.stat()
        visited.add((st.st_dev, st.st_ino))
    stack: list[tuple[Path, list[tuple[Path, pathspec.PathSpec]]]] = [(root, [])]
    while stack:
        folder, inherited = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            unreadable.append(Skipped(source_of(folder), f"cannot read folder: {exc.strerror}{_KEPT}"))
            continue
        own = _spec(folder, ignore_file)
        specs = inherited + ([(folder, own)] if own else [])
        subfolders: list[Path] = []
        for entry in entries:
            name = entry.name
            path = folder / name
            if name.startswith("."):
                continue
            try:
                is_link = entry.is_symlink()
                is_dir = False if is_link else entry.is_dir(follow_symlinks=False)
            except OSError as exc:
                unreadable.append(Skipped(source_of(path), f"cannot read: {exc.strerror}{_KEPT}"))
                continue
            if is_link:
                if _ignored(path, os.path.isdir(path), specs):  # isdir: False for a loop or a broken link
                    continue
                target = _follow(path, real_root, follow_symlinks, visited, skipped)
                if target == "dir":
                    subfolders.append(path)
                elif target == "file":
                    _add(path, files, skipped, unreadable, max_file_bytes)
                continue
            if _ignored(path, is_dir, specs):
                continue
            if is_dir:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    unreadable.append(Skipped(source_of(path), f"cannot read folder: {exc.strerror}{_KEPT}"))
                    continue
                key = (st.st_dev, st.st_ino)
                if key not in visited:  # a bind mount can loop without any link
                    visited.add(key)
                    subfolders.append(path)
            else:
                _add(path, files, skipped, unreadable, max_file_bytes)
        stack.extend((sub, specs) for sub in reversed(subfolders))


_KEPT = "; its files already in the index are kept"


def _follow(
    path: Path, real_root: str, follow_symlinks: bool, visited: set[tuple[int, int]], skipped: list[Skipped]
) -> str | None:
    """What to do with a symbolic link: ``"dir"`` or ``"file"`` to follow it, None when it was skipped."""
    target = os.path.realpath(path)
    inside = target == real_root or target.startswith(real_root.rstrip(os.sep) + os.sep)
    try:
        st = os.stat(path)
    except OSError as exc:
        reason = "symbolic link loop" if exc.errno == errno.ELOOP else f"broken symbolic link ({exc.strerror})"
        skipped.append(Skipped(source_of(path), reason))
        return None
    if inside:
        skipped.append(Skipped(source_of(path), "symbolic link inside the folder (its target is ingested on its own)"))
        return None
    if not follow_symlinks:
        skipped.append(Skipped(
            source_of(path), "symbolic link to outside the folder (set [ingest] follow_symlinks = true to follow it)"
        ))
        return None
    if stat.S_ISDIR(st.st_mode):
        key = (st.st_dev, st.st_ino)
        if key in visited:
            skipped.append(Skipped(source_of(path), "symbolic link to a folder already walked (a loop or a second path)"))
            return None
        visited.add(key)
        return "dir"
    return "file"


def _add(
    path: Path, files: dict[str, FoundFile], skipped: list[Skipped], unreadable: list[Skipped],
    max_file_bytes: int | None,
) -> None:
    source = source_of(path)
    try:
        st = path.stat()
    except OSError as exc:
        unreadable.append(Skipped(source, f"cannot read: {exc.strerror}{_KEPT}"))
        return
    if not stat.S_ISREG(st.st_mode):
        skipped.append(Skipped(source, "not a regular file"))
        return
    if max_file_bytes is not None and st.st_size > max_file_bytes:
        skipped.append(
            Skipped(source, f"larger than [ingest] max_file_mb ({st.st_size / 1e6:.0f} MB)")
        )
        return
    files[source] = FoundFile(path=path, source=source, size=st.st_size, mtime_ns=st.st_mtime_ns)
