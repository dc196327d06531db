"""Training rows for the grounding verifier: (evidence, claim, supported?) from ARES, SciFact and made-up negatives.

Every source becomes ``Example`` rows. ``group`` names what a row was made from (an ARES
question, a SciFact claim), so a held-out split never puts two rows of one group on both sides.

- ARES TSV (``document``, ``synthetic_query``, ``generated_answer``,
  ``Answer_Faithfulness_Label``): a relevant row's answer, read as an answer to its question
  (:func:`rag.query.verify_model.answer_claim`), against its document; ``Yes`` is supported.
  Made-up negatives: a faithful answer with a number changed, or replaced by another name or
  number taken from the same document (right words, wrong answer). ``context=True`` adds the
  context-relevance rows as (document, question) pairs, ``Yes`` = supported.
- ARES answerability (``answerable_examples``, the gate's question): a faithful row whose short
  answer appears in its document gives the question itself against a window holding the answer
  (supported), and against the same part of the document with every sentence that holds the
  answer removed (not supported; the answer claim too), MiniCheck-style.
- SciFact ``claims_train.csv`` beside a BEIR ``corpus.jsonl``: a SUPPORT claim against a
  window of its abstract that holds the rationale sentences is supported; the same claim with the
  rationale sentences removed is not (MiniCheck-style); a CONTRADICT claim is not; a claim
  without evidence (NOT ENOUGH INFO) against its cited abstract is not; a SUPPORT claim with a
  number or a name swapped is not.

Only training splits belong here: never SciFact's dev/test claims, HotpotQA or ClapNQ.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from rag.core.errors import ConfigError
from rag.query.verify_model import answer_claim

__all__ = ["Example", "ares_examples", "answerable_examples", "scifact_examples", "swap_number", "swap_entity", "remove_sentences",
           "split_sentences", "load_verifier_data", "ares_files", "split_groups"]

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)?)(?![\w])")
_NAME = re.compile(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*\b")
_STOP_NAMES = {"The", "A", "An", "In", "On", "It", "This", "That", "He", "She", "They", "We", "I", "His", "Her",
               "Its", "Their", "There", "These", "Those", "When", "What", "Who", "Which", "Where", "Why", "How",
               "After", "Before", "As", "At", "By", "For", "From", "If", "Of", "To", "With", "And", "But", "Or"}


@dataclass(frozen=True, slots=True)
class Example:
    """One training row: does ``evidence`` support ``claim``? ``kind`` says how the row was made."""

    evidence: str
    claim: str
    label: float
    kind: str
    group: str


def split_sentences(text: str) -> list[str]:
    """Sentences of an abstract (splits after . ! ? before a capital, digit or bracket)."""
    return [s for s in _SENTENCE.split(text.strip()) if s]


def remove_sentences(sentences: Sequence[str], drop: Iterable[int]) -> str:
    """The text without the sentences at the ``drop`` indices."""
    gone = set(drop)
    return " ".join(s for i, s in enumerate(sentences) if i not in gone)


def swap_number(text: str, rng: random.Random) -> str | None:
    """``text`` with one number changed to a different plausible value (None when it has no number)."""
    found = list(_NUMBER.finditer(text))
    if not found:
        return None
    m = rng.choice(found)
    raw = m.group(1)
    decimals = len(raw.split(".")[1]) if "." in raw else 0
    value = float(raw.replace(",", ""))
    for _ in range(10):
        factor = rng.choice([0.5, 0.7, 1.5, 2, 3, 10]) if value else 1
        new = value * factor + (rng.randint(1, 9) if value < 5 or rng.random() < 0.3 else 0)
        if 1000 < value < 2100 and decimals == 0 and "," not in raw:  # a year: move it a little
            new = value + rng.choice([-30, -12, -5, -2, 2, 5, 12, 30])
        out = f"{new:.{decimals}f}" if decimals else str(int(round(new)))
        if out != raw:
            return text[: m.start(1)] + out + text[m.end(1):]
    return None


def names(text: str) -> list[str]:
    """Capitalised names in ``text`` (runs of capitalised words, without sentence-start function words)."""
    out = []
    for m in _NAME.finditer(text):
        words = m.group(0).split()
        while words and words[0] in _STOP_NAMES:
            words = words[1:]
        if words and len(" ".join(words)) > 2:
            out.append(" ".join(words))
    return list(dict.fromkeys(out))


def swap_entity(text: str, pool: Sequence[str], rng: random.Random) -> str | None:
    """``text`` with one of its names replaced by a different name from ``pool`` (None when none fits)."""
    own = names(text)
    others = [p for p in pool if p not in own and p not in text]
    if not own or not others:
        return None
    target = rng.choice(own)
    return text.replace(target, rng.choice(others), 1)


def _read_tsv(path: Path) -> list[dict[str, str]]:
    csv.field_size_limit(1 << 30)
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        need = {"document", "synthetic_query", "Context_Relevance_Label", "generated_answer",
                "Answer_Faithfulness_Label"}
        if not need <= set(reader.fieldnames or ()):
            raise ConfigError(f"{path}: expected ARES columns {', '.join(sorted(need))}; "
                              f"got {', '.join(reader.fieldnames or ['nothing'])}")
        return list(reader)


def _clip_words(text: str, words: int) -> str:
    parts = text.split()
    return " ".join(parts[:words]) if len(parts) > words else text


def answer_window(document: str, query: str, answer: str, max_words: int) -> str:
    """A run of the document's sentences of at most ``max_words`` words (the whole document when it fits).

    Centred on the first sentence that contains the answer, else on the one sharing the most words
    with the question, the same rule for supported and unsupported rows.
    """
    if len(document.split()) <= max_words:
        return document
    sentences = split_sentences(document) or [document]
    needle = answer.lower().strip()
    hit = next((i for i, s in enumerate(sentences) if needle and needle in s.lower()), None)
    if hit is None:
        words = set(re.findall(r"\w+", query.lower()))
        hit = max(range(len(sentences)), key=lambda i: (len(words & set(re.findall(r"\w+", sentences[i].lower()))), -i))
    return _clip_words(_evidence("", sentences, _window("", sentences, [hit], max_words)), max_words)


def ares_examples(files: Sequence[Path], per_file: int | None, seed: int, context: bool = False,
                  max_words: int = 180) -> list[Example]:
    """Faithful / unfaithful answers of ARES rows, plus made-up wrong answers (see the module docstring).

    ``per_file``: rows of each label taken per file (seeded); documents are cut to a window of
    ``max_words`` words (:func:`answer_window`).
    """
    out: list[Example] = []
    for path in files:
        rng = random.Random(f"{seed}:{path.name}")
        rows = _read_tsv(path)
        stem = path.name.split("_")[0]
        relevant = [r for r in rows if (r["Context_Relevance_Label"] or "").strip() == "Yes"
                    and (r["Answer_Faithfulness_Label"] or "").strip() in ("Yes", "No")
                    and (r["generated_answer"] or "").strip() and (r["document"] or "").strip()]
        by_label: dict[str, list[dict[str, str]]] = defaultdict(list)
        for r in relevant:
            by_label[r["Answer_Faithfulness_Label"].strip()].append(r)
        for label in ("Yes", "No"):
            chosen = by_label[label]
            if per_file is not None and per_file < len(chosen):
                chosen = rng.sample(chosen, per_file)
            for r in chosen:
                query, answer = r["synthetic_query"].strip(), r["generated_answer"].strip()
                doc = answer_window(r["document"].strip(), query, answer, max_words)
                group = f"ares:{stem}:{query}"
                out.append(Example(doc, answer_claim(answer, query), 1.0 if label == "Yes" else 0.0,
                                   f"ares-{'faithful' if label == 'Yes' else 'unfaithful'}", group))
                if label != "Yes" or answer.upper() in ("SUPPORTS", "REFUTES"):  # FEVER verdicts have no swaps
                    continue
                swapped = swap_number(answer, rng)
                if swapped is not None and swapped.lower() not in doc.lower():
                    out.append(Example(doc, answer_claim(swapped, query), 0.0, "ares-number-swap", group))
                    continue
                pool = [n for n in names(doc) if len(n) > 3 and n.lower() not in answer.lower()
                        and answer.lower() not in n.lower()]
                if pool:  # a name the document does mention, given as the answer
                    out.append(Example(doc, answer_claim(rng.choice(pool), query), 0.0, "ares-other-name", group))
        if context:
            irrelevant = [r for r in rows if (r["Context_Relevance_Label"] or "").strip() == "No"]
            pos = [r for r in relevant if r["Answer_Faithfulness_Label"].strip() == "Yes"]
            k = per_file if per_file is not None else len(irrelevant)
            for label, pick in ((1.0, rng.sample(pos, min(k, len(pos)))),
                                (0.0, rng.sample(irrelevant, min(k, len(irrelevant))))):
                for r in pick:
                    out.append(Example(_clip_words(r["document"].strip(), max_words), r["synthetic_query"].strip(),
                                       label, "ares-context", f"ares:{stem}:{r['synthetic_query'].strip()}"))
    return out


def _answer_text(answer: str) -> str:
    return answer.strip().strip('"\'').rstrip(".").strip()


def answerable_examples(files: Sequence[Path], per_file: int, seed: int, max_words: int = 170) -> list[Example]:
    """Rows for the gate's question: is the question answered by this evidence? (see the module docstring)

    Up to ``per_file`` faithful ARES rows per file (seeded) whose answer, at most 8 words, is found in
    the document; rows share the group of the ARES question, so a held-out split keeps them together.
    """
    out: list[Example] = []
    for path in files:
        rng = random.Random(f"{seed}:answerable:{path.name}")
        stem = path.name.split("_")[0]
        usable = []
        for r in _read_tsv(path):
            answer, doc = _answer_text(r["generated_answer"] or ""), (r["document"] or "").strip()
            if ((r["Context_Relevance_Label"] or "").strip() != "Yes"
                    or (r["Answer_Faithfulness_Label"] or "").strip() != "Yes"
                    or not answer or len(answer.split()) > 8 or answer.upper() in ("SUPPORTS", "REFUTES")):
                continue
            sentences = split_sentences(doc) or [doc]
            hits = [i for i, s in enumerate(sentences) if answer.lower() in s.lower()]
            if hits and len(hits) < len(sentences):
                usable.append((r, answer, sentences, hits))
        for r, answer, sentences, hits in rng.sample(usable, min(per_file, len(usable))):
            query = r["synthetic_query"].strip()
            group = f"ares:{stem}:{query}"
            held = _clip_words(_evidence("", sentences, _window("", sentences, hits[:1], max_words)), max_words)
            rest = [s for i, s in enumerate(sentences) if i not in set(hits)]
            at = min(hits[0], len(rest) - 1)
            gone = _clip_words(_evidence("", rest, _window("", rest, [at], max_words)), max_words)
            if answer.lower() not in held.lower() or answer.lower() in gone.lower():
                continue
            out.append(Example(held, query, 1.0, "ares-question", group))
            out.append(Example(gone, query, 0.0, "ares-question-removed", group))
            out.append(Example(gone, answer_claim(answer, query), 0.0, "ares-answer-removed", group))
    return out


def _window(title: str, sentences: Sequence[str], keep: Sequence[int], max_words: int) -> list[int]:
    """Indices of a run of sentences around ``keep`` (all of them kept) that fits in ``max_words``."""
    chosen = sorted(set(i for i in keep if 0 <= i < len(sentences)))
    if not chosen:
        return []
    lo, hi = chosen[0], chosen[-1]
    words = len(title.split()) + sum(len(sentences[i].split()) for i in range(lo, hi + 1))
    while True:
        grew = False
        for j in (lo - 1, hi + 1):
            if 0 <= j < len(sentences) and words + len(sentences[j].split()) <= max_words:
                words += len(sentences[j].split())
                lo, hi = min(lo, j), max(hi, j)
                grew = True
        if not grew:
            return list(range(lo, hi + 1))


def _evidence(title: str, sentences: Sequence[str], indices: Sequence[int]) -> str:
    body = " ".join(sentences[i] for i in indices)
    return f"{title}. {body}" if title else body


def scifact_examples(folder: Path, seed: int, max_words: int = 170) -> list[Example]:
    """Rows from SciFact's ``claims/claims_train.csv`` and ``corpus.jsonl`` (the training claims only)."""
    claims_file = folder / "claims" / "claims_train.csv"
    corpus_file = folder / "corpus.jsonl"
    if not claims_file.is_file() or not corpus_file.is_file():
        raise ConfigError(f"{folder}: expected SciFact's corpus.jsonl and claims/claims_train.csv")
    corpus: dict[str, tuple[str, list[str]]] = {}
    with open(corpus_file, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                d = json.loads(line)
                corpus[str(d["_id"])] = (str(d.get("title") or "").rstrip("."), split_sentences(str(d.get("text") or "")))
    with open(claims_file, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rng = random.Random(f"{seed}:scifact")
    pool = [n for r in rows for n in names(r["claim"])]
    out: list[Example] = []
    for r in rows:
        claim, label = r["claim"].strip(), (r.get("evidence_label") or "").strip()
        group = f"scifact:{r['id']}"
        if not label:  # NOT ENOUGH INFO: the cited abstract says nothing decisive about the claim
            for doc in re.findall(r"\d+", r.get("cited_doc_ids") or "")[:1]:
                if doc in corpus:
                    title, sents = corpus[doc]
                    start = rng.randrange(max(1, len(sents)))
                    idx = _window(title, sents, [start], max_words)
                    out.append(Example(_evidence(title, sents, idx), claim, 0.0, "scifact-nei", group))
            continue
        doc = (r.get("evidence_doc_id") or "").strip()
        if doc not in corpus:
            continue
        title, sents = corpus[doc]
        rationale = [int(x) for x in re.findall(r"\d+", r.get("evidence_sentences") or "")]
        if not rationale or max(rationale) >= len(sents):
            continue
        idx = _window(title, sents, rationale, max_words)
        full = _evidence(title, sents, idx)
        out.append(Example(full, claim, 1.0 if label == "SUPPORT" else 0.0, f"scifact-{label.lower()}", group))
        rest = [i for i in idx if i not in set(rationale)]
        if rest:
            out.append(Example(_evidence(title, sents, rest), claim, 0.0, "scifact-rationale-removed", group))
        if label == "SUPPORT":
            swapped = swap_number(claim, rng) or swap_entity(claim, pool, rng)
            if swapped:
                out.append(Example(full, swapped, 0.0, "scifact-swap", group))
    return out


def load_verifier_data(src: str | Path, per_file: int | None, seed: int, exclude: Sequence[str] = (),
                       context: bool = False, max_words: int = 170) -> tuple[str, list[Example]]:
    """(kind, rows) of SRC: a SciFact folder (claims/claims_train.csv) or ARES .tsv rows (a file or a folder).

    ``exclude``: ARES file names (the part before the first '_', e.g. ``wow``) never read;
    ``max_words``: evidence is cut to a window of about that many words around what matters.
    """
    path = Path(src)
    if not path.exists():
        raise ConfigError(f"{src} not found; rag tune verifier --train takes ARES .tsv rows or a SciFact folder "
                          "(corpus.jsonl and claims/claims_train.csv)")
    if path.is_dir() and (path / "claims" / "claims_train.csv").is_file():
        return "scifact", scifact_examples(path, seed, max_words)
    if path.suffix == ".tsv" or (path.is_dir() and any(path.glob("*.tsv"))):
        return "ares", ares_examples(ares_files(path, exclude), per_file, seed, context, max_words)
    raise ConfigError(f"{src}: not ARES .tsv rows or a SciFact folder (corpus.jsonl and claims/claims_train.csv)")


def ares_files(path: Path, exclude: Sequence[str] = ()) -> list[Path]:
    """The ARES .tsv files of ``path`` (a file or a folder) not named in ``exclude``."""
    files = sorted(path.glob("*.tsv")) if path.is_dir() else [path]
    files = [f for f in files if f.name.split("_")[0] not in set(exclude)]
    if not files:
        raise ConfigError(f"{path}: every .tsv file is excluded by --exclude")
    return files


def split_groups(rows: Sequence[Example], fraction: float, seed: int, cap: int | None = None) -> tuple[list[Example], list[Example]]:
    """(train, held-out): a seeded ``fraction`` of the groups (at most ``cap`` rows) is kept aside."""
    groups = sorted({r.group for r in rows})
    random.Random(seed).shuffle(groups)
    n = max(1, round(len(groups) * fraction)) if fraction > 0 and len(groups) > 1 else 0
    held_groups = set(groups[:n])
    held = [r for r in rows if r.group in held_groups]
    if cap is not None and len(held) > cap:
        keep = set(random.Random(seed + 1).sample(range(len(held)), cap))
        held = [r for i, r in enumerate(held) if i in keep]
    train = [r for r in rows if r.group not in held_groups]
    return train, held
