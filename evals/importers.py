"""Turn public QA/retrieval datasets into an evaluation suite plus a folder of documents.

``import_suite(kind, src, out)`` writes ``OUT/suite.jsonl`` (see ``evals.suite``) and
``OUT/docs/*.txt`` (one document per file: title line, blank line, text), ready for
``rag ingest OUT/docs``. ``gold_sources`` are paths relative to OUT (``docs/<name>.txt``).

Kinds: ``beir`` (a BEIR folder, split "test"), ``hotpotqa`` (the IRCoT ``dev_subsampled.jsonl``
or its folder) and ``clapnq`` (the folder with ``*_answerable.jsonl`` / ``*_unanswerable.jsonl``).
Document names are derived from the title (BEIR: the doc id) made filename-safe; names
that collide (case-insensitively) get ``-2``, ``-3``... in a fixed order, so the same source
always gives the same names, whatever the order of its questions.
"""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from evals.beir import load_beir
from evals.jsonl import iter_objects
from evals.metrics import EvalDataError
from evals.suite import SuiteItem, write_suite

__all__ = ["KINDS", "ImportSourceError", "ImportSummary", "import_suite", "safe_name"]

KINDS: tuple[str, ...] = ("beir", "hotpotqa", "clapnq")
_UNSAFE = re.compile(r"[^\w.()-]+")
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
_MAX_NAME_BYTES = 120


