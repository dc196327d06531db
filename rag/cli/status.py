"""``rag status``: what each collection holds and where."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rag.core.manifest import Manifest
from rag.core.bm25 import Bm25Index
from rag.core.config import Settings
from rag.core.errors import StoreLockedError
from rag.core.home import collection_paths, list_collections
from rag.core.store import open_store, writers


def _size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += (Path(dirpath) / name).stat().st_size
            except OSError:
                pass
    return total


def collect_status(settings: Settings, home: Path) -> dict[str, Any]:
    """Facts about every collection under ``home``."""
    out: list[dict[str, Any]] = []
    for name in list_collections(home):
        paths = collection_paths(home, name)
        manifest = Manifest(paths.manifest)
        try:
            rows = manifest.files()
            info: dict[str, Any] = {
                "name": name,
                "files": sum(1 for r in rows.values() if r.state == "done"),
                "files_pending": sum(1 for r in rows.values() if r.state == "pending"),
                "embedding_model": manifest.get_meta("embedding_model"),
                "dimensions": int(manifest.get_meta("dimensions") or 0),
                "backend": settings.store.backend,
                "local_size_bytes": _size(paths.root),
                "path": str(paths.root),
            }
        finally:
            manifest.close()
        try:
            store = open_store(settings.store, paths.root, name)
            try:
                info["chunks"] = store.count()
                info["store"] = store.location
                if settings.store.backend == "qdrant":  # a shared server collection: every machine's files
                    info["writers"] = writers(store) if info["chunks"] else {}
            finally:
                store.close()
        except StoreLockedError:
            info["chunks"] = None
            info["store"] = "locked by a running ingest"
        bm25 = Bm25Index.read_info(paths.bm25)
        problem = Bm25Index.problem(paths.bm25)
        info["bm25_chunks"] = bm25.count if bm25 else 0
        info["bm25_in_step"] = bool(
            bm25 and problem is None and info["chunks"] is not None and bm25.count == info["chunks"]
        )
        chunks, cfg = info["chunks"] or 0, settings.bm25
        if chunks > cfg.max_chunks:
            info["bm25_note"] = f"no bm25 index above [bm25] max_chunks ({cfg.max_chunks}); search with sparse or hybrid"
        elif not info["bm25_in_step"] and chunks > cfg.rebuild_at_ingest_max_chunks:
            info["bm25_note"] = "the first bm25 search rebuilds the bm25 index (over [bm25] rebuild_at_ingest_max_chunks)"
        elif problem is not None and chunks:
            info["bm25_problem"] = f"{problem}; `rag doctor` rebuilds it"
        out.append(info)
    return {"home": str(home), "collections": out}


def print_status(status: dict[str, Any]) -> None:
    """Render the status as a table."""
    from rich.console import Console
    from rich.table import Table

    from rag.cli.text import markup

    console = Console()
    console.print(f"home: {markup(status['home'])}", highlight=False)
    if not status["collections"]:
        console.print("no collections yet; run `rag ingest PATH`")
        return
    table = Table()
    for col in ("collection", "files", "chunks", "model", "store", "size"):
        table.add_column(col)
    for c in status["collections"]:
        table.add_row(
            markup(c["name"]), str(c["files"]), str(c["chunks"]),
            markup(f"{c['embedding_model']} ({c['dimensions']}d)"), markup(c["store"]),
            f"{c['local_size_bytes'] / 1e6:.1f} MB",
        )
    console.print(table)
    for c in status["collections"]:
        if c.get("files_pending"):
            console.print(f"{markup(c['name'])}: {c['files_pending']} file(s) pending; the next `rag ingest` "
                          "finishes them", highlight=False)
        if c.get("writers") and set(c["writers"]) != {""}:
            parts = [f"{markup(name or '(default)')} {w['files']} files, {w['chunks']} chunks"
                     for name, w in c["writers"].items()]
            console.print(f"{markup(c['name'])} writers: " + "; ".join(parts), highlight=False)
        if c.get("bm25_problem") or c.get("bm25_note"):
            console.print(f"{markup(c['name'])}: {markup(c.get('bm25_problem') or c['bm25_note'])}", highlight=False)
