"""Multi-hop sets the project was not tuned on: questions over two computing dictionaries.

HotpotQA dev-500 is where every multi-hop setting was chosen. These sets are built differently.
The collection is a dictionary from a Debian package (a registry package), one file per entry:
FOLDOC, the Free On-line Dictionary of Computing (``dict-foldoc``, 9,719 entries kept; GFDL, editor
Denis Howe), or the Jargon File 4.4.7 (``dict-jargon``; public domain). Each question needs two
entries: a bridge question names (or describes) entry A, whose text refers to entry B, and asks
for a fact only B states; a comparison question asks about two entries side by side. The
questions (``benchmarks/data/NAME-multihop/questions.jsonl``, with how they were written) come
from candidate pairs drawn at random from the dictionary's cross-references (``pairs``, seed
fixed) and were frozen before any retrieval ran on them.

    apt-get download dict-foldoc && dpkg-deb -x dict-foldoc_*.deb /tmp/foldoc
    python benchmarks/dictionary_multihop.py build /tmp/foldoc/usr/share/dictd --out /tmp/suites/foldoc
    python benchmarks/hotpotqa_multihop.py /tmp/suites/foldoc --home H --collection foldoc --mode single,links,graph

(the same with ``dict-jargon``.) ``pairs`` writes the candidate pairs the questions were written from:

    python benchmarks/dictionary_multihop.py pairs /tmp/foldoc/usr/share/dictd --n 240 --seed 25 --out pairs.jsonl
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

DATA = Path(__file__).parent / "data"
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_REF = re.compile(r"\{([^{}]+)\}")
MIN_BODY = 100  # entries shorter than this (mostly "see {X}" redirects) are left out of the collection


def _number(text: str) -> int:
    n = 0
    for ch in text:
        n = n * 64 + _B64.index(ch)
    return n


def database(folder: Path) -> str:
    """The name of the one dictd database in ``folder`` (foldoc, jargon)."""
    names = sorted(p.stem for p in folder.glob("*.index"))
    if len(names) != 1:
        raise SystemExit(f"{folder}: expected one dictd database (NAME.index + NAME.dict.dz), found {names or 'none'}")
    return names[0]


def read_entries(folder: Path) -> list[tuple[list[str], str]]:
    """The dictionary's entries as (index headwords, raw text), one per distinct entry, in file order."""
    name = database(folder)
    dz = folder / f"{name}.dict.dz"
    raw = gzip.decompress(dz.read_bytes()) if dz.exists() else (folder / f"{name}.dict").read_bytes()
    spans: dict[tuple[int, int], list[str]] = {}
    for line in (folder / f"{name}.index").read_text(encoding="utf-8").splitlines():
        head, off, size = line.split("\t")
        spans.setdefault((_number(off), _number(size)), []).append(head)
    return [(heads, raw[o:o + n].decode("utf-8", "replace")) for (o, n), heads in sorted(spans.items())]


def clean(text: str) -> tuple[str, str]:
    """(title, body) of one entry: cross-reference braces removed, wrapped lines joined into paragraphs."""
    title, _, body = text.partition("\n")
    body = _REF.sub(lambda m: " ".join(m.group(1).split()).strip("()"), body)
    paragraphs = re.split(r"\n\s*\n", body)
    text = "\n\n".join(" ".join(ln.strip() for ln in p.splitlines() if ln.strip()) for p in paragraphs)
    return title.strip(), text.strip()


def file_name(title: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._+-]+", "_", title).strip("_.")[:80] or "entry"
    name, i = f"{base}.txt", 1
    while name.lower() in used:
        i += 1
        name = f"{base}_{i}.txt"
    used.add(name.lower())
    return name


def collection(folder: Path) -> dict[str, tuple[str, str]]:
    """title -> (file name, document text) for every entry kept (body of at least MIN_BODY characters)."""
    out: dict[str, tuple[str, str]] = {}
    used: set[str] = set()
    for _heads, text in read_entries(folder):
        title, body = clean(text)
        if len(body) < MIN_BODY or title in out or title.startswith("00-"):
            continue
        out[title] = (file_name(title, used), f"{title}\n\n{body}\n")
    return out


def pairs(folder: Path, n: int, seed: int, max_in: int) -> list[dict[str, str]]:
    """Random (A, B) with A's text referring to B, both substantial, B not a hub (<= max_in referrers)."""
    entries = read_entries(folder)
    by_head: dict[str, str] = {}
    raw: dict[str, str] = {}
    for heads, text in entries:
        title = text.partition("\n")[0].strip()
        raw.setdefault(title, text)
        for h in heads:
            by_head.setdefault(h.lower(), title)
    kept = {t for t, text in raw.items() if len(clean(text)[1]) >= 300}
    refs: dict[str, set[str]] = {}
    for title, text in raw.items():
        if title in kept:
            # a reference broken across lines ({\n X}) is not looked up: the FOLDOC questions were written
            # from pairs drawn this way, and the same seed must draw them again
            refs[title] = {by_head[r.lower()] for r in _REF.findall(text) if r.lower() in by_head} - {title}
    indeg = Counter(b for targets in refs.values() for b in targets)
    cand = sorted((a, b) for a, targets in refs.items() for b in targets if b in kept and indeg[b] <= max_in)
    rng = random.Random(seed)
    picked = rng.sample(cand, min(n, len(cand)))
    return [{"a": a, "a_text": clean(raw[a])[1], "b": b, "b_text": clean(raw[b])[1]} for a, b in picked]


def build(folder: Path, questions: Path, out: Path) -> dict[str, int]:
    """docs/ (one file per kept entry) and suite.jsonl (gold_sources: the two entries' files)."""
    docs = collection(folder)
    (out / "docs").mkdir(parents=True, exist_ok=True)
    for name, text in docs.values():
        path = out / "docs" / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    rows = []
    for line in questions.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        q = json.loads(line)
        missing = [t for t in q["supporting"] if t not in docs]
        if missing:
            raise SystemExit(f"question {q['id']}: no entry titled {missing} in {folder}")
        rows.append({
            "id": q["id"], "question": q["question"], "answers": [q["answer"]],
            "gold_sources": ["docs/" + docs[t][0] for t in q["supporting"]],
            "gold_contexts": [docs[t][1] for t in q["supporting"]], "answerable": True,
        })
    (out / "suite.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return {"documents": len(docs), "questions": len(rows)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="the collection and suite from the dictionary folder")
    b.add_argument("dictd", type=Path, help="folder with NAME.index and NAME.dict.dz (the package's usr/share/dictd)")
    b.add_argument("--questions", type=Path, default=None,
                   help="default: benchmarks/data/NAME-multihop/questions.jsonl for the database NAME")
    b.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("pairs", help="random cross-referenced entry pairs to write questions from")
    p.add_argument("dictd", type=Path)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--seed", type=int, default=25)
    p.add_argument("--max-in", type=int, default=15, help="leave out targets referred to by more entries")
    p.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.cmd == "build":
        questions = args.questions or DATA / f"{database(args.dictd)}-multihop" / "questions.jsonl"
        print(json.dumps(build(args.dictd, questions, args.out)))
    else:
        rows = pairs(args.dictd, args.n, args.seed, args.max_in)
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        print(json.dumps({"pairs": len(rows)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
