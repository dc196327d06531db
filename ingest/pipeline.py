"""The ingest pipeline: discover -> load -> chunk -> embed -> store, incremental and crash-safe.

Order of writes for every batch of files (see ingest/manifest.py):
1. the manifest records the new file versions as ``pending``;
2. their chunks are upserted (vectors already stored under the same id are reused, not re-embedded);
3. the store is flushed, then points of those files with another version are deleted (a
   point's payload ``version`` hashes the file's content and the chunking and loader
   signature, so re-chunking an unchanged file also replaces its old chunks);
4. the manifest marks the files ``done``.
Deleted files are removed last. Before any change to the store the collection's change
counter (manifest meta ``generation``) is bumped; the bm25 retriever's index is rebuilt from the
store when it is not in step with it (fingerprint, file missing, damaged or in an old format):
here for collections up to ``[bm25] rebuild_at_ingest_max_chunks`` (or any size when
``[retrieval]`` uses bm25), else by the first bm25 search, so ingest costs what the change costs.
The entity graph's file (``[multihop] mode = "graph"``) is brought in step last: the changed
files' chunks are read again (``rag.core.entity_graph``). Before each batch the free disk space is checked (the engine would die of SIGBUS
on a full disk); a folder that cannot be read is reported and what the index has of it is kept.
A rerun after a crash at any point redoes pending work and converges on the same store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

from ingest.chunk import ChunkSettings, chunk_document
from ingest.context import add_context, context_signature
from ingest.discover import Discovery, FoundFile, discover
from ingest.load import SUPPORTED_EXTENSIONS, load_document
from ingest.lock import WriterLock
from rag.core.manifest import FileRow, Manifest
from rag.core.bm25 import GENERATION, sync_from_store
from rag.core.entity_graph import graph_in_step, sync_graph
from rag.core.config import Settings
from rag.core.disk import ensure_free
from rag.core.entities import ENTITIES, ENTITIES_VERSION, EXTRACTOR, chunk_keys
from rag.core.faults import fault_point
from rag.core.errors import ConfigError, LoadError, RagError, UnsupportedFileError
from rag.core.home import CollectionPaths, collection_paths
from rag.core.lexical import Analyzer, bm25_document_weights
from rag.core.records import Chunk, LoadedDocument
from rag.core.store import ORIGIN, StoredPoint, VectorStore, open_store, point_uuid

GROUP_CHUNKS = 4096
UPSERT_BATCH = 256
LOADER_VERSION = "1"


class Progress(Protocol):
    """Receives progress events (the CLI draws them; library code never prints)."""

    def start(self, files: int) -> None: ...
    def file_done(self, source: str, chunks: int) -> None: ...
    def embedded(self, chunks: int) -> None: ...
    def note(self, message: str) -> None: ...


class _Silent:
    def start(self, files: int) -> None: ...
    def file_done(self, source: str, chunks: int) -> None: ...
    def embedded(self, chunks: int) -> None: ...
    def note(self, message: str) -> None: ...


@dataclass(frozen=True, slots=True)
class FileIssue:
    """A file that did not go in, with the reason."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What one ``rag ingest`` run did."""

    collection: str
    store: str
    files_added: int
    files_updated: int
    files_unchanged: int
    files_deleted: int
    deleted: tuple[str, ...]
    files_failed: tuple[FileIssue, ...]
    files_skipped: tuple[FileIssue, ...]
    chunks_total: int
    chunks_embedded: int
    chunks_reused: int
    chunks_removed: int
    bm25_rebuilt: bool
    seconds: float

    @property
    def files_ingested(self) -> int:
        return self.files_added + self.files_updated

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "collection": self.collection,
            "store": self.store,
            "files_added": self.files_added,
            "files_updated": self.files_updated,
            "files_unchanged": self.files_unchanged,
            "files_deleted": self.files_deleted,
            "deleted": list(self.deleted),
            "files_failed": [{"path": f.path, "reason": f.reason} for f in self.files_failed],
            "files_skipped": [{"path": f.path, "reason": f.reason} for f in self.files_skipped],
            "chunks_total": self.chunks_total,
            "chunks_embedded": self.chunks_embedded,
            "chunks_reused": self.chunks_reused,
            "chunks_removed": self.chunks_removed,
            "bm25_rebuilt": self.bm25_rebuilt,
            "seconds": round(self.seconds, 3),
        }


