"""The entity graph's cost: built from the store, loaded from its file, updated after one changed file.

On a BEIR corpus (SciFact: 5,183 abstracts, one chunk each) in a scratch home under ``--work``
(an ingested collection is copied from ``--home`` when given, else the corpus is ingested there):

- ``store``: every payload read from the store and the graph built from the names (what every
  process paid before the graph had a file, and what a missing or damaged file costs);
- ``load``: the graph read from its file (what a cold ``rag ask`` pays while the collection is
  unchanged);
- ``update``: one document's text changed and re-ingested (with ``[multihop] mode = "off"``, so
  the ingest leaves the file alone), then the graph brought in step: the manifest compared, that
  document's chunks read, the edges rebuilt from the kept names. Alternates two versions of the
  document, one re-ingest per repeat.

Each figure is the median of ``--repeat`` runs, the in-memory graph (``EntityGraph``) included.
Every graph is checked to be the graph built from the store (same chunks, names, edges, weights).
``--scale K`` adds a synthetic collection of the corpus's names K times over (each copy with its
own names) to time the build, the file, an update of one chunk's names (past the store read) and
one walk at that size.

    python benchmarks/graph_load.py $DATA/scifact --home /tmp/mhg/home --work /tmp/gl --out graph_load.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.core.config import Settings  # noqa: E402
import numpy as np  # noqa: E402

from rag.core.entity_graph import (  # noqa: E402
    GRAPH_FILE, ChunkNames, GraphArrays, GraphFile, _merge, build_edges, manifest_states, read_store, sync_graph,
    write_graph,
)
from rag.core.home import collection_paths  # noqa: E402
from rag.query.graph import EntityGraph  # noqa: E402

NEW_SENTENCE = " Marie Curie and Pierre Curie discussed this at the Karolinska Institute in Stockholm."


def timed(fn: Callable[[], Any], repeat: int) -> tuple[Any, float]:
    """The last result and the median seconds of ``repeat`` calls."""
    seconds, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - t0)
    return result, statistics.median(seconds)


def ingest(folder: Path, home: Path, collection: str, changed: str | None = None, version: int = 0) -> None:
    """Ingest the corpus as ``rag eval beir`` does, document ``changed`` given another sentence in ``version`` 1."""
    from evals.beir import beir_documents, load_beir
    from evals.beir_run import beir_settings
    from ingest.pipeline import Ingestor

    data = load_beir(folder, "test")
    scope = f"beir:{folder.resolve().name}"
    settings = Settings.model_validate({"multihop": {"mode": "off"}})

    def docs():  # type: ignore[no-untyped-def]
        for doc_id, title, text in beir_documents(data):
            text = text + NEW_SENTENCE if doc_id == changed and version else text
            yield f"{scope}/{doc_id}", f"{title}\n\n{text}" if title else text, title

    Ingestor(beir_settings(settings), home, collection).run_texts(docs(), scope)


def from_store(ctx: Any, paths: Any) -> GraphArrays:
    return build_edges(read_store(ctx.store, manifest_states(paths.manifest)))


def load(path: Path) -> GraphArrays:
    stored = GraphFile.open(path)
    assert stored is not None
    try:
        edges = stored.edges()
    finally:
        stored.close()
    assert edges is not None
    return edges


def measure(folder: Path, home: Path, collection: str, repeat: int) -> dict[str, Any]:
    from rag.query.retrieve import RetrieverContext

    paths = collection_paths(home, collection)
    path = paths.root / GRAPH_FILE
    path.unlink(missing_ok=True)
    ctx = RetrieverContext(Settings(), home, collection)
    try:
        ctx.store.count()  # the store is open before anything is timed
        reference, store_s = timed(lambda: EntityGraph.of(from_store(ctx, paths)), repeat)
        built = sync_graph(ctx.store, paths, ctx.generation())
        assert built[1] == "built"
        graph, load_s = timed(lambda: EntityGraph.of(load(path)), repeat)
        same = [load(path).same(from_store(ctx, paths))]
        doc = sorted(ctx.store.scroll(with_payload=True), key=lambda c: c[0])[0][1]["source"].rsplit("/", 1)[1]
    finally:
        ctx.close()
    updates, ingests = [], []
    for i in range(repeat):
        t0 = time.perf_counter()
        ingest(folder, home, collection, doc, (i + 1) % 2)
        ingests.append(time.perf_counter() - t0)
        ctx = RetrieverContext(Settings(), home, collection)
        try:
            generation, count = ctx.generation(), ctx.store.count()
            t0 = time.perf_counter()
            edges, how = sync_graph(ctx.store, paths, generation, count)
            EntityGraph.of(edges)
            updates.append(time.perf_counter() - t0)
            assert how == "updated", how
            same.append(edges.same(from_store(ctx, paths)) and load(path).same(edges))
        finally:
            ctx.close()
    return {
        "chunks": len(reference.ids), "names": len(reference.keys), "edges": reference.edges,
        "file_mb": round(path.stat().st_size / 1e6, 2), "changed_document": doc,
        "store_s": round(store_s, 4), "load_s": round(load_s, 4), "update_s": round(statistics.median(updates), 4),
        "reingest_one_document_s": round(statistics.median(ingests), 2),
        "same_graph_every_time": all(same), "repeats": repeat, "loaded_edges": graph.edges,
    }


def synthetic(home: Path, collection: str, scale: int, work: Path) -> dict[str, Any]:
    """The corpus's chunks ``scale`` times, each copy with names of its own: build, file, load, walk."""
    from rag.query.retrieve import RetrieverContext

    ctx = RetrieverContext(Settings(), home, collection)
    try:
        base = read_store(ctx.store, {})
    finally:
        ctx.close()
    chunks = ((f"{copy:04d}-{base.ids[i]}", "", [f"{k} c{copy}" for k in base.keys(i)])
              for copy in range(scale) for i in range(len(base.ids)))
    t0 = time.perf_counter()
    names = ChunkNames.of(chunks)
    names_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    edges = build_edges(names)
    build_s = time.perf_counter() - t0
    path = work / "synthetic" / GRAPH_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    write_graph(path, names, edges, 1)
    write_s = time.perf_counter() - t0
    graph, load_s = timed(lambda: EntityGraph.of(load(path)), 3)

    def one_changed() -> None:  # the first chunk's names changed: what ``sync_graph`` does past the store read
        changed = ChunkNames.of([(names.ids[0], "", [*names.keys(0), "marie curie", "karolinska institute"])])
        merged = _merge(names.take(np.arange(1, len(names.ids))), changed, {})
        assert merged is not None
        write_graph(path, merged, build_edges(merged), 2)
        EntityGraph.of(load(path))

    _, update_s = timed(one_changed, 3)
    seeds = [graph.ids[i * 997 % len(graph.ids)] for i in range(20)]
    _, walk_s = timed(lambda: [graph.walk("Does Vitamin D deficiency cause Multiple Sclerosis?", {s: 1.0})
                               for s in seeds], 1)
    out = {"chunks": len(graph.ids), "names": len(graph.keys), "edges": graph.edges,
           "file_mb": round(path.stat().st_size / 1e6, 1), "names_from_payloads_s": round(names_s, 2),
           "build_s": round(build_s, 2), "write_s": round(write_s, 2), "load_s": round(load_s, 2),
           "update_one_chunk_s": round(update_s, 2), "walk_s_per_question": round(walk_s / len(seeds), 3),
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}
    shutil.rmtree(path.parent, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="BEIR corpus folder (e.g. $DATA/scifact)")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder for the home")
    parser.add_argument("--home", type=Path, help="a home that already holds the ingested corpus (copied)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--scale", type=int, default=0, help="also time a synthetic collection this many times the corpus")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"{args.data} is not a folder")
    from evals.beir_run import collection_name

    collection = collection_name(args.data)
    home = args.work / "home"
    target = collection_paths(home, collection).root
    if args.home is not None:
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(collection_paths(args.home, collection).root, target, ignore=shutil.ignore_patterns("write.lock"))
    elif not target.exists():
        print("ingesting...", file=sys.stderr)
        ingest(args.data, home, collection)
    result = {"corpus": str(args.data), "collection": collection, **measure(args.data, home, collection, args.repeat)}
    if args.scale:
        result["synthetic"] = synthetic(home, collection, args.scale, args.work)
    text = json.dumps(result)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
