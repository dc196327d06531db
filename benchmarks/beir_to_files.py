"""Write a BEIR corpus out as one text file per document (title, blank line, text).

Used to benchmark `rag ingest` on a real folder:

    python benchmarks/beir_to_files.py ../shared/data/scifact /tmp/scifact-files
    rag bench ingest /tmp/scifact-files --json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("beir_dir", type=Path, help="BEIR folder with corpus.jsonl")
    parser.add_argument("out_dir", type=Path, help="folder to write <doc-id>.txt files into")
    args = parser.parse_args(argv)
    corpus = args.beir_dir / "corpus.jsonl"
    if not corpus.is_file():
        print(f"error: {corpus} not found; pass a BEIR folder (e.g. ../shared/data/scifact)", file=sys.stderr)
        return 2
    args.out_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    with corpus.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            doc = json.loads(line)
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(doc["_id"])) + ".txt"
            title = (doc.get("title") or "").strip()
            body = (doc.get("text") or "").strip()
            (args.out_dir / name).write_text(f"{title}\n\n{body}\n" if title else f"{body}\n", encoding="utf-8")
            count += 1
    print(f"wrote {count} files to {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