class ImportSourceError(EvalDataError):
    """The dataset to import is missing or malformed, or OUT cannot be written as asked."""


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What an import wrote: counts, and where the suite and the documents are."""

    kind: str
    out: Path
    suite: Path
    docs_dir: Path
    questions: int
    documents: int
    answerable: int = 0
    unanswerable: int = 0
    duplicates_merged: int = 0
    gold_missing: int = 0


def safe_name(text: str, fallback: str = "doc") -> str:
    """``text`` as a portable file name stem: word characters, ``.()-`` and ``_``, <= 120 bytes."""
    name = _UNSAFE.sub("_", unicodedata.normalize("NFKC", text)).strip("._-")
    while len(name.encode("utf-8")) > _MAX_NAME_BYTES:
        name = name[:-1]
    name = name.rstrip("._-")
    if not name or name.split(".")[0].upper() in _RESERVED:
        name = f"{fallback}_{name}" if name else fallback
    return name


class _Corpus:
    """Deduplicated documents keyed by ``key``; names are assigned once all are known."""

    def __init__(self) -> None:
        self.docs: dict[Hashable, tuple[str, str, str]] = {}  # key -> (name basis, title, text)
        self.seen = 0
        self.gold_missing = 0  # gold documents named by qrels but absent from the corpus (dropped)

    def add(self, key: Hashable, basis: str, title: str, text: str) -> Hashable:
        self.seen += 1
        self.docs.setdefault(key, (basis, title, text))
        return key

    def paths(self) -> dict[Hashable, str]:
        """key -> ``docs/<name>.txt``, unique case-insensitively and independent of insertion order."""
        groups: dict[str, list[Hashable]] = {}
        for key, (basis, _, _) in self.docs.items():
            groups.setdefault(safe_name(basis).lower(), []).append(key)
        used: set[str] = set()
        out: dict[Hashable, str] = {}
        for stem_key in sorted(groups):
            members = sorted(groups[stem_key], key=lambda k: self.docs[k])
            n = 1
            for key in members:
                stem = safe_name(self.docs[key][0])
                while (name := stem if n == 1 else f"{stem}-{n}").lower() in used:
                    n += 1
                used.add(name.lower())
                out[key] = f"docs/{name}.txt"
        return out


@dataclass(frozen=True, slots=True)
class _Pending:
    item: SuiteItem
    gold: tuple[Hashable, ...]


def _get(obj: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, typ) or isinstance(value, bool) and typ is not bool:
        raise ImportSourceError(f'{where}: expected "{key}" of type {getattr(typ, "__name__", typ)}, got {value!r:.60}')
    return value


def _unique(values: Iterator[str] | list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v.strip()))


def _beir(src: Path, corpus: _Corpus) -> list[_Pending]:
    data = load_beir(src, split="test")
    for doc_id, (title, text) in data.corpus.items():
        corpus.add(doc_id, doc_id, title, text)
    pending = []
    for qid, question in data.queries.items():
        relevant = [d for d, rel in data.qrels.get(qid, {}).items() if rel > 0]
        gold = tuple(d for d in relevant if d in data.corpus)
        corpus.gold_missing += len(relevant) - len(gold)
        pending.append(_Pending(SuiteItem(id=qid, question=question), gold))
    return pending


def _hotpotqa_file(src: Path) -> Path:
    if src.is_file():
        return src
    if src.is_dir():
        if (src / "dev_subsampled.jsonl").is_file():
            return src / "dev_subsampled.jsonl"
        files = sorted(src.glob("*.jsonl"))
        if len(files) == 1:
            return files[0]
    raise ImportSourceError(f"{src}: expected the IRCoT HotpotQA file (dev_subsampled.jsonl) or a folder holding it")


def _hotpotqa(src: Path, corpus: _Corpus) -> list[_Pending]:
    pending = []
    for where, obj in iter_objects(_hotpotqa_file(src), ImportSourceError):
        qid = str(_get(obj, "question_id", (str, int), where))
        question = _get(obj, "question_text", str, where)
        gold, gold_texts = [], []
        for ctx in _get(obj, "contexts", list, where):
            if not isinstance(ctx, dict):
                raise ImportSourceError(f'{where}: "contexts" must hold objects with title and paragraph_text')
            title = _get(ctx, "title", str, where).strip()
            text = _get(ctx, "paragraph_text", str, where).strip()
            key = corpus.add((title, text), title, title, text)
            if ctx.get("is_supporting") is True:
                gold.append(key)
                gold_texts.append(text)
        spans = [s for a in obj.get("answers_objects") or [] if isinstance(a, dict)
                 for s in a.get("spans") or [] if isinstance(s, str)]
        item = SuiteItem(id=qid, question=question, answers=_unique(spans), gold_contexts=tuple(gold_texts),
                         answerable=True)
        pending.append(_Pending(item, tuple(dict.fromkeys(gold))))
    return pending


def _clapnq_files(src: Path) -> list[tuple[Path, bool]]:
    files = [src] if src.is_file() else sorted(src.glob("*.jsonl")) if src.is_dir() else []
    found = [(f, "unanswerable" not in f.name) for f in files if "answerable" in f.name]
    if not found:
        raise ImportSourceError(f"{src}: expected a CLAP NQ folder with *_answerable.jsonl and/or *_unanswerable.jsonl")
    return sorted(found, key=lambda fa: not fa[1])  # answerable first


def _clapnq(src: Path, corpus: _Corpus) -> list[_Pending]:
    pending = []
    for path, answerable in _clapnq_files(src):
        for where, obj in iter_objects(path, ImportSourceError):
            qid = str(_get(obj, "id", (str, int), where))
            question = _get(obj, "input", str, where)
            gold = []
            for p in _get(obj, "passages", list, where):
                if not isinstance(p, dict):
                    raise ImportSourceError(f'{where}: "passages" must hold objects with title and text')
                title, text = _get(p, "title", str, where).strip(), _get(p, "text", str, where).strip()
                gold.append(corpus.add((title, text), title, title, text))
            outputs = [o for o in obj.get("output") or [] if isinstance(o, dict)]
            answers = _unique([o.get("answer") or "" for o in outputs]) if answerable else ()
            sentences = _unique([s for o in outputs for s in o.get("selected_sentences") or [] if isinstance(s, str)])
            item = SuiteItem(id=qid, question=question, answers=answers,
                             gold_contexts=sentences if answerable else (), answerable=answerable)
            pending.append(_Pending(item, tuple(dict.fromkeys(gold))))
    return pending


_READERS = {"beir": _beir, "hotpotqa": _hotpotqa, "clapnq": _clapnq}


def _prepare_out(out: Path, overwrite: bool) -> Path:
    """Check OUT and return a fresh staging folder ``OUT/.tmp``."""
    if out.exists() and not out.is_dir():
        raise ImportSourceError(f"{out} is a file: expected a folder (new or empty) for the suite and documents")
    if out.is_dir() and not overwrite:
        present = sorted(p.name for p in out.iterdir() if p.name != ".tmp")
        if present:
            raise ImportSourceError(
                f"{out} is not empty (holds {present[0]!r}): choose an empty folder or overwrite it"
            )
    staging = out / ".tmp"
    if staging.exists():
        shutil.rmtree(staging)
    (staging / "docs").mkdir(parents=True)
    return staging


def _commit(staging: Path, out: Path) -> None:
    """Move the staged ``docs/`` and ``suite.jsonl`` into OUT, replacing older ones."""
    for name in ("docs", "suite.jsonl"):
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(staging / name, target)
    staging.rmdir()


def import_suite(kind: str, src: str | Path, out: str | Path, *, overwrite: bool = False) -> ImportSummary:
    """Import dataset ``src`` of ``kind`` (one of ``KINDS``) into ``out``; see the module docstring.

    Refuses a non-empty ``out`` unless ``overwrite`` (which replaces ``out/docs`` and
    ``out/suite.jsonl`` and leaves other files alone). Everything is written under
    ``out/.tmp`` first and moved into place only when complete. Raises ``ImportSourceError``
    (or ``BeirFormatError``), both ``RagError``, with a one-line message.
    """
    if kind not in _READERS:
        raise ImportSourceError(f"unknown suite kind {kind!r}: expected one of {', '.join(KINDS)}")
    src, out = Path(src), Path(out)
    if not src.exists():
        raise ImportSourceError(f"{src} not found: expected the {kind} dataset to import")
    corpus = _Corpus()
    pending = _READERS[kind](src, corpus)
    if not pending:
        raise ImportSourceError(f"{src} holds no questions to import as a {kind} suite")
    created = not out.exists()
    staging = _prepare_out(out, overwrite)
    try:
        paths = corpus.paths()
        for key, (_, title, text) in corpus.docs.items():
            body = f"{title}\n\n{text}\n" if title.strip() else f"{text}\n"
            (staging / paths[key]).write_text(body, encoding="utf-8", newline="\n")
        items = [replace(p.item, gold_sources=tuple(paths[k] for k in p.gold)) for p in pending]
        write_suite(items, staging / "suite.jsonl")
        _commit(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    return ImportSummary(
        kind=kind, out=out, suite=out / "suite.jsonl", docs_dir=out / "docs", questions=len(items),
        documents=len(corpus.docs), answerable=sum(1 for i in items if i.answerable is True),
        unanswerable=sum(1 for i in items if i.answerable is False),
        duplicates_merged=corpus.seen - len(corpus.docs), gold_missing=corpus.gold_missing,
    )
