"""Training data for ``rag tune``: questions with their gold documents, from a suite, BEIR or ARES rows.

Every source becomes the same two things: a corpus of ``(source, text)`` documents to
index (so hard negatives can be mined with the project's own hybrid retriever), and
``TrainQuery`` items naming which of those sources answer each question.

- BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``): the split's
  judged queries; documents are ``title\\n\\ntext`` under ``beir:<folder>/<doc-id>``.
- Suite (``suite.jsonl`` with ``gold_sources`` naming files beside it, as ``rag eval
  import`` writes): each gold file's text under ``suite:<folder>/<path>``.
- ARES TSV (a ``*.tsv`` file or a folder of them, columns ``document``,
  ``synthetic_query``, ``Context_Relevance_Label``): rows labelled ``Yes`` give a
  question and its document; rows labelled ``No`` give a known irrelevant document.
  Sources are ``ares:<folder>/<sha1 of the text>``, so repeated documents are pooled.
"""

from __future__ import annotations

import csv
import hashlib
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from rag.core.errors import ConfigError

__all__ = ["TrainQuery", "TrainData", "load_train_data", "split_heldout"]


@dataclass(frozen=True, slots=True)
class TrainQuery:
    """A question, the sources that answer it, and sources known not to (besides mined ones)."""

    qid: str
    query: str
    gold: frozenset[str]
    negatives: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TrainData:
    """The documents to index (source -> text), the questions, and the collection to index them in."""

    kind: str
    name: str
    corpus: dict[str, str]
    queries: tuple[TrainQuery, ...]
    scope: str
    whole_documents: bool


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:50] or "data"


def _from_beir(folder: Path, split: str) -> TrainData:
    from evals.beir import load_beir

    data = load_beir(folder, split)
    scope = f"beir:{folder.resolve().name}"
    corpus = {f"{scope}/{d}": (f"{t}\n\n{x}" if t else x) for d, (t, x) in data.corpus.items()}
    queries = tuple(
        TrainQuery(qid, text, frozenset(f"{scope}/{d}" for d, rel in data.qrels[qid].items() if rel > 0))
        for qid, text in sorted(data.queries.items())
    )
    return TrainData("beir", folder.resolve().name, corpus, tuple(q for q in queries if q.gold), scope, True)


def _from_suite(path: Path) -> TrainData:
    from evals.suite import read_suite

    items = read_suite(path)
    root = path.parent
    scope = f"suite:{root.resolve().name}"
    corpus: dict[str, str] = {}
    queries: list[TrainQuery] = []
    for item in items:
        gold: set[str] = set()
        for rel in item.gold_sources or ():
            file = (root / rel).resolve()
            if not file.is_file() or not file.is_relative_to(root.resolve()):
                raise ConfigError(f"{path}: question {item.id!r} names gold source {rel!r}, which is not a file "
                                  f"inside {root}; rag tune needs gold_sources that are files beside the suite")
            source = f"{scope}/{rel}"
            corpus.setdefault(source, file.read_text(encoding="utf-8", errors="replace"))
            gold.add(source)
        if gold:
            queries.append(TrainQuery(item.id, item.question, frozenset(gold)))
    # Every other file of the suite's docs folder is a candidate negative too.
    docs = root / "docs"
    if docs.is_dir():
        for file in sorted(docs.rglob("*.txt")):
            rel = file.relative_to(root).as_posix()
            corpus.setdefault(f"{scope}/{rel}", file.read_text(encoding="utf-8", errors="replace"))
    return TrainData("suite", root.resolve().name, corpus, tuple(queries), scope, False)


def _ares_files(src: Path) -> list[Path]:
    files = sorted(src.glob("*.tsv")) if src.is_dir() else [src]
    if not files:
        raise ConfigError(f"{src} holds no .tsv files; expected ARES rows (document, synthetic_query, "
                          "Context_Relevance_Label)")
    return files


def _from_ares(src: Path, per_file: int | None, seed: int) -> TrainData:
    csv.field_size_limit(1 << 30)
    scope = f"ares:{_safe(src.resolve().name)}"
    corpus: dict[str, str] = {}
    queries: list[TrainQuery] = []
    for file in _ares_files(src):
        with open(file, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t")
            need = {"document", "synthetic_query", "Context_Relevance_Label"}
            if not need <= set(reader.fieldnames or ()):
                raise ConfigError(f"{file}: expected ARES columns {', '.join(sorted(need))}; "
                                  f"got {', '.join(reader.fieldnames or ['nothing'])}")
            gold: dict[str, set[str]] = defaultdict(set)
            negs: dict[str, set[str]] = defaultdict(set)
            for row in reader:
                query, doc = (row["synthetic_query"] or "").strip(), (row["document"] or "").strip()
                if not query or not doc:
                    continue
                source = f"{scope}/{hashlib.sha1(doc.encode('utf-8')).hexdigest()[:16]}"
                corpus[source] = doc
                label = (row["Context_Relevance_Label"] or "").strip().lower()
                (gold if label == "yes" else negs)[query].add(source)
        chosen = sorted(q for q in gold)
        if per_file is not None and per_file < len(chosen):
            chosen = sorted(random.Random(f"{seed}:{file.name}").sample(chosen, per_file))
        for i, q in enumerate(chosen):
            queries.append(TrainQuery(f"{file.stem}:{i}", q, frozenset(gold[q]),
                                      tuple(sorted(negs.get(q, set()) - gold[q]))))
    return TrainData("ares", _safe(src.resolve().name), corpus, tuple(queries), scope, True)


def load_train_data(src: str | Path, split: str = "train", per_file: int | None = None, seed: int = 13) -> TrainData:
    """Read SRC as a BEIR folder, a suite file or folder, or ARES TSV rows (detected from what is there)."""
    path = Path(src)
    if not path.exists():
        raise ConfigError(f"{src} not found; --train takes a suite (suite.jsonl), a BEIR folder or ARES .tsv rows")
    if path.is_dir() and (path / "corpus.jsonl").is_file():
        return _from_beir(path, split)
    if path.is_dir() and (path / "suite.jsonl").is_file():
        return _from_suite(path / "suite.jsonl")
    if path.is_file() and path.suffix == ".jsonl":
        return _from_suite(path)
    if path.suffix == ".tsv" or (path.is_dir() and any(path.glob("*.tsv"))):
        return _from_ares(path, per_file, seed)
    raise ConfigError(f"{src}: not a suite (suite.jsonl), a BEIR folder (corpus.jsonl, queries.jsonl, qrels/) "
                      "or ARES .tsv rows")


def split_heldout(queries: tuple[TrainQuery, ...], fraction: float, seed: int) -> tuple[list[TrainQuery], list[TrainQuery]]:
    """(train, held-out): a seeded random ``fraction`` of the questions is kept aside for early stopping."""
    order = list(queries)
    random.Random(seed).shuffle(order)
    n = max(1, round(len(order) * fraction)) if len(order) > 1 and fraction > 0 else 0
    return order[n:], order[:n]
