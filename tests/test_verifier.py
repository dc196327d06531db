"""The grounding verifier: training rows (ARES, SciFact, made-up negatives), `rag tune verifier`, loading, scoring."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag.cli import main
from rag.core.errors import ConfigError, ModelLoadError
from rag.query.verify_model import SHIPPED, Verifier, answer_claim, get_verifier, has_weights
from rag.tune.verifier_data import (
    answerable_examples, load_verifier_data, remove_sentences, split_groups, split_sentences, swap_entity, swap_number,
)

ABSTRACTS = {
    "101": ("Aspirin and stroke",
            "Stroke is a leading cause of death. We followed 4,000 adults for 10 years. "
            "Daily aspirin reduced the risk of ischaemic stroke by 22% in adults over 60. "
            "Bleeding events were rare. Further trials are needed."),
    "102": ("Coffee and sleep",
            "Caffeine is widely consumed. In a crossover trial of 40 students, coffee taken six hours before bed "
            "shortened total sleep by 41 minutes. Subjective sleep quality did not change."),
    "103": ("Zinc and colds",
            "Zinc lozenges are sold as a cold remedy. Trial quality was low across studies. "
            "No effect on symptom duration was found in 12 randomised trials."),
}
CLAIMS = [
    {"id": "1", "claim": "Daily aspirin lowers the risk of ischaemic stroke in adults over 60.", "evidence_doc_id": "101",
     "evidence_label": "SUPPORT", "evidence_sentences": "[2]", "cited_doc_ids": "[101]"},
    {"id": "2", "claim": "Coffee before bed has no effect on total sleep time.", "evidence_doc_id": "102",
     "evidence_label": "CONTRADICT", "evidence_sentences": "[1]", "cited_doc_ids": "[102]"},
    {"id": "3", "claim": "Zinc lozenges prevent pneumonia.", "evidence_doc_id": "", "evidence_label": "",
     "evidence_sentences": "[]", "cited_doc_ids": "[103]"},
]


def make_scifact(root: Path) -> Path:
    """A three-abstract SciFact-style folder: corpus.jsonl and claims/claims_train.csv."""
    (root / "claims").mkdir(parents=True)
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for doc_id, (title, text) in ABSTRACTS.items():
            fh.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with open(root / "claims" / "claims_train.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(CLAIMS[0]))
        writer.writeheader()
        writer.writerows(CLAIMS)
    return root


ARES_ROWS = [
    ("The Eiffel Tower in Paris was completed in 1889 for the World's Fair.", "When was the Eiffel Tower completed?",
     "1889", "Yes"),
    ("The Eiffel Tower in Paris was completed in 1889 for the World's Fair.", "When was the Eiffel Tower completed?",
     "Napoleon Bonaparte", "No"),
    ("Marie Curie won the Nobel Prize in Physics with Pierre Curie and Henri Becquerel.",
     "Who shared the Nobel Prize in Physics with Marie Curie?", "Pierre Curie and Henri Becquerel", "Yes"),
    ("Marie Curie won the Nobel Prize in Physics with Pierre Curie and Henri Becquerel.",
     "Who shared the Nobel Prize in Physics with Marie Curie?", "42", "No"),
    ("The Amazon river flows through Peru, Colombia and Brazil into the Atlantic Ocean.",
     "Which ocean does the Amazon flow into?", "the Atlantic Ocean", "Yes"),
    ("The Amazon river flows through Peru, Colombia and Brazil into the Atlantic Ocean.",
     "Which ocean does the Amazon flow into?", "the Pacific Ocean", "No"),
]


def make_ares(folder: Path, names: tuple[str, ...] = ("aa", "bb")) -> Path:
    """ARES-style TSV files with the five columns the verifier reads (plus an irrelevant row each)."""
    folder.mkdir(parents=True, exist_ok=True)
    cols = ["document", "synthetic_query", "Context_Relevance_Label", "generated_answer", "Answer_Faithfulness_Label",
            "Answer_Relevance_Label"]
    for name in names:
        with open(folder / f"{name}_synthetic_queries.tsv", "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, delimiter="\t")
            writer.writerow(cols)
            for doc, q, a, label in ARES_ROWS:
                writer.writerow([doc, f"{q} ({name})", "Yes", a, label, "Yes"])
            writer.writerow(["Bananas are berries.", f"Who built the Eiffel Tower? ({name})", "No", "", "", ""])
    return folder


def test_sentences_removal_and_swaps() -> None:
    text = ABSTRACTS["101"][1]
    sentences = split_sentences(text)
    assert len(sentences) == 5 and sentences[2].startswith("Daily aspirin")
    assert "aspirin" not in remove_sentences(sentences, [2]) and "Bleeding" in remove_sentences(sentences, [2])
    rng = random.Random(0)
    swapped = swap_number("Aspirin cut strokes by 22% over 10 years.", rng)
    assert swapped and swapped != "Aspirin cut strokes by 22% over 10 years."
    assert swapped.replace("22", "").replace("10", "") != "Aspirin cut strokes by % over  years."  # a number changed
    assert swap_number("No numbers here.", rng) is None
    assert swap_entity("Marie Curie discovered polonium.", ["Isaac Newton"], rng) == "Isaac Newton discovered polonium."
    assert swap_entity("nothing capitalised", ["Isaac Newton"], rng) is None


def test_scifact_rows(tmp_path: Path) -> None:
    kind, rows = load_verifier_data(make_scifact(tmp_path / "scifact"), None, 13)
    assert kind == "scifact"
    by = {(r.group, r.kind): r for r in rows}
    support = by[("scifact:1", "scifact-support")]
    assert support.label == 1.0 and "Daily aspirin reduced" in support.evidence and support.evidence.startswith("Aspirin")
    removed = by[("scifact:1", "scifact-rationale-removed")]
    assert removed.label == 0.0 and "Daily aspirin" not in removed.evidence and removed.claim == support.claim
    assert by[("scifact:2", "scifact-contradict")].label == 0.0
    assert by[("scifact:3", "scifact-nei")].label == 0.0 and "Zinc" in by[("scifact:3", "scifact-nei")].evidence
    swap = by[("scifact:1", "scifact-swap")]
    assert swap.label == 0.0 and swap.claim != support.claim and swap.evidence == support.evidence


def test_ares_rows_exclude_a_file_and_add_wrong_answers(tmp_path: Path) -> None:
    kind, rows = load_verifier_data(make_ares(tmp_path / "ares"), None, 13, exclude=("bb",))
    assert kind == "ares" and all(":aa:" in r.group for r in rows)
    faithful = [r for r in rows if r.kind == "ares-faithful"]
    assert len(faithful) == 3 and all(r.label == 1.0 for r in faithful)
    assert answer_claim("1889", "When was the Eiffel Tower completed? (aa)") in {r.claim for r in faithful}
    assert sum(r.kind == "ares-unfaithful" and r.label == 0.0 for r in rows) == 3
    swapped = [r for r in rows if r.kind == "ares-number-swap"]
    assert swapped and all(r.label == 0.0 and "1889" not in r.claim for r in swapped)
    assert any(r.kind == "ares-other-name" for r in rows)
    _, with_context = load_verifier_data(tmp_path / "ares", None, 13, exclude=("bb",), context=True)
    assert {r.label for r in with_context if r.kind == "ares-context"} == {0.0, 1.0}
    with pytest.raises(ConfigError, match="excluded"):
        load_verifier_data(tmp_path / "ares", None, 13, exclude=("aa", "bb"))


def test_answerable_rows_hold_the_answer_or_lose_its_sentences(tmp_path: Path) -> None:
    cols = ["document", "synthetic_query", "Context_Relevance_Label", "generated_answer", "Answer_Faithfulness_Label"]
    doc = ("The Eiffel Tower stands in Paris. It was completed in 1889 for the World's Fair. "
           "It is 330 metres tall. Millions visit it every year.")
    path = tmp_path / "cc_synthetic_queries.tsv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t")
        writer.writerow(cols)
        writer.writerow([doc, "When was the Eiffel Tower completed?", "Yes", "1889.", "Yes"])
        writer.writerow([doc, "Who designed it?", "Yes", "Gustave Eiffel", "Yes"])  # answer not in the document
        writer.writerow([doc, "How tall is it?", "Yes", "500 metres", "No"])  # unfaithful: not a source
        writer.writerow(["Short.", "What is it?", "No", "", ""])
    rows = answerable_examples([path], 10, 13, max_words=120)
    by = {r.kind: r for r in rows}
    assert len(rows) == 3 and set(by) == {"ares-question", "ares-question-removed", "ares-answer-removed"}
    assert by["ares-question"].label == 1.0 and "1889" in by["ares-question"].evidence
    assert by["ares-question"].claim == "When was the Eiffel Tower completed?"
    for kind in ("ares-question-removed", "ares-answer-removed"):
        assert by[kind].label == 0.0 and "1889" not in by[kind].evidence and "330 metres" in by[kind].evidence
    assert by["ares-answer-removed"].claim == answer_claim("1889", "When was the Eiffel Tower completed?")
    assert len({r.group for r in rows}) == 1  # one question: held out together
    assert answerable_examples([path], 0, 13) == []


def test_heldout_split_keeps_groups_whole(tmp_path: Path) -> None:
    _, rows = load_verifier_data(make_scifact(tmp_path / "scifact"), None, 13)
    train, held = split_groups(rows, 0.34, 13)
    assert held and train and not {r.group for r in train} & {r.group for r in held}
    assert len(train) + len(held) == len(rows)


def test_missing_weights_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="rag tune verifier") as err:
        Verifier(tmp_path / "empty")
    assert "\n" not in str(err.value) and "LLM" in str(err.value)
    verifier, why = get_verifier(tmp_path / "empty")
    assert verifier is None and why == str(err.value)


@pytest.mark.slow
def test_tune_verifier_end_to_end(tmp_path: Path) -> None:
    """`rag tune verifier` on a tiny fixture writes compact weights and a model card that Verifier loads."""
    out = tmp_path / "verifier"
    result = CliRunner().invoke(main, [
        "tune", "verifier", "--train", str(make_ares(tmp_path / "ares")), "--exclude", "bb",
        "--train", str(make_scifact(tmp_path / "scifact")), "--out", str(out), "--epochs", "1", "--batch-size", "8",
        "--max-length", "64", "--heldout", "0.3", "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["training_rows"] > 0 and summary["heldout"]["after"]["rows"] > 0
    assert has_weights(out) and (out / "README.md").read_text(encoding="utf-8").startswith("# Grounding verifier")
    assert not (out / "checkpoints").exists()
    verifier = Verifier(out, threads=1)
    p = verifier.probability("The Eiffel Tower was completed in 1889.", answer_claim("1889", "When was it completed?"))
    assert 0.0 <= p <= 1.0
    assert verifier.probabilities([]) == []


@pytest.mark.skipif(not has_weights(SHIPPED), reason="the shipped verifier is not in this checkout")
def test_shipped_verifier_prefers_supported_claims() -> None:
    verifier = Verifier(threads=1)
    evidence = ("The Golden Gate Bridge opened to traffic in 1937. It spans the strait between San Francisco Bay "
                "and the Pacific Ocean and was designed by Joseph Strauss.")
    cases = [
        ("The Golden Gate Bridge opened in 1937.", "The Golden Gate Bridge opened in 1962."),
        ("Joseph Strauss designed the Golden Gate Bridge.", "Frank Lloyd Wright designed the Golden Gate Bridge."),
        (answer_claim("1937", "When did the Golden Gate Bridge open?"),
         answer_claim("1962", "When did the Golden Gate Bridge open?")),
    ]
    scores = verifier.probabilities([(evidence, c) for pair in cases for c in pair])
    for i in range(0, len(scores), 2):
        assert scores[i] > scores[i + 1], (cases[i // 2], scores[i], scores[i + 1])
    assert verifier.probability(evidence, cases[0][0]) == pytest.approx(scores[0], abs=1e-4)


def test_tune_verifier_init_must_hold_a_cross_encoder(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["tune", "verifier", "--train", str(make_ares(tmp_path / "ares")),
                                       "--init", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "--init" in result.output and "rag/models/reranker" in result.output
    assert not (tmp_path / "out").exists()  # failed before reading the data or writing anything
