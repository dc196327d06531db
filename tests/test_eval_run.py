"""`rag eval run | score | compare` on a real ingested collection (embedded Qdrant, packaged MiniLM)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from evals.answer_metrics import exact_match
from evals.compare import compare_runs, read_per_question
from evals.judge import short_answer_in
from evals.metrics import ndcg_at_k
from evals.results import read_results
from evals.run import EvalOptions, SourceMapper, run_suite, score_lines
from evals.suite import SuiteItem, write_suite
from ingest.pipeline import Ingestor
from rag.core.config import Settings
from tests.conftest import REPO, write

QUESTIONS = [
    SuiteItem(id="q1", question="fungus gnats breed in wet soil", gold_sources=("docs/sub/pests.html",)),
    SuiteItem(id="q2", question="how often should succulents be watered", gold_sources=("docs/guide.md",),
              answers=("every two weeks",), answerable=True),
    SuiteItem(id="q3", question="repotting a fiddle-leaf fig in spring", gold_sources=("docs/notes.txt",)),
    SuiteItem(id="q4", question="spider mites webbing and dusting large leaves",
              gold_sources=("docs/sub/pests.html", "docs/notes.txt")),
]
RETRIEVAL = EvalOptions(retrieval_only=True, rerank=False, depth=3, ks=(1, 3))


@pytest.fixture()
def suite(tmp_path: Path, docs: Path, settings: Settings, rag_home: Path, embedder: Any) -> Path:
    """A suite beside its docs/ folder, the docs ingested into the default collection."""
    assert docs == tmp_path / "docs"
    Ingestor(settings, rag_home, embedder=embedder).run([docs])
    path = tmp_path / "suite.jsonl"
    write_suite(QUESTIONS, path)
    return path


class Interrupt:
    """Progress that stops the run (like Ctrl-C) after ``after`` questions."""

    def __init__(self, after: int) -> None:
        self.after, self.done, self.started = after, 0, None

    def start(self, total: int, cached: int) -> None:
        self.started = (total, cached)

    def advance(self, question_id: str) -> None:
        self.done += 1
        if self.done >= self.after:
            raise KeyboardInterrupt


def test_source_mapper(tmp_path: Path) -> None:
    m = SourceMapper(tmp_path / "suite", ["docs/a.txt", "12345"])
    assert m.doc_id(str(tmp_path / "suite" / "docs" / "a.txt")) == "docs/a.txt"
    assert m.doc_id("/elsewhere/copy/docs/a.txt") == "docs/a.txt"  # ingested from another place
    assert m.doc_id("beir:scifact/12345") == "12345"
    assert m.doc_id("/x/12345.txt") == "12345"
    assert m.doc_id(str(tmp_path / "suite" / "docs" / "b.txt")) == "docs/b.txt"  # not gold: still suite-relative
    assert m.ranking(["/q/docs/a.txt", "/q/docs/a.txt", "/z.txt"]) == ["docs/a.txt", "/z.txt"]


def test_retrieval_metrics_resume_and_cache_invalidation(suite: Path, settings: Settings, rag_home: Path,
                                                         docs: Path) -> None:  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, settings, rag_home, RETRIEVAL, Interrupt(after=2))
    progress = Interrupt(after=99)
    results, summary = run_suite(suite, settings, rag_home, RETRIEVAL, progress)
    assert progress.started == (2, 2) and summary.cached == 2  # resumed where it stopped

    by_id = {r["id"]: r for r in results}
    assert by_id["q1"]["retrieved"][0] == "docs/sub/pests.html" and by_id["q1"]["metrics"]["mrr"] == 1.0
    for r in results:
        gold = dict.fromkeys(r["gold_sources"], 1)
        assert len(r["retrieved"]) == len(set(r["retrieved"])) <= 3
        assert r["metrics"]["ndcg@3"] == pytest.approx(ndcg_at_k(gold, r["retrieved"], 3))
        assert set(r["metrics"]) == {"map", "mrr", "ndcg@1", "recall@1", "ndcg@3", "recall@3"}
        assert "answer" not in r and len(r["contexts"]) <= settings.answer.k
    m = summary.metrics["recall@3"]
    values = [r["metrics"]["recall@3"] for r in results]
    assert m.n == 4 and m.mean == pytest.approx(sum(values) / 4) and m.low <= m.mean <= m.high
    assert summary.per_question["q4"] == by_id["q4"]["metrics"]

    again, summary2 = run_suite(suite, settings, rag_home, RETRIEVAL)
    assert summary2.cached == 4 and again == results  # same config: same numbers, from the cache

    write(docs / "notes.txt", "Completely different text about bicycles and gears.\n")
    Ingestor(settings, rag_home).run([docs])
    _, summary3 = run_suite(suite, settings, rag_home, RETRIEVAL)
    assert summary3.cached == 0  # the collection changed: nothing is reused
    _, summary4 = run_suite(suite, settings, rag_home, EvalOptions(retrieval_only=True, rerank=False, depth=2,
                                                                   ks=(1, 2)))
    assert summary4.cached == 0 and "recall@2" in summary4.metrics  # the options changed


def test_agrees_with_pytrec_eval(suite: Path, settings: Settings, rag_home: Path) -> None:
    pytrec_eval = pytest.importorskip("pytrec_eval")
    results, _ = run_suite(suite, settings, rag_home, EvalOptions(retrieval_only=True, rerank=False, depth=5,
                                                                  ks=(1, 3, 5), use_cache=False))
    qrels = {r["id"]: dict.fromkeys(r["gold_sources"], 1) for r in results}
    run = {r["id"]: {d: float(10 - i) for i, d in enumerate(r["retrieved"])} for r in results}
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"map", "recip_rank", "ndcg_cut.1,3,5", "recall.1,3,5"}).evaluate(run)
    for r in results:
        got, want = r["metrics"], ref[r["id"]]
        assert got["map"] == pytest.approx(want["map"]) and got["mrr"] == pytest.approx(want["recip_rank"])
        for k in (1, 3, 5):
            assert got[f"ndcg@{k}"] == pytest.approx(want[f"ndcg_cut_{k}"])
            assert got[f"recall@{k}"] == pytest.approx(want[f"recall_{k}"])


PRECOMPUTED = [
    {"id": "p1", "question": "How often should succulents be watered?", "answers": ["every two weeks"],
     "answerable": True, "answer": "Water them every two weeks in summer [1].",
     "contexts": ["Water succulents every two weeks in summer and once a month in winter."]},
    {"id": "p2", "question": "What is the capital of Mars?", "answers": [], "answerable": False,
     "answer": "The documents do not say.", "contexts": ["Spider mites leave fine webbing under leaves."]},
]


def test_score_without_judge_needs_no_collection(tmp_path: Path, settings: Settings, rag_home: Path) -> None:
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in PRECOMPUTED), encoding="utf-8")
    results, summary = score_lines(path, settings, rag_home, EvalOptions(judge=False))
    p1, p2 = results
    assert p1["metrics"]["em"] == 0.0 and p1["metrics"]["contains"] == 1.0 and 0 < p1["metrics"]["f1"] < 1
    assert p1["statements"] == [{"text": "Water them every two weeks in summer.", "citations": [1]}]
    assert p1["citations"] == ["1"] and p1["refused"] is False and p1["metrics"]["faithfulness"] is None
    assert p2["refused"] is True and p2["metrics"]["refusal_accuracy"] == 1.0 and p2["metrics"]["em"] is None
    assert summary.metrics["refusal_accuracy"].n == 2 and "retrieved" not in p1
    assert summary.collection is None and summary.judges == ()

    ran, _ = run_suite(path, settings, rag_home, EvalOptions(judge=False))  # a suite with answers needs no engine
    assert [r["metrics"] for r in ran] == [r["metrics"] for r in results]

    out = tmp_path / "out.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in results), encoding="utf-8")
    assert [e.item.id for e in read_results(out)] == ["p1", "p2"]  # result lines can be scored again
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "question": "q"}) + "\n", encoding="utf-8")
    with pytest.raises(Exception, match='line 1: no "answer" and "contexts"'):
        read_results(bad)


def test_compare_pairs_questions(tmp_path: Path) -> None:
    a = {"q1": {"m": 1.0, "n": None}, "q2": {"m": 1.0, "n": 0.5}, "q3": {"m": 0.0, "n": 0.5}, "only-a": {"m": 1.0}}
    b = {"q1": {"m": 0.0, "n": 0.2}, "q2": {"m": 0.0, "n": 0.5}, "q3": {"m": 0.0, "n": 0.5}}
    rows = {r.metric: r for r in compare_runs(a, b)}
    assert rows["m"].n == 3 and rows["m"].diff == pytest.approx(2 / 3) and rows["m"].low <= 2 / 3 <= rows["m"].high
    assert rows["n"].n == 2 and rows["n"].diff == 0.0 and not rows["n"].significant
    summary = tmp_path / "a.json"
    summary.write_text(json.dumps({"per_question": a}), encoding="utf-8")
    lines = tmp_path / "b.jsonl"
    lines.write_text("".join(json.dumps({"id": q, "metrics": m}) + "\n" for q, m in b.items()), encoding="utf-8")
    assert read_per_question(summary) == a and read_per_question(lines) == b


def _cli(home: Path, *args: str) -> Any:
    """The real `rag` command, in-process (click's runner), stdout and stderr apart."""
    from click.testing import CliRunner

    from rag.cli import main

    return CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)


