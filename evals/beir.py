"""Read a BEIR-format dataset folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``).

BEIR is the common format of public retrieval benchmarks (SciFact, NFCorpus, FiQA, ...).
The corpus is read one line at a time (real BEIR corpora reach millions of documents),
and every problem is reported as one line naming the file, the line and what was
expected, so a broken download is easy to spot.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from evals.jsonl import iter_objects
from evals.metrics import EvalDataError, Qrels, read_qrels_tsv


class BeirFormatError(EvalDataError):
    """A BEIR folder lacks a file, or one of its lines is not what BEIR specifies."""


@dataclass(frozen=True, slots=True)
class BeirData:
    """One split of a BEIR dataset.

    ``corpus``: doc id -> (title, text); ``queries``: query id -> text, only the queries
    judged in this split's qrels; ``qrels``: query id -> doc id -> relevance.
    """

    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: Qrels
    split: str = "test"


def available_splits(folder: str | Path) -> list[str]:
    """The splits a BEIR folder has qrels for (``qrels/*.tsv`` names), sorted."""
    qrels_dir = Path(folder) / "qrels"
    return sorted(p.stem for p in qrels_dir.glob("*.tsv")) if qrels_dir.is_dir() else []


def _need(path: Path, folder: Path, split: str) -> Path:
    if not path.is_file():
        splits = ", ".join(available_splits(folder)) or "none"
        raise BeirFormatError(
            f"{path} not found: BEIR folder needs corpus.jsonl, queries.jsonl and "
            f"qrels/<split>.tsv (split {split!r}); available splits: {splits}"
        )
    return path


def _read_jsonl(path: Path, fields: tuple[str, ...]) -> Iterator[tuple[str, dict[str, object]]]:
    """("<file> line <n>", object) for each non-blank line; checks JSON and the required fields."""
    expected = "one JSON object per line with " + ", ".join(f'"{f}"' for f in fields)
    for where, obj in iter_objects(path, BeirFormatError, f"; expected {expected}"):
        if any(f not in obj for f in fields):
            raise BeirFormatError(f"{where}: expected {expected}, got {sorted(obj)}")
        yield where, obj


def _text(obj: dict[str, object], key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BeirFormatError(f"{where}: \"{key}\" must be a string, got {type(value).__name__}")
    return str(value)


def iter_corpus(path: str | Path) -> Iterator[tuple[str, str, str]]:
    """Stream ``(doc_id, title, text)`` from a BEIR ``corpus.jsonl`` without loading it whole.

    A missing or null title is "". Duplicate ids are an error (they would make qrels
    ambiguous).
    """
    path = Path(path)
    seen: set[str] = set()
    for where, obj in _read_jsonl(path, ("_id", "text")):
        doc_id = _text(obj, "_id", where)
        if not doc_id:
            raise BeirFormatError(f'{where}: "_id" is empty')
        if doc_id in seen:
            raise BeirFormatError(f"{where}: document id {doc_id!r} appears twice")
        seen.add(doc_id)
        yield doc_id, _text(obj, "title", where), _text(obj, "text", where)


def load_beir(folder: str | Path, split: str = "test") -> BeirData:
    """Load a BEIR folder's corpus, the queries judged in ``split`` and that split's qrels.

    Raises ``BeirFormatError`` (a ``RagError``) for a missing file, an unknown split, a
    malformed line, or qrels naming a query that ``queries.jsonl`` lacks.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BeirFormatError(f"{folder} is not a folder: expected a BEIR dataset folder with corpus.jsonl, queries.jsonl and qrels/")
    corpus_path = _need(folder / "corpus.jsonl", folder, split)
    queries_path = _need(folder / "queries.jsonl", folder, split)
    qrels_path = _need(folder / "qrels" / f"{split}.tsv", folder, split)

    qrels = read_qrels_tsv(qrels_path)
    if not qrels:
        raise BeirFormatError(f"{qrels_path} holds no judgments: expected 'query-id<TAB>corpus-id<TAB>score' lines")
    queries: dict[str, str] = {}
    for where, obj in _read_jsonl(queries_path, ("_id", "text")):
        qid = _text(obj, "_id", where)
        if qid in qrels:
            queries[qid] = _text(obj, "text", where)
    lacking = [q for q in qrels if q not in queries]
    if lacking:
        raise BeirFormatError(
            f"{qrels_path} judges {len(lacking)} queries missing from {queries_path} (first: {lacking[0]!r})"
        )
    corpus = {doc_id: (title, text) for doc_id, title, text in iter_corpus(corpus_path)}
    return BeirData(corpus=corpus, queries=queries, qrels=qrels, split=split)


def beir_documents(data: BeirData) -> Iterator[tuple[str, str, str]]:
    """``(doc_id, title, text)`` for every corpus document, in file order (for indexing)."""
    for doc_id, (title, text) in data.corpus.items():
        yield doc_id, title, text
