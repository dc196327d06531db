"""The Okapi BM25 index that sits beside the vector store.

It is rebuilt from the store's own chunks and swapped in atomically: the index
file is written under a temporary name, fsynced and renamed, then a small
``current.json`` pointer is replaced the same way. Its fingerprint (a hash of
the sorted chunk ids) says which store state it was built from, so the ingest
can tell, even after a crash, whether it is in step with the vectors.

The index is plain numeric arrays in a NumPy ``.npz`` file (loaded with
``allow_pickle=False``, so a file planted in the home cannot run code), versioned
by ``FORMAT`` and checked against the sha256 the pointer records. Scores are
rank-bm25's ``BM25Okapi`` (its idf with the epsilon floor), computed from term
postings instead of a Python loop over every document. An index in an older
format (a pickle) is never read: it counts as missing and is rebuilt from the store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

import numpy as np

from rag.core.disk import disk_full, write_error
from rag.core.errors import ConfigError, StoreError
from rag.core.faults import fault_point
from rag.core.lexical import Analyzer
from rag.core.records import indexed_text

FORMAT = 2  # 1: a pickled rank_bm25.BM25Okapi (never loaded any more)
EPSILON = 0.25  # rank-bm25's default floor for negative idf, as a share of the average idf
POINTER = "current.json"


def fingerprint(ids: Iterable[str]) -> str:
    """Identifies a set of chunk ids independent of order."""
    digest = hashlib.sha256()
    for chunk_id in sorted(ids):
        digest.update(chunk_id.encode("ascii"))
        digest.update(b"\n")
    return digest.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(exc, path) from None
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass(frozen=True, slots=True)
class Bm25Info:
    """What the pointer file records about the current index."""

    fingerprint: str
    count: int
    file: str
    built_at: float
    k1: float
    b: float
    analyzer: str
    format: int = 1
    sha256: str = ""
    avgdl: float = 0.0
    generation: int = -1  # the collection's change counter (manifest meta) it was built at; -1: unknown


class Bm25Index:
    """Okapi BM25 over the chunk texts of one collection, as term postings."""

    def __init__(self, ids: list[str], arrays: dict[str, np.ndarray], info: Bm25Info, analyzer: Analyzer) -> None:
        self.ids = ids
        self.arrays = arrays
        self.info = info
        self.analyzer = analyzer

    @classmethod
    def build(cls, chunks: Iterable[tuple[str, str]], analyzer: Analyzer, k1: float, b: float) -> "Bm25Index":
        """Index ``(chunk_id, text)`` pairs."""
        ids: list[str] = []
        counts: list[Counter[str]] = []
        for chunk_id, text in sorted(chunks):
            ids.append(chunk_id)
            counts.append(Counter(analyzer.tokens(text)))
        vocab = sorted({t for c in counts for t in c})
        position = {t: i for i, t in enumerate(vocab)}
        postings: list[list[tuple[int, int]]] = [[] for _ in vocab]
        for doc, c in enumerate(counts):
            for term, tf in c.items():
                postings[position[term]].append((doc, tf))
        n = len(ids)
        doc_len = np.array([sum(c.values()) for c in counts], dtype=np.int64)
        avgdl = float(doc_len.sum() / n) if n else 0.0
        df = np.array([len(p) for p in postings], dtype=np.float64)
        idf = np.log(n - df + 0.5) - np.log(df + 0.5) if len(df) else df
        if len(idf):  # rank-bm25: negative idf becomes epsilon * the average idf
            idf = np.where(idf < 0, EPSILON * float(idf.sum() / len(idf)), idf)
        arrays = {
            "ids": np.array(ids, dtype="U36") if ids else np.zeros(0, dtype="U36"),
            "vocab": np.array(vocab) if vocab else np.zeros(0, dtype="U1"),
            "term_ptr": np.cumsum([0] + [len(p) for p in postings], dtype=np.int64),
            "docs": np.array([d for p in postings for d, _ in p], dtype=np.int32),
            "tfs": np.array([tf for p in postings for _, tf in p], dtype=np.int32),
            "doc_len": doc_len,
            "idf": idf.astype(np.float64),
        }
        info = Bm25Info(
            fingerprint=fingerprint(ids), count=n, file="", built_at=time.time(), k1=k1, b=b,
            analyzer=f"{analyzer.language}:{int(analyzer.stopwords)}", format=FORMAT, avgdl=avgdl,
        )
        return cls(ids, arrays, info, analyzer)

    def save(self, folder: Path) -> None:
        """Write the index and switch the pointer to it atomically; older index files are removed."""
        import io

        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, **self.arrays)
        data = buffer.getvalue()
        free = shutil.disk_usage(folder).free
        if free < 2 * len(data) + (8 << 20):
            raise disk_full(folder, need=2 * len(data) + (8 << 20), free=free)
        name = f"index-{self.info.fingerprint[:16]}.npz"
        _atomic_write(folder / name, data)
        info = dataclasses.replace(self.info, file=name, format=FORMAT, sha256=hashlib.sha256(data).hexdigest())
        _atomic_write(folder / POINTER, json.dumps(dataclasses.asdict(info), indent=1).encode("utf-8"))
        self.info = info
        for old in list(folder.glob("index-*.npz")) + list(folder.glob("index-*.pkl")):
            if old.name != name:
                old.unlink(missing_ok=True)

    @staticmethod
    def read_info(folder: Path) -> Bm25Info | None:
        """The pointer of the current index, or None when there is none or it is in an older format.

        A pointer that cannot be parsed counts as none too: the index is derived data, and the
        ingest (or ``rag doctor``) rebuilds it from the store.
        """
        try:
            info = Bm25Info(**json.loads((folder / POINTER).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None
        return info if info.format == FORMAT and info.file.endswith(".npz") else None

    @staticmethod
    def problem(folder: Path) -> str | None:
        """Why the index on disk cannot be used (missing, old format, damaged), or None when it is sound."""
        pointer = folder / POINTER
        if not pointer.exists():
            return "no BM25 index"
        info = Bm25Index.read_info(folder)
        if info is None:
            return "the BM25 index is in an old format or its pointer is unreadable"
        try:
            data = (folder / info.file).read_bytes()
        except OSError as exc:
            return f"the BM25 index file {info.file} cannot be read ({exc.strerror})"
        if hashlib.sha256(data).hexdigest() != info.sha256:
            return f"the BM25 index file {info.file} is damaged (checksum mismatch)"
        return None

    @classmethod
    def load(cls, folder: Path, analyzer: Analyzer) -> "Bm25Index":
        """Open the current index (StoreError naming the repair when it is missing or damaged)."""
        info = cls.read_info(folder)
        if info is None:
            raise StoreError(
                f"no usable BM25 index in {folder} (missing, or in an old format); run `rag doctor` or `rag ingest` "
                "to rebuild it from the store"
            )
        try:
            data = (folder / info.file).read_bytes()
            if hashlib.sha256(data).hexdigest() != info.sha256:
                raise ValueError("checksum mismatch")
            import io

            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            ids = [str(x) for x in arrays["ids"]]
            if len(ids) != info.count:
                raise ValueError("chunk count differs from its pointer")
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise StoreError(
                f"the BM25 index in {folder} is damaged ({exc}); run `rag doctor` to rebuild it from the store"
            ) from None
        return cls(ids, arrays, info, analyzer)

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        """BM25Okapi scores of every chunk for the query terms (a repeated term counts again)."""
        a = self.arrays
        out = np.zeros(len(self.ids), dtype=np.float64)
        vocab = a["vocab"]
        if not len(vocab) or not terms:
            return out
        k1, b = self.info.k1, self.info.b
        avgdl = self.info.avgdl or 1.0
        norm = k1 * (1 - b + b * a["doc_len"] / avgdl)
        for term in terms:
            pos = int(np.searchsorted(vocab, term))
            if pos >= len(vocab) or vocab[pos] != term:
                continue
            lo, hi = int(a["term_ptr"][pos]), int(a["term_ptr"][pos + 1])
            docs = a["docs"][lo:hi]
            tf = a["tfs"][lo:hi].astype(np.float64)
            out[docs] += float(a["idf"][pos]) * (tf * (k1 + 1) / (tf + norm[docs]))
        return out

    def search(self, query: str, limit: int) -> list[tuple[str, float]]:
        """Top chunk ids by BM25 score (zero-score chunks are left out)."""
        terms = self.analyzer.tokens(query)
        if not self.ids or not terms:
            return []
        scores = self.scores(terms)
        order = np.argsort(-scores, kind="stable")[:limit]
        return [(self.ids[i], float(scores[i])) for i in order if scores[i] > 0]


GENERATION = "generation"  # manifest meta key: bumped before every change an ingest makes to the store


class _ChunkStore(Protocol):
    def scroll(self, with_payload: bool = ...) -> Iterable[tuple[str, Any]]: ...

    def count(self) -> int: ...


def too_big(collection: str, chunks: int, limit: int) -> ConfigError:
    """The error of a bm25 search over a collection above ``[bm25] max_chunks``."""
    return ConfigError(
        f"collection '{collection}' holds {chunks} chunks, more than the bm25 retriever serves ([bm25] max_chunks = "
        f"{limit}: it keeps every chunk's terms in memory); use the sparse retriever (BM25 inside Qdrant; the default "
        "hybrid already does)")


def in_step(folder: Path, generation: int | None, chunks: int) -> bool:
    """Whether the index on disk was built at the collection's current state (cheap: no scan of the store).

    ``generation`` is the collection's change counter (None for a collection older than the counter:
    then the chunk count decides).
    """
    info = Bm25Index.read_info(folder)
    if info is None or info.count != chunks:
        return False
    return generation is None or info.generation == generation


def sync_from_store(store: _ChunkStore, folder: Path, analyzer: Analyzer, k1: float, b: float,
                    generation: int | None = None) -> bool:
    """Rebuild the index from the store's chunks unless it already holds exactly them; True when rebuilt.

    ``generation`` (read before the scan) is recorded in the pointer, so a change made during the
    scan leaves the index older than the collection and the next check rebuilds it again.
    """
    ids = [cid for cid, _ in store.scroll(with_payload=False)]
    current = Bm25Index.read_info(folder)
    same = current is not None and current.fingerprint == fingerprint(ids)
    if same and Bm25Index.problem(folder) is None:  # also checks the file's sha256
        if current is not None and generation is not None and current.generation != generation:
            _atomic_write(folder / POINTER, json.dumps(dataclasses.asdict(
                dataclasses.replace(current, generation=generation)), indent=1).encode("utf-8"))
        return False
    fault_point("before_bm25")
    pairs = (
        (cid, indexed_text(str(payload.get("text", "")), str(payload.get("context") or "")))
        for cid, payload in store.scroll(with_payload=True)
    )
    index = Bm25Index.build(pairs, analyzer, k1, b)
    if generation is not None:
        index.info = dataclasses.replace(index.info, generation=generation)
    index.save(folder)
    return True