def _one_line(result: Any) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rag: error: "), result.stderr
    return lines[0]


def test_cli_run_report_compare_and_errors(suite: Path, tmp_path: Path, rag_home: Path) -> None:
    out, report, run_file = tmp_path / "r.jsonl", tmp_path / "rep" / "report.md", tmp_path / "run.trec"
    proc = _cli(rag_home, "eval", "run", str(suite), "--retrieval-only", "--no-rerank", "--depth", "3", "--json",
                "--out", str(out), "--report", str(report), "--run-file", str(run_file))
    assert proc.exit_code == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["questions"] == 4 and 0.0 <= data["metrics"]["ndcg@3"] <= 1.0 and "recall@3" in data["ci95"]
    assert set(data["per_question"]) == {"q1", "q2", "q3", "q4"} and "ndcg@5" not in data["metrics"]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in lines] == ["q1", "q2", "q3", "q4"] and all("retrieved" in r for r in lines)
    assert run_file.read_text().splitlines()[0].startswith("q1 Q0 docs/sub/pests.html 1 ")
    text = report.read_text()
    assert "| recall@3 | 4 |" in text and "## Worst questions by ndcg@3" in text and "## Per question" in text
    assert (report.parent / "report-recall.png").read_bytes()[:4] == b"\x89PNG"
    assert "![Recall@k curve](report-recall.png)" in text and (report.parent / "report-scores.png").exists()

    summary = tmp_path / "a.json"
    summary.write_text(proc.stdout, encoding="utf-8")
    cmp = _cli(rag_home, "eval", "compare", str(summary), str(out), "--json")
    assert cmp.exit_code == 0, cmp.stderr
    rows = {r["metric"]: r for r in json.loads(cmp.stdout)["metrics"]}
    assert rows["ndcg@3"]["diff"] == 0.0 and rows["ndcg@3"]["n"] == 4 and not rows["ndcg@3"]["significant"]
    table = _cli(rag_home, "eval", "compare", str(summary), str(out))
    assert table.exit_code == 0 and "ndcg@3" in table.stdout

    unscorable = _cli(rag_home, "eval", "score", str(out), "--no-judge")
    assert unscorable.exit_code == 1 and 'no "answer" and "contexts"' in _one_line(unscorable)
    missing = _cli(rag_home, "eval", "run", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 1 and "nope.jsonl not found" in _one_line(missing)
    no_col = _cli(rag_home, "eval", "run", str(suite), "-c", "ghost", "--retrieval-only")
    assert no_col.exit_code == 1 and "collection 'ghost' does not exist" in _one_line(no_col)
    bad_limit = _cli(rag_home, "eval", "run", str(suite), "--limit", "0")
    assert bad_limit.exit_code == 2 and "--limit" in _one_line(bad_limit)
    bad_ragas = _cli(rag_home, "eval", "run", str(suite), "--ragas", "nope")
    assert bad_ragas.exit_code == 2 and "unknown ragas metric 'nope'" in _one_line(bad_ragas)
    bad_compare = _cli(rag_home, "eval", "compare", str(out), str(suite))
    assert bad_compare.exit_code == 1 and "expected a result line" in _one_line(bad_compare)


def test_cli_compares_two_multihop_modes_in_one_command(suite: Path, tmp_path: Path, rag_home: Path) -> None:
    from rag.core.entity_graph import GRAPH_FILE
    from rag.core.home import collection_paths

    graph_file = collection_paths(rag_home, "default").root / GRAPH_FILE
    assert not graph_file.exists()  # [multihop] mode is off by default: the ingest wrote no graph
    proc = _cli(rag_home, "eval", "run", str(suite), "--retrieval-only", "--no-rerank", "--depth", "3",
                "--multihop", "graph,off", "--json")
    assert proc.exit_code == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["a"]["multihop"] == "graph" and data["b"]["multihop"] == "off"
    assert set(data["a"]["per_question"]) == set(data["b"]["per_question"]) == {"q1", "q2", "q3", "q4"}
    rows = {r["metric"]: r for r in data["metrics"]}
    assert rows["ndcg@3"]["n"] == 4 and rows["ndcg@3"]["a"] == data["a"]["metrics"]["ndcg@3"]
    assert rows["ndcg@3"]["b"] == data["b"]["metrics"]["ndcg@3"]
    assert graph_file.exists()  # the graph run's first hop built the collection's graph
    cached = [json.loads(line) for f in (rag_home / "eval-cache").glob("*.jsonl") for line in f.read_text().splitlines()]
    assert len(cached) == 8  # each mode its own results: the mode is part of the cache key
    single = _cli(rag_home, "eval", "run", str(suite), "--retrieval-only", "--no-rerank", "--depth", "3",
                  "--multihop", "off", "--json")
    assert single.exit_code == 0 and json.loads(single.stdout)["per_question"] == data["b"]["per_question"]
    assert json.loads(single.stdout)["cached"] == 4
    table = _cli(rag_home, "eval", "run", str(suite), "--retrieval-only", "--no-rerank", "--depth", "3",
                 "--multihop", "graph,off")
    assert table.exit_code == 0 and "--multihop graph" in table.stdout and "ndcg@3" in table.stdout
    for bad in ("bogus", "graph,graph", "off,links,graph", "graph,"):
        wrong = _cli(rag_home, "eval", "run", str(suite), "--retrieval-only", "--multihop", bad)
        assert wrong.exit_code == 2 and "--multihop" in _one_line(wrong)
    two_out = _cli(rag_home, "eval", "run", str(suite), "--retrieval-only", "--multihop", "graph,off",
                   "--out", str(tmp_path / "x.jsonl"))
    assert two_out.exit_code == 2 and "one mode" in _one_line(two_out) and not (tmp_path / "x.jsonl").exists()


@pytest.mark.slow
def test_answers_and_judge_with_smollm2(suite: Path, tmp_path: Path, rag_home: Path) -> None:
    """The whole path: retrieval, a real answer from SmolLM2, judged metrics by the same local server."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "RAG_HOME": str(rag_home),
           "RAG_LLM_LOCAL_MODEL": "smollm2-135m-instruct", "RAG_LLM_THREADS": "1", "RAG_LLM_MAX_TOKENS": "40",
           "RAG_ANSWER_K": "2"}
    out, report = tmp_path / "a.jsonl", tmp_path / "a.html"
    cmd = [sys.executable, "-m", "rag.cli", "eval", "run", str(suite), "--limit", "2", "--no-rerank", "--depth", "3",
           "--out", str(out), "--report", str(report), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    for r in lines:
        assert r["answer"] and len(r["contexts"]) <= 2 and r["retrieved"]
        checks = r["answer_checks"]  # what the answer-time checks decided, e.g. a draft withdrawn by [answer] verify
        assert set(checks) == {"withdrawn", "answerable_probability", "verified_probability", "joined", "direct",
                               "notes"}
        assert checks["joined"] is False  # no multi-hop here
        assert not checks["withdrawn"] or r["refused"]
        if not r["refused"] and r["statements"]:
            assert r["judge"] == {"endpoint": "local:smollm2-135m-instruct", "model": "smollm2-135m-instruct",
                                  "method": "logprob"}
            judged = [v for v in r["verdicts"] if v["kind"] == "supported"]
            faith = r["metrics"]["faithfulness"]
            if faith is not None:
                assert faith == pytest.approx(sum(v["verdict"] for v in judged) / len(r["statements"]))
            else:
                assert any(e["metric"] == "faithfulness" for e in r["errors"])
    q2 = lines[1]  # q2 has a short reference answer: EM/F1 of the whole answer and of the judge's short answer
    assert q2["metrics"]["contains"] in (0.0, 1.0)
    if q2["refused"]:
        assert q2["metrics"]["short_em"] == 0.0
    elif q2["metrics"]["short_f1"] is None:
        assert any(e["metric"] == "short_answer" for e in q2["errors"])
    else:
        assert short_answer_in(q2["short_answer"], q2["answer"], q2["question"])
        assert q2["metrics"]["short_em"] == exact_match(q2["short_answer"], q2["answers"])
    data = json.loads(proc.stdout)
    assert data["judges"] and data["questions"] == 2
    assert "<table>" in report.read_text() and (tmp_path / "a-scores.png").exists()
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert json.loads(again.stdout)["cached"] == 2 and json.loads(again.stdout)["metrics"] == data["metrics"]


def test_rewording_a_prompt_changes_the_cache_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cached answers from an older prompt must not be reused: the prompts' wording is part of the key."""
    import rag.core.prompts
    from evals.run import EvalOptions, config_fingerprint
    from rag.core.config import Settings

    before = config_fingerprint(Settings(), EvalOptions(), None)
    assert config_fingerprint(Settings(), EvalOptions(), None) == before
    monkeypatch.setattr(rag.core.prompts, "ANSWER_SYSTEM", rag.core.prompts.ANSWER_SYSTEM + " Be brief.")
    assert config_fingerprint(Settings(), EvalOptions(), None)["prompts"] != before["prompts"]
