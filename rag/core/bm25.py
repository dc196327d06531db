"""The rank-bm25 index that sits beside the vector store.

It is rebuilt from the store's own chunks and swapped in atomically: the index
file is written under a temporary name, fsynced and renamed, then a small
``current.json`` pointer is replaced the same way. Its fingerprint (a hash of
the sorted chunk ids) says which store state it was built from, so the ingest
can tell, even after a crash, whether it is in step with the vectors.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from rank_bm25 import BM25Okapi

from rag.core.errors import StoreError
from rag.core.lexical import Analyzer

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
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
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


class Bm25Index:
    """rank-bm25 (Okapi) over the chunk texts of one collection."""

    def __init__(self, ids: list[str], model: BM25Okapi | None, info: Bm25Info, analyzer: Analyzer) -> None:
        self.ids = ids
        self.model = model
        self.info = info
        self.analyzer = analyzer

    @classmethod
    def build(cls, chunks: Iterable[tuple[str, str]], analyzer: Analyzer, k1: float, b: float) -> "Bm25Index":
        """Index ``(chunk_id, text)`` pairs."""
        ids: list[str] = []
        corpus: list[list[str]] = []
        for chunk_id, text in sorted(chunks):
            ids.append(chunk_id)
            corpus.append(analyzer.tokens(text))
        model = BM25Okapi(corpus, k1=k1, b=b) if corpus else None
        info = Bm25Info(
            fingerprint=fingerprint(ids), count=len(ids), file="", built_at=time.time(), k1=k1, b=b,
            analyzer=f"{analyzer.language}:{int(analyzer.stopwords)}",
        )
        return cls(ids, model, info, analyzer)

    def save(self, folder: Path) -> None:
        """Write the index and switch the pointer to it atomically; older index files are removed."""
        folder.mkdir(parents=True, exist_ok=True)
        name = f"index-{self.info.fingerprint[:16]}.pkl"
        _atomic_write(folder / name, pickle.dumps((self.ids, self.model), protocol=pickle.HIGHEST_PROTOCOL))
        info = dataclasses.replace(self.info, file=name)
        _atomic_write(folder / POINTER, json.dumps(dataclasses.asdict(info), indent=1).encode("utf-8"))
        self.info = info
        for old in folder.glob("index-*.pkl"):
            if old.name != name:
                old.unlink(missing_ok=True)

    @staticmethod
    def read_info(folder: Path) -> Bm25Info | None:
        """The pointer of the current index, or None when there is none."""
        try:
            return Bm25Info(**json.loads((folder / POINTER).read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise StoreError(f"BM25 pointer {folder / POINTER} is unreadable ({exc}); rerun `rag ingest`") from None

    @classmethod
    def load(cls, folder: Path, analyzer: Analyzer) -> "Bm25Index":
        """Open the current index."""
        info = cls.read_info(folder)
        if info is None:
            raise StoreError(f"no BM25 index in {folder}; run `rag ingest` first")
        with open(folder / info.file, "rb") as fh:
            ids, model = pickle.load(fh)
        return cls(ids, model, info, analyzer)

    def search(self, query: str, limit: int) -> list[tuple[str, float]]:
        """Top chunk ids by BM25 score (zero-score chunks are left out)."""
        terms = self.analyzer.tokens(query)
        if self.model is None or not terms:
            return []
        scores = self.model.get_scores(terms)
        import numpy as np

        order = np.argsort(-scores, kind="stable")[:limit]
        return [(self.ids[i], float(scores[i])) for i in order if scores[i] > 0]
