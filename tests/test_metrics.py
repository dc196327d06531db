"""Retrieval metrics: hand-computed answers, agreement with pytrec_eval, file readers, BEIR loader."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from evals.beir import BeirFormatError, beir_documents, load_beir
from evals.metrics import (
    EvalDataError,
    average_precision,
    bootstrap_ci,
    evaluate,
    metric_names,
    ndcg_at_k,
    paired_bootstrap,
    precision_at_k,
    rank_documents,
    read_qrels_tsv,
    read_trec_run,
    recall_at_k,
    reciprocal_rank_at_k,
    write_trec_run,
)
from rag.core.errors import RagError

L2 = math.log2

# --- known answers ---------------------------------------------------------------------------


def test_ties_break_by_doc_id_descending() -> None:
    # trec_eval sorts equal scores by strcmp(doc2, doc1): "z" > "d9" > "d10" > "b" > "a".
    scores = {"a": 1.0, "b": 1.0, "z": 1.0, "d10": 1.0, "d9": 1.0, "top": 2.0, "low": 0.5}
    assert rank_documents(scores) == ["top", "z", "d9", "d10", "b", "a", "low"]
    # qrels {a, z}: order z(1) b a(3) -> AP = (1/1 + 2/3) / 2 = 0.8333...
    assert average_precision({"a": 1, "z": 1}, {"a": 1.0, "b": 1.0, "z": 1.0}) == pytest.approx(5 / 6)


def test_average_precision_divides_by_all_relevant() -> None:
    qrel = {"d1": 1, "d2": 1, "d3": 1, "d4": 0}
    run = {"d1": 4.0, "d4": 3.0, "d2": 2.0, "x": 1.0}  # ranks: d1 d4 d2 x; d3 never retrieved
    # hits at rank 1 (P=1/1) and rank 3 (P=2/3); 3 relevant in total -> (1 + 2/3) / 3 = 5/9
    assert average_precision(qrel, run) == pytest.approx(5 / 9)
    # map_cut@2: only the hit at rank 1 -> 1 / 3
    assert average_precision(qrel, run, k=2) == pytest.approx(1 / 3)
    assert average_precision({"d1": 0}, run) == 0.0  # nothing relevant


def test_ndcg_graded_gains_and_ideal_from_all_judgments() -> None:
    qrel = {"a": 3, "b": 2, "c": 1, "d": 0, "e": -1}
    run = {"d": 3.0, "a": 2.0, "c": 1.0}  # ranks: d(0) a(3) c(1); b never retrieved
    # DCG@3 = 0/log2(2) + 3/log2(3) + 1/log2(4); IDCG@3 = 3/log2(2) + 2/log2(3) + 1/log2(4)
    assert ndcg_at_k(qrel, run, 3) == pytest.approx((3 / L2(3) + 1 / 2) / (3 + 2 / L2(3) + 1 / 2))
    # @2: DCG = 3/log2(3); IDCG = 3 + 2/log2(3) -> 0.4441
    assert ndcg_at_k(qrel, run, 2) == pytest.approx((3 / L2(3)) / (3 + 2 / L2(3)))
    assert ndcg_at_k(qrel, run, 1) == 0.0  # top doc has gain 0
    # @10: DCG unchanged; ideal still only 3 gains (3, 2, 1): same as @3
    assert ndcg_at_k(qrel, run, 10) == pytest.approx(ndcg_at_k(qrel, run, 3))
    assert ndcg_at_k(qrel, {"a": 1.0, "b": 0.5, "c": 0.1}, 3) == pytest.approx(1.0)


def test_recall_and_precision_at_k() -> None:
    qrel = {"a": 1, "b": 1, "c": 1, "d": 2, "n": 0}
    ranking = ["a", "x", "b", "n", "d"]  # a ranked list is accepted as is
    # 4 relevant: a(1) b(3) d(5); c never retrieved
    assert recall_at_k(qrel, ranking, 1) == pytest.approx(1 / 4)
    assert recall_at_k(qrel, ranking, 3) == pytest.approx(2 / 4)
    assert recall_at_k(qrel, ranking, 5) == pytest.approx(3 / 4)
    assert recall_at_k(qrel, ranking, 100) == pytest.approx(3 / 4)
    assert precision_at_k(qrel, ranking, 1) == 1.0
    assert precision_at_k(qrel, ranking, 3) == pytest.approx(2 / 3)
    assert precision_at_k(qrel, ranking, 5) == pytest.approx(3 / 5)
    assert precision_at_k(qrel, ranking, 10) == pytest.approx(3 / 10)  # divides by k, not by 5 returned
    with pytest.raises(ValueError):
        recall_at_k(qrel, ranking, 0)


def test_reciprocal_rank_with_and_without_cut() -> None:
    qrel = {"a": 1, "b": 0}
    ranking = {"x": 3.0, "b": 2.0, "a": 1.0}  # first relevant at rank 3
    assert reciprocal_rank_at_k(qrel, ranking) == pytest.approx(1 / 3)
    assert reciprocal_rank_at_k(qrel, ranking, 3) == pytest.approx(1 / 3)
    assert reciprocal_rank_at_k(qrel, ranking, 2) == 0.0
    assert reciprocal_rank_at_k(qrel, {"x": 1.0}) == 0.0


def test_evaluate_missing_query_counts_zero_and_unanswerable_skipped() -> None:
    qrels = {"q1": {"a": 1, "b": 2}, "q2": {"c": 1}, "q3": {"d": 0}}
    run = {"q1": {"a": 2.0, "x": 1.0}, "q3": {"d": 1.0}, "q9": {"a": 1.0}}
    res = evaluate(qrels, run, ks=(1, 10))
    assert res.queries == ("q1", "q2") and res.missing == ("q2",) and res.skipped == ("q3",)
    assert list(res.means) == metric_names((1, 10))
    # q1: a(1) x(2); relevant a, b -> AP = (1/1)/2 = 0.5; q2 missing -> 0; mean 0.25
    assert res.per_query["q1"]["map"] == pytest.approx(0.5)
    assert res.per_query["q2"] == dict.fromkeys(res.means, 0.0)
    assert res.means["map"] == pytest.approx(0.25)
    # recall@10: q1 1/2, q2 0 -> 0.25; mrr@1: q1 1, q2 0 -> 0.5
    assert res.means["recall@10"] == pytest.approx(0.25)
    assert res.means["mrr@1"] == pytest.approx(0.5)
    # nDCG@10 q1: DCG = 1/log2(2) = 1; IDCG = 2 + 1/log2(3) -> mean with q2's 0
    assert res.means["ndcg@10"] == pytest.approx((1 / (2 + 1 / L2(3))) / 2)
    assert res.values("map") == [pytest.approx(0.5), 0.0]
    # trec_eval proper keeps q3 (all measures 0): mean map = (0.5 + 0 + 0) / 3
    full = evaluate(qrels, run, ks=(10,), include_unanswerable=True)
    assert full.queries == ("q1", "q2", "q3") and full.means["map"] == pytest.approx(0.5 / 3)
    assert {"map", "mrr", "ndcg@10", "recall@10", "recall@100", "mrr@10", "precision@10"} <= set(evaluate(qrels, run).means)


def test_nan_score_is_rejected() -> None:
    with pytest.raises(EvalDataError, match="NaN"):
        rank_documents({"a": float("nan")})


# --- pytrec_eval cross-check on a real BM25 run ------------------------------------------------

TOPICS = {
    "coffee": "coffee caffeine espresso beans roast",
    "sleep": "sleep insomnia melatonin night rest",
    "heart": "heart cardiac blood pressure artery",
    "bees": "bees honey hive pollen colony",
    "rust": "rust iron oxide corrosion steel",
    "tides": "tides moon ocean gravity coast",
    "yeast": "yeast bread dough fermentation flour",
    "glacier": "glacier ice melting climate valley",
    "vaccine": "vaccine immune antibody virus dose",
    "solar": "solar panel sunlight electricity silicon",
    "owls": "owls night hunting feathers prey",
    "soil": "soil bacteria nitrogen roots plants",
}
TEMPLATES = [
    "{a} and {b} are studied in this short report about {c}",
    "a review of {b} with notes on {d} and {e}",
    "{c} {d} measured over ten years in a field survey",
    "why {a} matters: {e} {b} and more",
    "{a} {a} {b} repeated findings on {c}",
]


def _documents() -> dict[str, tuple[str, str]]:
    docs: dict[str, tuple[str, str]] = {}
    for t, (topic, words) in enumerate(TOPICS.items()):
        a, b, c, d, e = words.split()
        for i, template in enumerate(TEMPLATES):
            docs[f"d{t * 5 + i + 1}"] = (f"{topic} notes", template.format(a=a, b=b, c=c, d=d, e=e))
    docs["d61"] = docs["d1"]  # exact duplicate of d1: equal BM25 scores, tie broken by id
    docs["d62"] = ("misc", "night sleep coffee")
    return docs


QUERIES = {  # id: (text, graded qrels)
    "q1": ("coffee caffeine", {"d1": 2, "d4": 1, "d61": 2, "d2": 1}),
    "q2": ("night sleep", {"d6": 2, "d62": 1, "d51": 1, "d9": 0}),
    "q3": ("blood pressure of the heart", {"d11": 1, "d13": 2, "d14": 1}),
    "q4": ("honey bees", {"d16": 1, "d17": 1, "d20": 2}),
    "q5": ("iron corrosion", {"d21": 1, "d24": 2, "d25": 0, "d40": 1}),
    "q6": ("moon tides ocean", {"d26": 2, "d30": 1}),
    "q7": ("bread yeast fermentation", {"d31": 1, "d32": 1, "d33": 1, "d34": 1, "d35": 1}),
    "q8": ("melting glacier climate", {"d36": 3, "d38": 1, "d7": 1}),
    "q9": ("virus antibody", {"d41": 1, "d44": 2}),
    "q10": ("silicon solar", {"d46": 1, "d50": 1, "d12": 1}),
    "q11": ("owls hunting prey at night", {"d51": 2, "d55": 1, "d6": 1}),
    "q12": ("soil nitrogen bacteria", {"d56": 1, "d58": 2, "d59": 1}),
    "q13": ("field survey", {"d3": 1, "d8": 1, "d13": 1, "d58": 2}),
    "q14": ("repeated findings", {"d5": 1, "d10": 1, "d60": 1}),
    "q15": ("quantum chromodynamics", {"d1": 0, "d2": 0}),  # nothing relevant
}


def write_beir(folder: Path, docs: dict[str, tuple[str, str]], queries: dict[str, str], qrels: dict) -> Path:
    """Write a BEIR-format folder (test qrels with CRLF and a header, as BEIR ships them)."""
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for doc_id, (title, text) in docs.items():
            fh.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as fh:
        for qid, text in {**queries, "q99": "a train-only query"}.items():
            fh.write(json.dumps({"_id": qid, "text": text, "metadata": {}}) + "\n")
    rows = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{r}" for q, j in qrels.items() for d, r in j.items()]
    (folder / "qrels" / "test.tsv").write_bytes(("\r\n".join(rows) + "\r\n").encode())
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq99\td1\t1\n")
    return folder


@pytest.fixture()
def beir_folder(tmp_path: Path) -> Path:
    """A small BEIR folder: 62 documents, 15 judged test queries, one train query."""
    return write_beir(
        tmp_path / "mini", _documents(), {q: t for q, (t, _) in QUERIES.items()}, {q: j for q, (_, j) in QUERIES.items()}
    )


def bm25_run(folder: Path) -> tuple[dict, dict]:
    """Qrels and a rank_bm25 run over the folder; some queries cut/rounded to create ties."""
    from rank_bm25 import BM25Okapi

    data = load_beir(folder)
    ids = [doc_id for doc_id, _, _ in beir_documents(data)]
    bm25 = BM25Okapi([f"{title} {text}".lower().split() for _, title, text in beir_documents(data)])
    run: dict[str, dict[str, float]] = {}
    for n, (qid, text) in enumerate(sorted(data.queries.items())):
        scores = {d: float(s) for d, s in zip(ids, bm25.get_scores(text.lower().split()), strict=True)}
        if n % 3 == 1:  # keep only matching docs: some relevant docs are never retrieved
            scores = {d: s for d, s in scores.items() if s > 0}
        elif n % 3 == 2:  # coarse scores: many ties between different documents
            scores = {d: round(s, 1) for d, s in scores.items()}
        run[qid] = scores
    return data.qrels, run


MEASURES = {"map", "recip_rank", "ndcg_cut.1,3,5,10,100", "recall.1,3,5,10,100", "P.1,3,5,10,100", "map_cut.1,3,5,10,100"}
NAMES = {"map": "map", "mrr": "recip_rank"} | {
    f"{ours}@{k}": f"{theirs}_{k}"
    for k in (1, 3, 5, 10, 100)
    for ours, theirs in (("ndcg", "ndcg_cut"), ("recall", "recall"), ("precision", "P"), ("map", "map_cut"))
}


def test_agrees_with_pytrec_eval_on_bm25_run(beir_folder: Path, tmp_path: Path) -> None:
    pytrec_eval = pytest.importorskip("pytrec_eval")
    qrels, run = bm25_run(beir_folder)
    assert any(len(set(s.values())) < len(s) for s in run.values())  # the run has ties
    theirs = pytrec_eval.RelevanceEvaluator(qrels, MEASURES).evaluate(run)
    ours = evaluate(qrels, run, include_unanswerable=True)
    assert set(theirs) == set(ours.per_query) == set(QUERIES)
    for qid, values in theirs.items():
        for name, trec_name in NAMES.items():
            assert ours.per_query[qid][name] == pytest.approx(values[trec_name], abs=1e-9), (qid, name)
        for k in (1, 3, 5, 10, 100):  # mrr@k is recip_rank when the first hit is within k
            rr = values["recip_rank"]
            assert ours.per_query[qid][f"mrr@{k}"] == pytest.approx(rr if rr >= 1 / k else 0.0, abs=1e-9)
    for name, trec_name in NAMES.items():
        mean = sum(v[trec_name] for v in theirs.values()) / len(theirs)
        assert ours.means[name] == pytest.approx(mean, abs=1e-9), name
    # Default: q15 (nothing relevant) skipped; the other means are over 14 queries.
    default = evaluate(qrels, run)
    assert default.skipped == ("q15",) and len(default.queries) == 14
    assert default.means["ndcg@10"] == pytest.approx(sum(theirs[q]["ndcg_cut_10"] for q in default.queries) / 14, abs=1e-9)
    # A TREC run file round trip keeps every score, hence the same ranking and values.
    path = tmp_path / "bm25.run"
    write_trec_run(run, path, "bm25")
    assert read_trec_run(path) == run
    assert pytrec_eval.RelevanceEvaluator(qrels, MEASURES).evaluate(read_trec_run(path)) == theirs


def test_missing_queries_count_zero_unlike_plain_pytrec_eval(beir_folder: Path) -> None:
    pytrec_eval = pytest.importorskip("pytrec_eval")
    qrels, run = bm25_run(beir_folder)
    partial = {q: s for q, s in run.items() if q not in ("q3", "q7")}
    theirs = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(partial)
    assert "q3" not in theirs  # pytrec_eval averages over the run's queries only
    ours = evaluate(qrels, partial)
    assert ours.missing == ("q3", "q7")
    assert ours.per_query["q3"]["ndcg@10"] == 0.0 and ours.per_query["q7"]["map"] == 0.0
    expected = sum(theirs[q]["ndcg_cut_10"] for q in ours.queries if q in theirs) / len(ours.queries)
    assert ours.means["ndcg@10"] == pytest.approx(expected, abs=1e-9)


# --- files --------------------------------------------------------------------------------------


def test_read_qrels_tsv_crlf_header_and_trec_format(tmp_path: Path) -> None:
    beir = tmp_path / "test.tsv"
    beir.write_bytes(b"query-id\tcorpus-id\tscore\r\n1\t31715818\t1\r\n3\t14717500\t2\r\n\r\n1\t99\t0\r\n")
    assert read_qrels_tsv(beir) == {"1": {"31715818": 1, "99": 0}, "3": {"14717500": 2}}
    trec = tmp_path / "qrels.txt"
    trec.write_text("q1 0 d1 1\nq1 0 d2 0\nq2 Q0 d3 2\n")
    assert read_qrels_tsv(trec) == {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("query-id\tcorpus-id\tscore\nq1\td1\n", "line 2: expected"),
        ("q1\td1\thigh\n", "line 1: relevance 'high' is not an integer"),
        ("q1\td1\t1\nq1\td1\t2\n", "line 2: query 'q1' doc 'd1' judged twice"),
    ],
)
def test_read_qrels_tsv_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with pytest.raises(EvalDataError, match=message) as info:
        read_qrels_tsv(path)
    assert isinstance(info.value, RagError) and "bad.tsv" in str(info.value) and "\n" not in str(info.value)


def test_trec_run_file_format_and_errors(tmp_path: Path) -> None:
    run = {"q2": {"b": 0.1, "a": 0.1, "c": 1 / 3}, "q1": {"x": 5.0}}
    path = tmp_path / "run.txt"
    write_trec_run(run, path, "mytag")
    assert path.read_text().splitlines() == [
        "q1 Q0 x 1 5.0 mytag",
        f"q2 Q0 c 1 {1 / 3!r} mytag",
        "q2 Q0 b 2 0.1 mytag",  # tie: b before a
        "q2 Q0 a 3 0.1 mytag",
    ]
    assert read_trec_run(path) == run
    with pytest.raises(ValueError):
        write_trec_run(run, path, "two words")
    path.write_text("q1 Q0 x 1 5.0 tag\nq1 Q0 y 2 not-a-number tag\n")
    with pytest.raises(EvalDataError, match="line 2: expected 'qid Q0 docid rank score tag'"):
        read_trec_run(path)
    with pytest.raises(EvalDataError, match="not found"):
        read_trec_run(tmp_path / "absent.run")


# --- BEIR folder ----------------------------------------------------------------------------------


def test_load_beir_reads_split(beir_folder: Path) -> None:
    data = load_beir(beir_folder)
    assert len(data.corpus) == 62 and data.corpus["d62"] == ("misc", "night sleep coffee")
    assert set(data.queries) == set(QUERIES) and data.qrels["q5"] == {"d21": 1, "d24": 2, "d25": 0, "d40": 1}
    train = load_beir(beir_folder, split="train")
    assert train.queries == {"q99": "a train-only query"} and train.split == "train"
    assert next(beir_documents(data)) == ("d1", "coffee notes", data.corpus["d1"][1])


def test_load_beir_unknown_split_and_missing_file(beir_folder: Path) -> None:
    with pytest.raises(BeirFormatError, match=r"qrels/dev\.tsv not found: .*available splits: test, train"):
        load_beir(beir_folder, split="dev")
    (beir_folder / "queries.jsonl").unlink()
    with pytest.raises(RagError, match=r"queries\.jsonl not found"):
        load_beir(beir_folder)
    with pytest.raises(BeirFormatError, match="not a folder"):
        load_beir(beir_folder / "nowhere")


def test_load_beir_bad_lines(beir_folder: Path) -> None:
    corpus = beir_folder / "corpus.jsonl"
    good = corpus.read_text().splitlines()
    corpus.write_text(good[0] + "\n{not json\n")
    with pytest.raises(BeirFormatError, match=r"corpus\.jsonl line 2: invalid JSON .*expected one JSON object per line"):
        load_beir(beir_folder)
    corpus.write_text(good[0] + '\n{"title": "no id", "text": "x"}\n')
    with pytest.raises(BeirFormatError, match=r"corpus\.jsonl line 2: expected .*\"_id\""):
        load_beir(beir_folder)
    corpus.write_text(good[0] + "\n" + good[0] + "\n")
    with pytest.raises(BeirFormatError, match="appears twice"):
        load_beir(beir_folder)
    corpus.write_text("\n".join(good))
    (beir_folder / "queries.jsonl").write_text('{"_id": "q1", "text": "only one"}\n')
    with pytest.raises(BeirFormatError, match="judges 14 queries missing from"):
        load_beir(beir_folder)


# --- bootstrap ------------------------------------------------------------------------------------


def test_bootstrap_ci_is_deterministic_and_sane() -> None:
    values = [0.0, 1.0] * 50  # mean 0.5
    low, high = bootstrap_ci(values, n=2000, seed=7)
    assert (low, high) == bootstrap_ci(values, n=2000, seed=7)
    assert 0.38 < low < 0.5 < high < 0.62  # ~ 0.5 -/+ 1.96 * 0.05
    assert bootstrap_ci([0.3] * 10) == (pytest.approx(0.3), pytest.approx(0.3))
    with pytest.raises(ValueError):
        bootstrap_ci([])


def test_paired_bootstrap() -> None:
    b = [0.1 * (i % 7) for i in range(60)]
    better = paired_bootstrap([x + 0.2 for x in b], b)
    assert better.mean_diff == pytest.approx(0.2) and better.low == pytest.approx(0.2) and better.significant
    noisy = paired_bootstrap([x + (0.05 if i % 2 else -0.05) for i, x in enumerate(b)], b, seed=1)
    assert noisy.low < 0.0 < noisy.high and not noisy.significant
    with pytest.raises(ValueError, match="pair up"):
        paired_bootstrap([1.0, 2.0], [1.0])
