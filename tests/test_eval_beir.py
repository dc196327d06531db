"""`rag eval beir` on a small real BEIR folder: metrics agree with pytrec_eval on our own run."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytrec_eval

from evals.beir_run import run_beir
from evals.metrics import read_qrels_tsv, read_trec_run
from tests.test_metrics import QUERIES, _documents, write_beir

pytestmark = pytest.mark.slow


@pytest.fixture()
def beir_folder(tmp_path: Path) -> Path:
    """The same small BEIR folder as the metric tests (62 documents, 15 judged test queries)."""
    return write_beir(
        tmp_path / "mini", _documents(), {q: t for q, (t, _) in QUERIES.items()}, {q: j for q, (_, j) in QUERIES.items()}
    )


@pytest.mark.parametrize("retriever", ["bm25", "hybrid"])
def test_eval_beir_matches_pytrec_eval(beir_folder, settings, rag_home, tmp_path, retriever) -> None:  # type: ignore[no-untyped-def]
    run_file = tmp_path / "run.trec"
    report = run_beir(beir_folder, settings, rag_home, split="test", retriever=retriever, rerank=False,
                      run_file=run_file)
    assert report.queries > 5 and report.ingest["files_added"] > 50
    qrels = read_qrels_tsv(beir_folder / "qrels" / "test.tsv")
    run = read_trec_run(run_file)
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"map", "ndcg_cut.10", "recall.10", "recall.100"})
    judged = {q for q, docs in qrels.items() if any(rel > 0 for rel in docs.values())}
    per_query = {q: v for q, v in evaluator.evaluate(run).items() if q in judged}
    n = len(judged)  # queries with no result count 0 (trec_eval -c); queries without relevant docs are skipped
    expected = {
        "map": sum(v["map"] for v in per_query.values()) / n,
        "ndcg@10": sum(v["ndcg_cut_10"] for v in per_query.values()) / n,
        "recall@10": sum(v["recall_10"] for v in per_query.values()) / n,
        "recall@100": sum(v["recall_100"] for v in per_query.values()) / n,
    }
    for key, value in expected.items():
        assert report.metrics[key] == pytest.approx(value, abs=1e-9), key
    assert report.metrics["ndcg@10"] > 0.3  # a real retriever, not noise

    again = run_beir(beir_folder, settings, rag_home, split="test", retriever=retriever, rerank=False)
    assert again.ingest["chunks_embedded"] == 0 and again.ingest["files_unchanged"] == report.ingest["files_added"]
    assert again.metrics == report.metrics
