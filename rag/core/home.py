"""Where a collection's files live under the home directory."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rag.core.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class CollectionPaths:
    """The files of one collection: ``<home>/collections/<name>/``."""

    name: str
    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.sqlite3"

    @property
    def bm25(self) -> Path:
        return self.root / "bm25"

    @property
    def lock(self) -> Path:
        return self.root / "write.lock"


def collection_paths(home: Path, name: str) -> CollectionPaths:
    """Paths of collection ``name``; the name must be a simple identifier."""
    if not _NAME.match(name):
        raise ConfigError(
            f"invalid collection name {name!r}; use letters, digits, '_', '-' or '.' (at most 64, not starting with a symbol)"
        )
    return CollectionPaths(name=name, root=home / "collections" / name)


def list_collections(home: Path) -> list[str]:
    """Names of the collections that have a manifest under ``home``."""
    base = home / "collections"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / "manifest.sqlite3").exists())
