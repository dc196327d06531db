"""What ``[multihop] mode = "graph"`` does to single-hop retrieval, and what it costs per question.

The issue's rule for turning it on by default: SciFact nDCG@10 and ClapNQ gold recall@5 may not
drop by more than 0.005, and a question may not take more than 50 ms longer at SciFact size. Both
sets are retrieved exactly as ``rag ask`` gathers its evidence (``Answerer.gather``: routing off,
hybrid, no reranker), once with ``mode = "off"`` and once with ``"graph"``, in a fresh home under
``--work`` (``--rerank``: the first hop reranked by the shipped cross-encoder, as ``rag ask`` does by
default):

- scifact: the BEIR corpus (5,183 abstracts, ingested as ``rag eval beir`` does) and its 300 test
  queries: nDCG@10 and recall@10 (trec_eval semantics, ``evals.metrics``);
- clapnq: the imported dev suite (600 passages pooled, 600 questions): gold recall@5 (the gold
  passage's file among the top 5), and for the answerable questions whether the chunks holding the
  gold answer's sentences are among them (``all_gold_sentences@5``: every sentence;
  ``gold_sentence_recall@5``: the share of sentences). A sentence counts as found when a top-5
  chunk of its file holds it, or its first or last 40%.

``--files-first`` measures the variant reverted at f93e8e7 (each file's best passage ranked
before any file's next one, in graph mode), for the record of why it stays out.

Seconds per question are the median of ``gather`` over the questions (models loaded first), and
the graph's own part (``hops_s``). HotpotQA, where multi-hop is meant to help, is measured by
``benchmarks/hotpotqa_multihop.py``.

    python benchmarks/multihop_graph.py --scifact $DATA/scifact --clapnq $DATA/clapnq-dev --work /tmp/mhg --out graph.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from rag.core.config import Settings, load_settings

MODES = ("off", "graph")


def mode_settings(settings: Settings, mode: str, rerank: bool = False) -> Settings:
    return settings.model_copy(update={
        "multihop": settings.multihop.model_copy(update={"mode": mode}),
        "rerank": settings.rerank.model_copy(update={"enabled": rerank}),
    })


def _gather_all(settings: Settings, home: Path, collection: str, questions: list[str], k: int) -> tuple[list[Any], dict[str, float]]:
    from rag.query.answer import Answerer

    answerer = Answerer(settings, home, collection, llm=object(), rerank=settings.rerank.enabled)
    out, seconds, hops = [], [], []
    try:
        answerer.gather(questions[0], k)  # warm-up: models, graph and index loading are not per-question cost
        for q in questions:
            t0 = time.perf_counter()
            evidence = answerer.gather(q, k)
            seconds.append(time.perf_counter() - t0)
            hops.append(evidence.timings.get("hops_s", 0.0))
            out.append(evidence)
    finally:
        answerer.close_searchers()
    return out, {"ms_per_question_p50": round(1000 * statistics.median(seconds), 2),
                 "graph_ms_p50": round(1000 * statistics.median(hops), 2)}


def run_scifact(base: Settings, home: Path, folder: Path, rerank: bool = False) -> dict[str, Any]:
    from evals.beir import load_beir
    from evals.beir_run import beir_settings, collection_name, ingest_beir
    from evals.metrics import evaluate

    data = load_beir(folder, "test")
    collection = collection_name(folder)
    ingest = ingest_beir(data, folder, base, home, collection)
    prefix = f"beir:{folder.resolve().name}/"
    ids = sorted(data.queries)
    out: dict[str, Any] = {"queries": len(ids), "ingest": ingest}
    for mode in MODES:
        evidence, cost = _gather_all(beir_settings(mode_settings(base, mode, rerank)), home, collection,
                                     [data.queries[q] for q in ids], 10)
        run = {}
        for qid, ev in zip(ids, evidence):
            ranking: dict[str, float] = {}
            for position, c in enumerate(ev.chunks):
                ranking.setdefault(c.source[len(prefix):] if c.source.startswith(prefix) else c.source,
                                   float(1000 - position))
            run[qid] = ranking
        means = evaluate({q: data.qrels[q] for q in ids}, run, ks=(10,)).means
        out[mode] = {"ndcg@10": round(means["ndcg@10"], 4), "recall@10": round(means["recall@10"], 4), **cost}
    return out


def _norm(text: str) -> str:
    return " ".join(text.split())


def sentences_found(gold: list[str], texts: list[str]) -> list[bool]:
    """For each gold sentence: is it (or its first or last 40%) in one of ``texts``?"""
    found = []
    for sentence in map(_norm, gold):
        h = max(20, int(len(sentence) * 0.4))
        found.append(any(sentence in t or sentence[:h] in t or sentence[-h:] in t for t in map(_norm, texts)))
    return found


def files_first() -> None:
    """Rank each file's best passage before any file's next one in multi-hop pools (the reverted 1a730ee)."""
    import rag.query.multihop as mh
    from rag.query.merge import labelled

    def ranking(self: Any) -> list[Any]:
        seq = {cid: i for i, cid in enumerate(self.chunks)}
        order = self.head + sorted((c for c in self.total if c not in self.head),
                                   key=lambda c: (-self.total[c], seq[c]))
        seen = {self.chunks[cid].source for cid in self.head}
        best: list[str] = []
        later: list[str] = []
        for cid in order[len(self.head):]:
            (later if self.chunks[cid].source in seen else best).append(cid)
            seen.add(self.chunks[cid].source)
        order = self.head + best + later
        return labelled([self.chunks[cid] for cid in order], [self.total[cid] for cid in order], mh.MULTIHOP)

    mh._Merge.ranking = ranking


def run_clapnq(base: Settings, home: Path, src: Path, work: Path, rerank: bool = False) -> dict[str, Any]:
    from evals.importers import import_suite
    from evals.suite import read_suite
    from ingest.pipeline import Ingestor

    suite_dir = work / "suite-clapnq"
    if not (suite_dir / "suite.jsonl").exists():
        import_suite("clapnq", src, suite_dir, overwrite=True)
    report = Ingestor(base, home, "clapnq").run([suite_dir / "docs"]).as_dict()
    items = [i for i in read_suite(suite_dir / "suite.jsonl") if i.gold_sources]
    out: dict[str, Any] = {"questions": len(items), "ingest": {"chunks": report["chunks_total"]}}
    for mode in MODES:
        evidence, cost = _gather_all(mode_settings(base, mode, rerank), home, "clapnq", [i.question for i in items], 5)
        hits = every = found = sentences = asked = 0
        for item, ev in zip(items, evidence):
            gold = {str((suite_dir / g).resolve()) for g in item.gold_sources or ()}
            hits += bool(gold & {str(Path(c.source).resolve()) for c in ev.chunks[:5]})
            if item.gold_contexts:
                got = sentences_found(list(item.gold_contexts), [c.text for c in ev.chunks[:5]
                                                                 if str(Path(c.source).resolve()) in gold])
                asked += 1
                every += all(got)
                found += sum(got)
                sentences += len(got)
        out[mode] = {"gold_recall@5": round(hits / len(items), 4),
                     "all_gold_sentences@5": round(every / max(1, asked), 4),
                     "gold_sentence_recall@5": round(found / max(1, sentences), 4), "with_sentences": asked, **cost}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scifact", type=Path, help="BEIR SciFact folder")
    parser.add_argument("--clapnq", type=Path, help="clapnq-dev folder")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder for the home (e.g. /tmp/mhg)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--files-first", action="store_true",
                        help="measure the reverted variant: each file's best passage before any file's next one")
    parser.add_argument("--rerank", action="store_true",
                        help="rerank the first hop with the shipped cross-encoder, as rag ask does by default")
    args = parser.parse_args(argv)
    if not args.scifact and not args.clapnq:
        parser.error("give --scifact and/or --clapnq")
    for path in (args.scifact, args.clapnq):
        if path is not None and not path.is_dir():
            parser.error(f"{path} is not a folder")
    home = args.work / "home"
    base = load_settings(home)
    if args.files_first:
        files_first()
    result: dict[str, Any] = {"multihop": base.multihop.model_dump(exclude={"mode"}), "files_first": args.files_first,
                              "rerank": args.rerank}
    if args.clapnq:
        print("clapnq...", file=sys.stderr)
        result["clapnq"] = run_clapnq(base, home, args.clapnq, args.work, args.rerank)
    if args.scifact:
        print("scifact...", file=sys.stderr)
        result["scifact"] = run_scifact(base, home, args.scifact, args.rerank)
    text = json.dumps(result)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
