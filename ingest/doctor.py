"""``rag doctor``: check a home's collections and repair what can be rebuilt from what is left.

The vector store is the one copy of the chunks; everything beside it is derived from it:

* the BM25 index (missing, damaged, in the old pickle format, or out of step) is rebuilt from
  the store's chunk texts;
* a damaged ``manifest.sqlite3`` is moved aside and rebuilt from the store's payloads (each
  point records its source, file hash and version; sizes and times are left unknown, so the
  next ingest re-hashes each file once and re-reads only what changed);
* a damaged store cannot be rebuilt from anything but the documents: the report names the
  collection and the folder to re-ingest, and a repair moves the damaged store aside so the
  next ``rag ingest`` rebuilds it.

Each check holds the collection's writer lock, so it never races an ingest.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.lock import WriterLock
from ingest.pipeline import Ingestor
from rag.core.bm25 import Bm25Index, fingerprint
from rag.core.config import Settings
from rag.core.errors import ConfigError, ManifestError, RagError, StoreLockedError
from rag.core.home import CollectionPaths, collection_paths
from rag.core.manifest import FileRow, Manifest, sqlite_error
from rag.core.store import ORIGIN, VectorStore, open_store

OK, REPAIRED, BROKEN, NOTE = "ok", "repaired", "damaged", "note"


@dataclass(frozen=True, slots=True)
class Finding:
    """One fact about one part of a collection (``manifest``, ``store``, ``bm25``) or of the home."""

    collection: str
    part: str
    state: str  # ok | repaired | damaged | note
    message: str

    def as_dict(self) -> dict[str, str]:
        """The ``--json`` shape."""
        return {"collection": self.collection, "part": self.part, "state": self.state, "message": self.message}


def collection_names(home: Path) -> list[str]:
    """Every collection folder under ``home``, with or without a readable manifest."""
    base = home / "collections"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))


def doctor(settings: Settings, home: Path, collections: list[str] | None = None, repair: bool = True) -> list[Finding]:
    """Check (and with ``repair`` fix) each collection; returns what was found, in order."""
    names = collections or collection_names(home)
    known = set(collection_names(home))
    findings: list[Finding] = []
    for name in names:
        if name not in known:
            raise ConfigError(f"no collection '{name}' under {home}; `rag status` lists them")
        try:
            with WriterLock(collection_paths(home, name).lock, name):
                findings += _check_collection(settings, home, name, repair)
        except StoreLockedError as exc:
            findings.append(Finding(name, "collection", NOTE, f"not checked: {exc}"))
    findings += _check_models(home)
    return findings


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _move_aside(path: Path) -> Path:
    target = path.with_name(f"{path.name}.damaged-{_stamp()}")
    os.replace(path, target)
    return target


def _folders_hint(sources: list[str]) -> str:
    if not sources:
        return "its folder"
    try:
        common = os.path.commonpath(sources)
    except ValueError:
        return "its folders"
    return common if len(sources) > 1 else os.path.dirname(common)


def _check_collection(settings: Settings, home: Path, name: str, repair: bool) -> list[Finding]:
    paths = collection_paths(home, name)
    out: list[Finding] = []
    sources: list[str] = []
    manifest_problem: str | None = None
    try:
        manifest = Manifest(paths.manifest)
        try:
            rows = manifest.files()
            try:
                check = manifest.db.execute("PRAGMA quick_check").fetchone()[0]
            except sqlite3.Error as exc:
                raise sqlite_error(exc, paths.manifest) from None
            if check != "ok":
                raise ManifestError(f"the manifest {paths.manifest} is damaged (quick_check: {check}); "
                                    "run `rag doctor` to rebuild it from the store")
        finally:
            manifest.close()
        sources = sorted(rows)
        pending = sum(1 for r in rows.values() if r.state == "pending")
        out.append(Finding(name, "manifest", OK, f"{len(rows)} files" + (
            f", {pending} pending (the next `rag ingest` finishes them)" if pending else "")))
    except RagError as exc:
        manifest_problem = str(exc)

    store_problem: str | None = None
    store: VectorStore | None = None
    try:
        store = open_store(settings.store, paths.root, name)
        if store.exists():
            payloads = {cid: p for cid, p in store.scroll(with_payload=True)}  # reads every payload
            if len(payloads) != store.count():
                raise RagError("the point count and the points read differ")
        else:
            payloads = {}
    except RagError as exc:
        store_problem = str(exc)
        payloads = {}
        if store is not None:
            try:
                store.close()
            except RagError:
                pass
            store = None

    try:
        if store_problem is not None:
            hint = _folders_hint(sources)
            text = (f"the vector store is damaged ({store_problem}); it cannot be rebuilt without the documents: "
                    f"re-ingest them with `rag ingest {hint} --collection {name}`")
            if repair and settings.store.backend == "edge" and (paths.root / "qdrant").exists():
                moved = _move_aside(paths.root / "qdrant")
                text += f" (the damaged store was moved to {moved}; the next ingest re-embeds every file)"
            out.append(Finding(name, "store", BROKEN, text))
        elif store is not None and not store.exists():
            state = NOTE if sources else OK
            out.append(Finding(name, "store", state, "no vector store yet" + (
                f"; the next `rag ingest {_folders_hint(sources)} --collection {name}` re-embeds every file"
                if sources else "")))
        else:
            out.append(Finding(name, "store", OK, f"{len(payloads)} chunks, every payload readable"))

        # the manifest tracks this writer's files only ([ingest] source_id; others may share a server collection)
        own = {cid: p for cid, p in payloads.items() if str(p.get(ORIGIN) or "") == settings.ingest.source_id}
        if manifest_problem is None and not sources and own:
            manifest_problem = "it is empty (or was deleted) while the store holds chunks"
            out = [f for f in out if f.part != "manifest"]
        if manifest_problem is not None:
            if repair and store_problem is None and store is not None:
                moved = _move_aside(paths.manifest)
                for suffix in ("-wal", "-shm"):
                    side = paths.manifest.with_name(paths.manifest.name + suffix)
                    if side.exists():
                        _move_aside(side)
                count = _rebuild_manifest(settings, home, name, paths, store, own)
                cause = re.search(r"is damaged \((.*)\); run", manifest_problem)
                why = f"was damaged ({cause.group(1)})" if cause else manifest_problem
                out.append(Finding(name, "manifest", REPAIRED, f"{why}; rebuilt from the store's payloads "
                                   f"({count} files; the old file is {moved.name})"))
            else:
                out.append(Finding(name, "manifest", BROKEN, manifest_problem))

        if store_problem is None and store is not None and store.exists():
            out.append(_check_bm25(settings, home, name, paths, store, payloads, repair))
    finally:
        if store is not None:
            store.close()
    return out


def _check_bm25(settings: Settings, home: Path, name: str, paths: CollectionPaths, store: VectorStore,
                payloads: dict[str, Any], repair: bool) -> Finding:
    problem = Bm25Index.problem(paths.bm25)
    if problem is None:
        info = Bm25Index.read_info(paths.bm25)
        if info is not None and info.fingerprint != fingerprint(payloads):
            problem = f"the BM25 index holds {info.count} chunks, the store {len(payloads)}"
    if problem is None:
        return Finding(name, "bm25", OK, "in step with the store")
    ingestor = Ingestor(settings, home, name)
    if len(payloads) > settings.bm25.max_chunks:
        return Finding(name, "bm25", OK, f"not kept: the collection is over [bm25] max_chunks ({settings.bm25.max_chunks}); "
                       "search it with sparse or hybrid")
    if len(payloads) > settings.bm25.rebuild_at_ingest_max_chunks and not ingestor.bm25_in_use():
        return Finding(name, "bm25", OK, f"{problem}; the first bm25 search rebuilds it (a collection over [bm25] "
                       "rebuild_at_ingest_max_chunks)")
    if not repair:
        return Finding(name, "bm25", BROKEN, f"{problem}; `rag doctor` rebuilds it from the store")
    ingestor._sync_bm25(store, force=True)
    return Finding(name, "bm25", REPAIRED, f"{problem}; rebuilt from the store")


def _rebuild_manifest(settings: Settings, home: Path, name: str, paths: CollectionPaths, store: VectorStore,
                      payloads: dict[str, Any]) -> int:
    """A fresh manifest whose rows say what the store holds (sizes unknown: the next ingest re-hashes)."""
    ingestor = Ingestor(settings, home, name)
    by_source: dict[str, list[Any]] = defaultdict(list)
    for payload in payloads.values():
        by_source[str(payload.get("source", ""))].append(payload)
    rows: list[FileRow] = []
    done: list[str] = []
    for source, items in sorted(by_source.items()):
        versions = Counter((str(p.get("file_hash", "")), str(p.get("version", ""))) for p in items)
        (file_hash, version), _ = versions.most_common(1)[0]
        pipeline = ingestor.pipeline_sig if ingestor.version(file_hash) == version else "unknown"
        rows.append(FileRow(source, file_hash, -1, -1, len(items), pipeline, "pending"))
        if len(versions) == 1:  # a source with two versions was cut mid-update: left pending, redone next time
            done.append(source)
    manifest = Manifest(paths.manifest)
    try:
        manifest.mark_pending(rows)
        manifest.mark_done(done)
        meta = {"embedding_model": settings.embedding.model}
        first = next(iter(payloads), None)
        if first is not None:
            meta["dimensions"] = str(len(store.vectors([first])[first][0]))
            lengths = [len(ingestor.analyzer.tokens(str(p.get("text", "")))) for p in payloads.values()]
            meta["avgdl"] = str(round(sum(lengths) / max(len(lengths), 1), 3) or 1.0)
        manifest.set_meta(meta)
    finally:
        manifest.close()
    return len(rows)


def _check_models(home: Path) -> list[Finding]:
    """Copies of the local LLM left in the home by older versions (the shared model cache replaces them)."""
    from rag.core.llm_models import model_cache_dir

    old = home / "models"
    found = sorted(old.glob("*.gguf")) if old.is_dir() else []
    if not found:
        return []
    size = sum(p.stat().st_size for p in found)
    return [Finding("(home)", "models", NOTE, f"{size / 1e9:.1f} GB of local models in {old} from an older rag; "
                    f"models now live in {model_cache_dir()} (shared by every home): delete {old} to free the space")]

