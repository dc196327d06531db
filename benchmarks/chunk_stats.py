"""How many chunks are fragments: the shipped chunker against the splitter alone, on the same files.

    python benchmarks/chunk_stats.py FOLDER [FOLDER ...] [--chunk-size 1000] [--overlap 150] [--ext md]

Loads every supported file under the folders (the ingest rules: .ragignore, no symlinks out),
chunks it twice and prints, as JSON, for each chunker: chunks, chunks under 100 characters,
chunks that are only Markdown headings, and mean characters per chunk.

- ``shipped``: ``ingest.chunk`` as `rag ingest` runs it (short pieces and heading-only sections
  join their neighbours);
- ``splitter_only``: the same code with joining turned off (``min_chars`` 0), which is
  langchain's recursive splitter within page and section boundaries.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.chunk import ChunkSettings, chunk_document  # noqa: E402
from ingest.discover import discover  # noqa: E402
from ingest.load import is_supported, load_document  # noqa: E402
from rag.core.errors import RagError  # noqa: E402
from rag.core.records import Chunk  # noqa: E402


@dataclass(frozen=True, slots=True)
class _NoJoining(ChunkSettings):
    @property
    def min_chars(self) -> int:
        return 0


def _heading_only(text: str) -> bool:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return bool(lines) and all(line.startswith("#") for line in lines)


def _stats(chunks: list[Chunk]) -> dict[str, float | int]:
    return {
        "chunks": len(chunks),
        "under_100_chars": sum(len(c.text.strip()) < 100 for c in chunks),
        "heading_only": sum(_heading_only(c.text) for c in chunks),
        "mean_chars": round(statistics.fmean(len(c.text) for c in chunks), 1) if chunks else 0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--overlap", type=int, default=150)
    parser.add_argument("--ext", default="", help="only files with this extension (e.g. md)")
    args = parser.parse_args(argv)
    found = discover(args.folders)
    shipped, plain = ChunkSettings(args.chunk_size, args.overlap), _NoJoining(args.chunk_size, args.overlap)
    by: dict[str, list[Chunk]] = {"shipped": [], "splitter_only": []}
    files = failed = 0
    for f in found.files:
        if not is_supported(f.path) or (args.ext and f.path.suffix.lower() != "." + args.ext.lower()):
            continue
        try:
            doc = load_document(f.path, f.source)
        except RagError:
            failed += 1
            continue
        files += 1
        by["shipped"] += chunk_document(doc, shipped)
        by["splitter_only"] += chunk_document(doc, plain)
    out = {"files": files, "unreadable": failed, "chunk_size": args.chunk_size, "overlap": args.overlap}
    out |= {name: _stats(chunks) for name, chunks in by.items()}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
