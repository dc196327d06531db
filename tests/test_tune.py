"""``rag tune``: training data loaders, compact weights, a real (tiny) fine-tuning run, resume after kill -9."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag.cli import main
from rag.core.errors import ConfigError
from rag.tune.data import load_train_data, split_heldout

REPO = Path(__file__).resolve().parent.parent

TOPICS = {
    "volcano": "Volcanoes erupt when magma rises through the crust. Basaltic lava flows are runny; "
               "andesitic magma is sticky and explosive.",
    "bees": "Honey bees communicate the direction of flowers with a waggle dance performed inside the hive.",
    "sourdough": "A sourdough starter is a culture of wild yeast and lactobacilli fed with flour and water.",
    "tides": "Tides are caused by the gravitational pull of the Moon and, to a lesser degree, the Sun.",
    "penguins": "Emperor penguins breed in the Antarctic winter; the male incubates the single egg on his feet.",
    "chess": "In chess, castling moves the king two squares towards a rook, which jumps to the other side.",
    "coffee": "Espresso is brewed by forcing hot water through finely ground coffee at about nine bars.",
    "glaciers": "Glaciers carve U-shaped valleys as the moving ice scrapes and plucks the bedrock beneath.",
    "vaccines": "Vaccines train the immune system by presenting an antigen, so memory cells form antibodies fast.",
    "bridges": "Suspension bridges hang the deck from vertical cables attached to main cables over tall towers.",
    "rust": "Iron rusts when it reacts with oxygen and water, forming hydrated iron oxide that flakes away.",
    "comets": "A comet's tail points away from the Sun because the solar wind pushes gas and dust outwards.",
}
QUESTIONS = {
    "volcano": "why are some volcanic eruptions explosive",
    "bees": "how do bees tell each other where flowers are",
    "sourdough": "what lives in a sourdough starter",
    "tides": "what causes the tides",
    "penguins": "which emperor penguin parent keeps the egg warm",
    "chess": "how does castling work",
    "coffee": "what pressure is used to make espresso",
    "glaciers": "how do glaciers shape valleys",
    "vaccines": "how do vaccines protect against disease",
    "bridges": "what holds up the deck of a suspension bridge",
}


def make_suite(root: Path) -> Path:
    docs = root / "docs"
    docs.mkdir(parents=True)
    for name, text in TOPICS.items():
        (docs / f"{name}.txt").write_text(text, encoding="utf-8")
    with open(root / "suite.jsonl", "w", encoding="utf-8") as fh:
        for name, q in QUESTIONS.items():
            fh.write(json.dumps({"id": name, "question": q, "gold_sources": [f"docs/{name}.txt"]}) + "\n")
    return root


def test_suite_loader_reads_gold_files_and_the_rest_of_docs(tmp_path: Path) -> None:
    data = load_train_data(make_suite(tmp_path / "s"))
    assert data.kind == "suite" and len(data.queries) == len(QUESTIONS)
    assert len(data.corpus) == len(TOPICS)  # the two unasked documents are candidates too
    q = next(q for q in data.queries if q.qid == "tides")
    assert q.gold == frozenset({f"{data.scope}/docs/tides.txt"})
    train, held = split_heldout(data.queries, 0.2, 13)
    assert len(held) == 2 and not {x.qid for x in held} & {x.qid for x in train}
    assert split_heldout(data.queries, 0.2, 13) == (train, held)  # seeded


def test_ares_loader_pools_documents_and_keeps_known_negatives(tmp_path: Path) -> None:
    header = "document\tsynthetic_query\tContext_Relevance_Label\tgenerated_answer\n"
    rows = [
        ("Paris is the capital of France.", "what is the capital of France", "Yes"),
        ("Paris is the capital of France.", "what is the capital of France", "Yes"),  # repeated row
        ("Bananas are rich in potassium.", "what is the capital of France", "No"),
        ("Mount Everest is 8,849 m high.", "how high is Everest", "Yes"),
        ("Rome is in Italy.", "which river flows through Rome", "No"),  # no relevant document: not a question
    ]
    (tmp_path / "a.tsv").write_text(header + "".join(f"{d}\t{q}\t{lab}\tx\n" for d, q, lab in rows), encoding="utf-8")
    data = load_train_data(tmp_path)
    assert data.kind == "ares" and len(data.corpus) == 4
    assert sorted(q.query for q in data.queries) == ["how high is Everest", "what is the capital of France"]
    france = next(q for q in data.queries if "France" in q.query)
    assert [data.corpus[s] for s in france.negatives] == ["Bananas are rich in potassium."]
    assert len(load_train_data(tmp_path, per_file=1).queries) == 1


def test_bad_training_sources_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_train_data(tmp_path / "missing")
    (tmp_path / "bad.tsv").write_text("a\tb\n1\t2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected ARES columns"):
        load_train_data(tmp_path / "bad.tsv")
    result = CliRunner().invoke(main, ["tune", "reranker", "--train", str(tmp_path / "nope"), "--out",
                                       str(tmp_path / "o")])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "Traceback" not in result.output


def test_compact_weights_round_trip_and_skip_frozen_embeddings(tmp_path: Path) -> None:
    import torch

    from rag.core.ce_weights import load_compact, new_cross_encoder, save_compact
    from rag.query.rerank import Reranker

    model = new_cross_encoder("all-MiniLM-L6-v2", 128)
    with torch.no_grad():  # stand-in for training: change the head and one layer
        model.model.classifier.weight.add_(0.5)
        model.model.bert.encoder.layer[0].output.dense.bias.add_(0.01)
    meta = save_compact(model, "all-MiniLM-L6-v2", tmp_path, {"blend": 0.3})
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "reranker.safetensors"))
    assert not any("word_embeddings" in k for k in stored) and meta["tensors"] == len(stored)
    assert all(t.dtype == torch.float16 for t in stored.values())
    again, meta2 = load_compact(tmp_path)
    pairs = [("what causes tides", TOPICS["tides"]), ("what causes tides", TOPICS["chess"])]
    assert again.predict(pairs) == pytest.approx(model.predict(pairs), abs=2e-2)
    assert meta2["blend"] == 0.3
    assert Reranker(str(tmp_path)).blend == 0.3  # the product's loader takes the recommended blend
    assert Reranker(str(tmp_path), blend=1.0).blend == 1.0

    from rag.core.records import ScoredChunk

    rr = Reranker(str(tmp_path))
    hits = [ScoredChunk(chunk_id=name, text=text, source=f"{name}.txt", score=1.0 - i / 10)
            for i, (name, text) in enumerate(TOPICS.items())]
    fresh = rr.rerank("what causes tides", hits, 3)
    given = rr.rerank("what causes tides", hits, 3, rr.scores("what causes tides", [h.text for h in hits[:3]]))
    assert [c.chunk_id for c in given] == [c.chunk_id for c in fresh] and len(fresh) == len(hits)
    assert [c.score for c in given] == pytest.approx([c.score for c in fresh])
    with pytest.raises(ValueError, match="2 precomputed scores for 3 chunks"):
        rr.rerank("what causes tides", hits, 3, [0.0, 1.0])


def test_tune_reranker_learns_and_writes_a_loadable_model(tmp_path: Path, rag_home: Path) -> None:
    suite = make_suite(tmp_path / "suite")
    out = tmp_path / "rr"
    args = ["tune", "reranker", "--train", str(suite), "--out", str(out), "--epochs", "4", "--batch-size", "4",
            "--lr", "1e-4", "--loss", "bce", "--negatives", "2", "--heldout", "0.2", "--eval-steps", "5", "--threads", "1", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["training_pairs"] == 8 * 3 and summary["heldout"]["questions"] == 2
    assert 0.0 <= summary["blend"] <= 1.0
    assert not (out / "checkpoints").exists()
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "Held-out" in card and f"{summary['training_pairs']} (question, passage) pairs" in card

    from rag.query.rerank import Reranker

    trained = Reranker(str(out), blend=1.0)
    untrained = Reranker("all-MiniLM-L6-v2")
    train_q = [n for n in QUESTIONS if n not in {"tides", "coffee"}][:6]

    def margin(rr: Reranker) -> float:
        gaps = []
        for name in train_q:
            others = [TOPICS[o] for o in TOPICS if o != name]
            s = rr.scores(QUESTIONS[name], [TOPICS[name], *others])
            gaps.append(s[0] - max(s[1:]))
        return sum(gaps) / len(gaps)

    assert margin(trained) > margin(untrained)
    assert margin(trained) > 0  # after training, the gold passage outscores every other on average


def test_tune_resumes_after_kill_9(tmp_path: Path, rag_home: Path) -> None:
    suite = make_suite(tmp_path / "suite")
    out = tmp_path / "rr"
    cmd = [sys.executable, "-c", "from rag.cli import run; run()", "tune", "reranker", "--train", str(suite), "--out", str(out),
           "--epochs", "2", "--batch-size", "4", "--negatives", "1", "--eval-steps", "3", "--threads", "1"]
    env = {**os.environ, "RAG_HOME": str(rag_home), "RAG_FAULT_KILL_AT": "tune-after-save"}
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert first.returncode == -9, first.stderr[-2000:]
    assert any((out / "checkpoints").glob("checkpoint-*"))
    env.pop("RAG_FAULT_KILL_AT")
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resuming from checkpoint-3" in second.stderr
    assert (out / "reranker.safetensors").is_file() and not (out / "checkpoints").exists()


def test_tune_embedder_and_reembed(tmp_path: Path, rag_home: Path) -> None:
    suite = make_suite(tmp_path / "suite")
    out = tmp_path / "emb"
    result = CliRunner().invoke(main, ["tune", "embedder", "--train", str(suite), "--out", str(out), "--epochs", "1",
                                       "--batch-size", "4", "--negatives", "1", "--heldout", "0.2",
                                       "--eval-steps", "2", "--threads", "1", "--reembed", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["training_triplets"] == 8
    assert summary["reembedded"][0]["chunks_total"] == len(TOPICS)
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(out), device="cpu")
    assert model.encode(["hello"]).shape == (1, 384)
    from rag.core.home import list_collections

    assert any(c.endswith("-tuned") for c in list_collections(rag_home))


def test_training_rows_for_both_losses() -> None:
    from rag.tune.reranker import _rows
    from rag.tune.mine import Mined

    items = [Mined("a", "q1", ("p1", "p2"), ("n1",), ()), Mined("b", "q2", ("p3",), (), ())]
    bce = _rows(items, "bce", 3)
    assert list(zip(bce["query"], bce["passage"], bce["label"])) == [
        ("q1", "p1", 1.0), ("q1", "p2", 1.0), ("q1", "n1", 0.0), ("q2", "p3", 1.0)]
    lw = _rows(items, "listwise", 2)  # a question without negatives gives no listwise row
    assert lw == {"query": ["q1", "q1"], "positive": ["p1", "p2"], "negative_1": ["n1", "n1"],
                  "negative_2": ["n1", "n1"]}