def file_sha256(path: Path) -> str:
    """Content hash of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _supported(path: Path) -> bool:
    suffix = path.suffix.lower()
    return suffix == "" or suffix in SUPPORTED_EXTENSIONS


def _under(source: str, roots: Sequence[str]) -> bool:
    return any(source == r or source.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


@dataclass
class _Work:
    """A file version to (re)write."""

    found: FoundFile
    file_hash: str
    had_row: bool
    chunks: list[Chunk] = field(default_factory=list)
    text: str | None = None  # in-memory documents (e.g. a BEIR corpus) carry their text
    title: str | None = None  # ... and may carry their title


class Ingestor:
    """Runs one ingest of a set of paths into a collection (holds the writer lock throughout)."""

    def __init__(
        self, settings: Settings, home: Path, collection: str = "default",
        progress: Progress | None = None, embedder: Any = None,
    ) -> None:
        self.settings = settings
        self.paths: CollectionPaths = collection_paths(home, collection)
        self.progress = progress or _Silent()
        self._embedder = embedder
        self.analyzer = Analyzer(settings.bm25.language, settings.bm25.stopwords)
        chunking = ChunkSettings(settings.chunking.chunk_size, settings.chunking.chunk_overlap)
        self.chunk_settings = chunking
        self.context_parts = tuple(settings.chunking.context)
        context = context_signature(self.context_parts)
        # without a header the signature is the one from before headers existed: nothing is re-embedded
        self.pipeline_sig = f"{chunking.signature()}|loader:{LOADER_VERSION}" + (f"|{context}" if context else "")
        self.origin = settings.ingest.source_id  # this writer's name in a shared collection ("" the default)

    def version(self, file_hash: str) -> str:
        """The payload ``version`` of a file's points: its content and how it was loaded and chunked."""
        return hashlib.sha256(f"{file_hash}|{self.pipeline_sig}".encode()).hexdigest()[:16]

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from rag.core.embed import get_embedder

            cfg = self.settings.embedding
            self._embedder = get_embedder(cfg.model, cfg.device, cfg.batch_size)
        return self._embedder

    def run(self, paths: Sequence[str | os.PathLike[str]]) -> IngestReport:
        """Ingest ``paths`` (folders or files): add new files, update changed ones, remove deleted ones."""
        started = time.perf_counter()
        cfg = self.settings.ingest
        found = discover(
            list(paths), ignore_file=cfg.ignore_file, follow_symlinks=cfg.follow_symlinks,
            max_file_bytes=int(cfg.max_file_mb * 1_000_000),
        )
        with WriterLock(self.paths.lock, self.paths.name):
            manifest = Manifest(self.paths.manifest)
            store = open_store(self.settings.store, self.paths.root, self.paths.name)
            try:
                return self._run(found, manifest, store, started)
            finally:
                store.close()
                manifest.close()

    # -- phases -----------------------------------------------------------------

    def _check_model(self, manifest: Manifest, store: VectorStore) -> None:
        model = self.settings.embedding.model
        recorded = manifest.get_meta("embedding_model")
        if recorded is not None and recorded != model:
            raise ConfigError(
                f"collection '{self.paths.name}' was built with embedding model {recorded!r} but [embedding] model "
                f"is {model!r}; ingest into a new --collection or set the model back"
            )
        recorded_origin = manifest.get_meta("source_id") or ""
        if manifest.files() and recorded_origin != self.origin:
            raise ConfigError(
                f"this home ingested collection '{self.paths.name}' as writer {recorded_origin or '(default)'!s} but "
                f"[ingest] source_id is {self.origin or '(empty)'!s}; set it back (a writer's name is fixed once its "
                "files are stored), or ingest into a new --collection"
            )
        if recorded_origin != self.origin or manifest.get_meta("source_id") is None:
            manifest.set_meta({"source_id": self.origin})
        if not store.exists():
            if manifest.files():
                self.progress.note("the vector store is missing; re-ingesting every file")
                manifest.remove(list(manifest.files()))
            store.create(self.embedder.info.dimensions)
            manifest.set_meta({"embedding_model": model, "dimensions": str(self.embedder.info.dimensions)})

    def _classify(
        self, found: Discovery, manifest: Manifest
    ) -> tuple[list[_Work], list[str], list[FileIssue], list[FileIssue], int]:
        rows = manifest.files()
        work: list[_Work] = []
        failed: list[FileIssue] = []
        skipped = [FileIssue(s.source, s.reason) for s in found.skipped]
        unchanged = 0
        for f in found.files:
            if not _supported(f.path):
                skipped.append(FileIssue(f.source, f"unsupported file type '{f.path.suffix.lower()}'"))
                continue
            row = rows.get(f.source)
            fresh = row is not None and row.state == "done" and row.pipeline == self.pipeline_sig
            if fresh and row is not None and row.size == f.size and row.mtime_ns == f.mtime_ns:
                unchanged += 1
                continue
            try:
                digest = file_sha256(f.path)
            except OSError as exc:
                failed.append(FileIssue(f.source, f"cannot read: {exc.strerror}"))
                continue
            if fresh and row is not None and row.file_hash == digest:
                manifest.touch(f.source, f.size, f.mtime_ns)
                unchanged += 1
                continue
            reason = manifest.failure(f.source, digest, self.pipeline_sig)
            if reason is not None:
                failed.append(FileIssue(f.source, reason))
                continue
            work.append(_Work(found=f, file_hash=digest, had_row=row is not None))
        present = {f.source for f in found.files}
        # a folder that cannot be read now is not a deletion: what the index has of it stays
        unreadable = [u.source for u in found.unreadable]
        failed += [FileIssue(u.source, u.reason) for u in found.unreadable]
        deleted = [s for s in rows if s not in present and _under(s, found.roots) and not _under(s, unreadable)]
        manifest.forget_failures(present | {s for s in rows if _under(s, unreadable)})
        return work, deleted, failed, skipped, unchanged

    def _load(self, item: _Work, manifest: Manifest, failed: list[FileIssue], skipped: list[FileIssue]) -> bool:
        try:
            if item.text is not None:
                if not item.text.strip():
                    raise LoadError("no text")
                doc = LoadedDocument(path=item.found.source, file_type="txt", text=item.text)
            else:
                doc = load_document(item.found.path, item.found.source)
        except UnsupportedFileError as exc:
            skipped.append(FileIssue(item.found.source, str(exc)))
            return False
        except LoadError as exc:
            reason = str(exc)
            if item.had_row:
                reason += " (the previously ingested version is kept)"
            manifest.record_failure(item.found.source, item.file_hash, self.pipeline_sig, str(exc))
            failed.append(FileIssue(item.found.source, reason))
            return False
        item.chunks = own_ids(add_context(
            doc, chunk_document(doc, self.chunk_settings), self.context_parts,
            title=item.title, name_fallback=item.text is None,  # an in-memory source is no file name
        ), self.origin)
        if not item.chunks:
            manifest.record_failure(item.found.source, item.file_hash, self.pipeline_sig, "no text to index")
            failed.append(FileIssue(item.found.source, "no text to index"))
            return False
        return True

    def _avgdl(self, manifest: Manifest, group: Sequence[_Work]) -> float:
        recorded = manifest.get_meta("avgdl")
        if recorded is not None:
            return float(recorded)
        lengths = [len(self.analyzer.tokens(c.indexed_text)) for item in group for c in item.chunks]
        avgdl = round(sum(lengths) / max(len(lengths), 1), 3) or 1.0
        manifest.set_meta({"avgdl": str(avgdl)})
        return avgdl

    def _write_group(self, group: list[_Work], manifest: Manifest, store: VectorStore) -> tuple[int, int]:
        """Store one batch of files; returns (chunks embedded, chunks reused)."""
        # Checked before anything of the batch is written: the engine dies of SIGBUS on a full disk.
        text_bytes = sum(len(c.indexed_text.encode("utf-8", "replace")) for w in group for c in w.chunks)
        n_chunks = sum(len(w.chunks) for w in group)
        dims = int(manifest.get_meta("dimensions") or 384)
        ensure_free(self.paths.root, need=3 * text_bytes + n_chunks * (8 * dims + 2048))
        avgdl = self._avgdl(manifest, group)
        self._bump_generation(manifest)
        manifest.mark_pending(
            FileRow(w.found.source, w.file_hash, w.found.size, w.found.mtime_ns, len(w.chunks), self.pipeline_sig, "pending")
            for w in group
        )
        fault_point("after_pending")
        chunks = [c for w in group for c in w.chunks]
        existing = store.vectors([c.id for c in chunks])
        hashes = {w.found.source: w.file_hash for w in group}
        versions = {w.found.source: self.version(w.file_hash) for w in group}
        k1, b = self.settings.bm25.k1, self.settings.bm25.b

        def upsert(part: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> None:
            for start in range(0, len(part), UPSERT_BATCH):
                points = []
                for c, vector in zip(part[start:start + UPSERT_BATCH], vectors[start:start + UPSERT_BATCH]):
                    idx, val = bm25_document_weights(self.analyzer.tokens(c.indexed_text), avgdl, k1, b)
                    payload = c.payload(hashes[c.source], versions[c.source])
                    # the entity graph's edges ([multihop] graph)
                    payload[ENTITIES] = chunk_keys(c.text, c.context, c.chunk_index)
                    payload[ENTITIES_VERSION] = EXTRACTOR
                    if self.origin:
                        payload[ORIGIN] = self.origin
                    points.append(StoredPoint(c.id, vector, idx, val, payload))
                store.upsert(points)
                fault_point("mid_upsert")

        reused = [c for c in chunks if c.id in existing]
        upsert(reused, [existing[c.id][0] for c in reused])
        # Longest first, as SentenceTransformer.encode orders a batch: similar lengths pad least.
        missing = sorted((c for c in chunks if c.id not in existing), key=lambda c: -len(c.indexed_text))
        step = max(self.settings.embedding.batch_size * 16, 256)
        for start in range(0, len(missing), step):
            part = missing[start:start + step]
            upsert(part, list(self.embedder.embed([c.indexed_text for c in part])))
            self.progress.embedded(len(part))
        store.flush()
        fault_point("after_upsert")
        for w in group:
            if w.had_row:
                store.delete_source(w.found.source, keep_version=versions[w.found.source], origin=self.origin)
        store.flush()
        fault_point("after_delete_stale")
        manifest.mark_done(w.found.source for w in group)
        self._bump_generation(manifest)  # again after: a bm25 index built from the half-written state is stale
        for w in group:
            self.progress.file_done(w.found.source, len(w.chunks))
        return len(missing), len(chunks) - len(missing)

    @staticmethod
    def _bump_generation(manifest: Manifest) -> None:
        """Count a change to the store, before it is made (the bm25 index built at the old count is then stale)."""
        manifest.set_meta({GENERATION: str(int(manifest.get_meta(GENERATION) or 0) + 1)})

    def bm25_in_use(self) -> bool:
        """Whether the configured retrieval uses the bm25 retriever (its index is then kept in step at ingest)."""
        cfg = self.settings.retrieval
        return cfg.retriever == "bm25" or (cfg.retriever == "hybrid" and "bm25" in cfg.hybrid)

    def _sync_bm25(self, store: VectorStore, force: bool = False, total: int | None = None) -> bool:
        """Bring the bm25 index in step with the store now, if this collection's size says so (``force``: always).

        ``total``: the store's count when the caller has it.
        """
        cfg = self.settings.bm25
        total = store.count() if total is None else total
        if total > cfg.max_chunks:
            return False  # the bm25 retriever refuses such a collection and names sparse
        if not force and total > cfg.rebuild_at_ingest_max_chunks and not self.bm25_in_use():
            return False  # the first bm25 search rebuilds it
        manifest = Manifest(self.paths.manifest)
        try:
            raw = manifest.get_meta(GENERATION)
        finally:
            manifest.close()
        return sync_from_store(store, self.paths.bm25, self.analyzer, cfg.k1, cfg.b,
                               None if raw is None else int(raw))

    def _sync_graph(self, store: VectorStore, manifest: Manifest, count: int) -> None:
        """Bring the entity graph's file in step with the store ([multihop] mode = "graph"): the changed files' part."""
        cfg = self.settings.multihop
        if cfg.mode != "graph" or count > cfg.graph_max_chunks:
            return  # the first graph hop (``rag ask --multihop graph``) brings it in step
        raw = manifest.get_meta(GENERATION)
        generation = None if raw is None else int(raw)
        if not graph_in_step(self.paths, generation, count):
            sync_graph(store, self.paths, generation, count)

    def run_texts(self, documents: Iterable[tuple[str, str] | tuple[str, str, str]], scope: str) -> IngestReport:
        """Ingest in-memory ``(source, text[, title])`` documents; sources under ``scope`` not given are removed.

        Used for corpora that are not files (``rag eval beir`` uses ``beir:<folder>/<doc-id>`` sources).
        The title names the document in chunk headers (``[chunking] context``); without one a
        document's header has no title (its source is an id, not a file name).
        """
        started = time.perf_counter()
        with WriterLock(self.paths.lock, self.paths.name):
            manifest = Manifest(self.paths.manifest)
            store = open_store(self.settings.store, self.paths.root, self.paths.name)
            try:
                self._check_model(manifest, store)
                rows = manifest.files()
                work: list[_Work] = []
                present: set[str] = set()
                unchanged = 0
                for source, text, *rest in documents:
                    present.add(source)
                    data = text.encode("utf-8")
                    digest = hashlib.sha256(data).hexdigest()
                    row = rows.get(source)
                    if row is not None and row.state == "done" and row.pipeline == self.pipeline_sig \
                            and row.file_hash == digest:
                        unchanged += 1
                        continue
                    found = FoundFile(path=Path(source), source=source, size=len(data), mtime_ns=0)
                    title = rest[0] if rest else None
                    work.append(_Work(found=found, file_hash=digest, had_row=row is not None, text=text, title=title))
                deleted = [s for s in rows if s not in present and _under(s, [scope])]
                return self._process(work, deleted, [], [], unchanged, manifest, store, started)
            finally:
                store.close()
                manifest.close()

    def _run(self, found: Discovery, manifest: Manifest, store: VectorStore, started: float) -> IngestReport:
        self._check_model(manifest, store)
        work, deleted, failed, skipped, unchanged = self._classify(found, manifest)
        return self._process(work, deleted, failed, skipped, unchanged, manifest, store, started)

    def _process(
        self, work: list[_Work], deleted: list[str], failed: list[FileIssue], skipped: list[FileIssue],
        unchanged: int, manifest: Manifest, store: VectorStore, started: float,
    ) -> IngestReport:
        self.progress.start(len(work))
        before = store.count()
        embedded = reused = 0
        added = updated = 0
        group: list[_Work] = []
        group_size = 0

        def flush_group() -> None:
            nonlocal embedded, reused, group, group_size
            if group:
                e, r = self._write_group(group, manifest, store)
                embedded += e
                reused += r
            group, group_size = [], 0

        for item in work:
            if not self._load(item, manifest, failed, skipped):
                self.progress.file_done(item.found.source, 0)
                continue
            if item.had_row:
                updated += 1
            else:
                added += 1
            group.append(item)
            group_size += len(item.chunks)
            if group_size >= GROUP_CHUNKS:
                flush_group()
        flush_group()
        self._delete(deleted, manifest, store)
        total = store.count()
        rebuilt = self._sync_bm25(store, total=total)
        self._sync_graph(store, manifest, total)
        index_min = self.settings.store.index_min_chunks
        if index_min and total >= index_min and (embedded or deleted or updated):
            store.optimize()  # the embedded engine's HNSW (and int8) index; a server indexes on its own
        return IngestReport(
            collection=self.paths.name,
            store=store.location,
            files_added=added,
            files_updated=updated,
            files_unchanged=unchanged,
            files_deleted=len(deleted),
            deleted=tuple(deleted),
            files_failed=tuple(sorted(failed, key=lambda f: f.path)),
            files_skipped=tuple(sorted(skipped, key=lambda f: f.path)),
            chunks_total=total,
            chunks_embedded=embedded,
            chunks_reused=reused,
            chunks_removed=before + embedded - total,  # stale versions of updated files, and deleted files
            bm25_rebuilt=rebuilt,
            seconds=time.perf_counter() - started,
        )

    def _delete(self, sources: Iterable[str], manifest: Manifest, store: VectorStore) -> None:
        sources = list(sources)
        if not sources:
            return
        self._bump_generation(manifest)
        for source in sources:
            store.delete_source(source, origin=self.origin)
        store.flush()
        self._bump_generation(manifest)
        fault_point("after_delete")
        manifest.remove(sources)


def own_ids(chunks: list[Chunk], origin: str) -> list[Chunk]:
    """The chunks with ids of their own for writer ``origin`` (the default writer, "", keeps them as they are).

    Two writers of one shared collection that ingest the same path and text then store two
    copies, each replaced and deleted only by its own writer.
    """
    if not origin:
        return chunks
    return [dataclasses.replace(c, id=point_uuid(f"{origin}\x01{c.id}")) for c in chunks]


def ingest(
    paths: Sequence[str | os.PathLike[str]], settings: Settings, home: Path, collection: str = "default",
    progress: Progress | None = None,
) -> IngestReport:
    """Ingest folders or files into a collection; see :class:`Ingestor`."""
    if not paths:
        raise RagError("nothing to ingest: give at least one folder or file")
    return Ingestor(settings, home, collection, progress).run(paths)
