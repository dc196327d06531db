"""Carry a long `rag eval run`'s per-question cache across machines, as gzipped parts in the repo.

A full answer run on 2 CPU cores takes longer than one working session, and a session's machine
does not outlive it. The run's cache (``HOME/eval-cache/*.jsonl``, one line per finished
question) is what makes ``rag eval run`` resume; this script stores it as append-only parts and
puts it back, so the next session's rerun of the same command resumes where the last one stopped.

    python benchmarks/eval_cache_parts.py save CACHE.jsonl DIR      # new lines -> DIR/cache-DATE.jsonl.gz
    python benchmarks/eval_cache_parts.py restore CACHE.jsonl DIR   # all parts -> CACHE.jsonl
    python benchmarks/eval_cache_parts.py results OUT.jsonl DIR [--ids RUN.jsonl]
        # the stored questions as `--out` result lines (only the ids of another run's --out with --ids),
        # for `rag eval compare` and interim numbers while the run goes on

The cache file's name and every key depend on the suite's absolute path, the home, the
collection's content, the settings and the prompts: rerun from the same commit with the same
paths, and check with ``--limit 3`` that the cached questions are reported as cached.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import sys
from pathlib import Path


def _keys(lines: list[str]) -> list[str]:
    return [json.loads(line)["key"] for line in lines]


def _read_parts(folder: Path, skip: Path | None = None) -> list[str]:
    lines: list[str] = []
    for part in sorted(folder.glob("cache-*.jsonl.gz")):
        if part != skip:
            with gzip.open(part, "rt", encoding="utf-8") as fh:
                lines += [line for line in fh.read().splitlines() if line.strip()]
    return lines


def save(cache: Path, folder: Path) -> str:
    today = folder / f"cache-{dt.date.today().isoformat()}.jsonl.gz"
    known = set(_keys(_read_parts(folder, skip=today)))
    lines = [line for line in cache.read_text(encoding="utf-8").splitlines() if line.strip()]
    new = [line for line, key in zip(lines, _keys(lines)) if key not in known]
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(line + "\n" for line in new)
    if today.exists() and gzip.decompress(today.read_bytes()).decode("utf-8") == text:
        return f"no new lines; {today} unchanged ({len(known) + len(new)} questions in all parts)"
    tmp = today.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))  # mtime 0: same lines, same bytes
    tmp.replace(today)
    return f"{len(new)} new lines -> {today} ({len(known) + len(new)} questions in all parts)"


def restore(cache: Path, folder: Path) -> str:
    lines = _read_parts(folder)
    if cache.exists() and len(cache.read_text(encoding="utf-8").splitlines()) >= len(lines):
        return f"{cache} already holds at least the {len(lines)} stored lines; left alone"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return f"{len(lines)} lines -> {cache}"


def results(out: Path, folder: Path, ids_from: Path | None = None) -> str:
    rows = [json.loads(line)["result"] for line in _read_parts(folder)]
    if ids_from is not None:
        wanted = {json.loads(line)["id"] for line in ids_from.read_text(encoding="utf-8").splitlines() if line.strip()}
        rows = [r for r in rows if r["id"] in wanted]
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return f"{len(rows)} result lines -> {out}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("save", "restore", "results"))
    parser.add_argument("cache", type=Path, help="the run's cache file (results: the output file)")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--ids", type=Path, default=None, help="results: keep only the ids of this --out file")
    args = parser.parse_args(argv)
    if args.action == "results":
        print(results(args.cache, args.folder, args.ids))
    else:
        print(save(args.cache, args.folder) if args.action == "save" else restore(args.cache, args.folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
