"""Find the files to ingest under the given paths.

Hidden files and folders (``.git``, ``.venv``...) are skipped; an ignore file in
gitignore syntax (``.ragignore`` by default) is honoured in every folder, for
that folder and below. Symbolic links are not followed unless asked, so an
ingest never reads outside the folder it was pointed at.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pathspec

from rag.core.errors import RagError


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


def _spec(folder: Path, ignore_file: str) -> pathspec.PathSpec | None:
    candidate = folder / ignore_file
    if not ignore_file or not candidate.is_file():
        return None
    lines = candidate.read_text(encoding="utf-8", errors="replace").splitlines()
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
    roots: list[str] = []
    for raw in paths:
        root = Path(os.path.normpath(Path(raw).expanduser().absolute()))
        if not root.exists():
            raise RagError(f"{raw}: no such file or folder; check the path")
        roots.append(str(root))
        if root.is_file():
            _add(root, files, skipped, max_file_bytes)
            continue
        _walk(root, ignore_file, follow_symlinks, files, skipped, max_file_bytes)
    ordered = tuple(files[k] for k in sorted(files))
    return Discovery(roots=tuple(roots), files=ordered, skipped=tuple(sorted(skipped, key=lambda s: s.source)))


def _walk(
    root: Path, ignore_file: str, follow_symlinks: bool, files: dict[str, FoundFile],
    skipped: list[Skipped], max_file_bytes: int | None,
) -> None:
    real_root = root.resolve()
    specs_by_dir: dict[Path, list[tuple[Path, pathspec.PathSpec]]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=follow_symlinks):
        folder = Path(dirpath)
        inherited = specs_by_dir.get(folder.parent, []) if folder != root else []
        own = _spec(folder, ignore_file)
        specs = inherited + ([(folder, own)] if own else [])
        specs_by_dir[folder] = specs
        keep_dirs = []
        for name in sorted(dirnames):
            sub = folder / name
            if name.startswith(".") or _ignored(sub, True, specs):
                continue
            if sub.is_symlink() and not follow_symlinks:
                skipped.append(Skipped(str(sub), _link_reason(sub, real_root)))
                continue
            keep_dirs.append(name)
        dirnames[:] = keep_dirs
        for name in sorted(filenames):
            path = folder / name
            if name.startswith(".") or _ignored(path, False, specs):
                continue
            if path.is_symlink() and not follow_symlinks:
                skipped.append(Skipped(str(path), _link_reason(path, real_root)))
                continue
            _add(path, files, skipped, max_file_bytes)


def _link_reason(path: Path, real_root: Path) -> str:
    target = path.resolve()
    if target == real_root or real_root in target.parents:
        return "symbolic link inside the folder (its target is ingested on its own)"
    return "symbolic link to outside the folder (set [ingest] follow_symlinks = true to follow it)"


def _add(path: Path, files: dict[str, FoundFile], skipped: list[Skipped], max_file_bytes: int | None) -> None:
    try:
        st = path.stat()
    except OSError as exc:
        skipped.append(Skipped(str(path), f"cannot read: {exc.strerror}"))
        return
    if not path.is_file():
        skipped.append(Skipped(str(path), "not a regular file"))
        return
    if max_file_bytes is not None and st.st_size > max_file_bytes:
        skipped.append(
            Skipped(str(path), f"larger than [ingest] max_file_mb ({st.st_size / 1e6:.0f} MB)")
        )
        return
    files[str(path)] = FoundFile(path=path, source=str(path), size=st.st_size, mtime_ns=st.st_mtime_ns)
