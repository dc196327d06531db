"""PDFium (pypdfium2) against pypdf on real PDFs and on PDFs made to cross each of pypdf's safety limits.

    python benchmarks/pdf_extractors.py $DATA/messy-docs [--json]

Reads every ``*.pdf`` under the folder, plus one generated PDF per pypdf limit
(tests/pdf_limits.py: valid files whose text is known), with each extractor alone and with the
shipped loader (PDFium, pypdf for what PDFium cannot read). Per extractor: files read, files
failed by kind (password, limit, damage, no text), pages, seconds, and text fidelity:

- generated PDFs: the share of their known words found on the right page;
- real PDFs (no reference text): word agreement between the two extractors (F1 over word
  counts per file, averaged over the files both read); the per-file rows (``--json``) show where
  they part.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ingest.load_pdf import (
    NO_TEXT_REASON,
    PASSWORD_REASON,
    Extraction,
    extract_pdf,
    pdfium_pages,
    pypdf_pages,
)
from rag.core.errors import LoadError
from tests.pdf_limits import LIMITS, PAGE_TEXTS

_WORD = re.compile(r"\w+")


def _shipped(data: bytes) -> Extraction:
    """The loader as `rag ingest` runs it, in the same record as one extractor."""
    try:
        text, pages, _ = extract_pdf(data)
    except LoadError as exc:
        reason = str(exc)
        kind = ("password" if reason == PASSWORD_REASON else "no text" if reason == NO_TEXT_REASON
                else "limit" if "safety limit" in reason else "damage")
        return Extraction("shipped", failure=kind, detail=reason)  # type: ignore[arg-type]
    starts = [p.start for p in pages] + [len(text)]
    return Extraction("shipped", pages=[text[a:b].strip() for a, b in itertools.pairwise(starts)])


EXTRACTORS = {"pypdf": pypdf_pages, "PDFium": pdfium_pages, "shipped": _shipped}


def _words(text: str) -> collections.Counter[str]:
    return collections.Counter(w.lower() for w in _WORD.findall(text))


def _f1(a: collections.Counter[str], b: collections.Counter[str]) -> float:
    common = sum((a & b).values())
    return 0.0 if not common else 2 * common / (sum(a.values()) + sum(b.values()))


def _outcome(result: Extraction) -> str:
    if not result.opened:
        return str(result.failure)
    if not result.has_text:
        return "no text"
    return "read" if result.complete else "pages failed"


def _on_right_page(result: Extraction) -> float:
    """Share of the generated file's known words found on their own page."""
    found = total = 0
    for number, expected in enumerate(PAGE_TEXTS):
        page = result.pages[number] if result.opened and number < len(result.pages) else None
        words = _words(page or "")
        for word in _words(expected):
            total += 1
            found += word in words
    return found / total


def run(folder: Path) -> dict:
    """Every extractor on every file; per-file rows and per-extractor totals."""
    generated = Path(tempfile.mkdtemp(prefix="pdf-limits-"))
    for name, make in LIMITS.items():
        (generated / f"limit-{name}.pdf").write_bytes(make())
    files = sorted(folder.rglob("*.pdf")) + sorted(generated.glob("*.pdf"))
    rows, totals = [], {name: collections.Counter() for name in EXTRACTORS}
    fidelity: dict[str, list[float]] = {name: [] for name in EXTRACTORS}
    agreement: list[float] = []
    for path in files:
        data = path.read_bytes()
        row: dict = {"file": path.name}
        results = {}
        for name, extract in EXTRACTORS.items():
            start = time.perf_counter()
            results[name] = result = extract(data)
            seconds = time.perf_counter() - start
            outcome = _outcome(result)
            totals[name][outcome] += 1
            totals[name]["seconds"] += seconds
            totals[name]["pages"] += len(result.pages) if result.opened and result.has_text else 0
            row[name] = {"outcome": outcome, "detail": result.detail, "pages": len(result.pages),
                         "chars": sum(len(p or "") for p in result.pages), "seconds": round(seconds, 3)}
            if path.parent == generated:
                fidelity[name].append(_on_right_page(result))
        a, b = results["pypdf"], results["PDFium"]
        if path.parent != generated and a.has_text and b.has_text:
            agreement.append(_f1(_words(" ".join(p or "" for p in a.pages)), _words(" ".join(p or "" for p in b.pages))))
        rows.append(row)
    summary = {name: {**{k: round(v, 2) if k == "seconds" else v for k, v in totals[name].items()},
                      "generated_words_on_right_page": round(sum(fidelity[name]) / len(fidelity[name]), 3)}
               for name in EXTRACTORS}
    return {"files": len(files), "generated": len(LIMITS), "summary": summary,
            "pypdf_pdfium_word_f1_mean": round(sum(agreement) / max(len(agreement), 1), 3), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder of PDFs (e.g. $DATA/messy-docs)")
    parser.add_argument("--json", action="store_true", help="print every file's row too")
    args = parser.parse_args()
    if not args.folder.is_dir():
        parser.error(f"{args.folder} is not a folder (the public data sets: docs/data.md)")
    result = run(args.folder)
    if not args.json:
        result.pop("rows")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
