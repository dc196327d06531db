"""Suite format (read/write/validate) and the beir/hotpotqa/clapnq importers on tiny synthetic sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.importers import ImportSourceError, import_suite, safe_name
from evals.suite import SuiteFormatError, SuiteItem, read_suite, write_suite
from rag.core.errors import RagError


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- suite format -----------------------------------------------------------------------------


def test_suite_round_trip_keeps_empty_lists_apart_from_missing(tmp_path: Path) -> None:
    items = [
        SuiteItem(id="q1", question="Who?", answers=("Ann",), gold_sources=("docs/a.txt",), answerable=True),
        SuiteItem(id="q2", question="Why?", answers=(), answerable=False, answer="n/a", citations=()),
        SuiteItem(id="q3", question="What?"),
    ]
    path = tmp_path / "s" / "suite.jsonl"
    assert write_suite(items, path) == 3
    assert read_suite(path) == items
    assert _read(path)[2] == {"id": "q3", "question": "What?"}
    assert _read(path)[1]["answers"] == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"id": "q2", "question": "ok"', "line 2: invalid JSON"),
        ('{"id": "q2"}', 'line 2: missing "question"'),
        ('{"id": "q2", "question": "ok", "gold_source": ["x"]}', "line 2: unknown key 'gold_source'"),
        ('{"id": "q1", "question": "again"}', "line 2: id 'q1' already used on line 1"),
        ('{"id": "q2", "question": "ok", "answerable": "yes"}', 'line 2: "answerable" must be true or false'),
        ('{"id": "q2", "question": "ok", "answers": "Ann"}', 'line 2: "answers" must be a list of strings'),
        ('["q2", "ok"]', "line 2: expected a JSON object"),
    ],
)
def test_read_suite_reports_file_line_and_problem(tmp_path: Path, line: str, expected: str) -> None:
    path = tmp_path / "suite.jsonl"
    path.write_text('{"id": "q1", "question": "fine"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(SuiteFormatError) as err:
        read_suite(path)
    message = str(err.value)
    assert isinstance(err.value, RagError) and "\n" not in message
    assert str(path) in message and expected in message


def test_read_suite_missing_or_empty_file(tmp_path: Path) -> None:
    with pytest.raises(SuiteFormatError, match="not found"):
        read_suite(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(SuiteFormatError, match="no questions"):
        read_suite(tmp_path / "empty.jsonl")


def test_safe_name() -> None:
    assert safe_name("Kiss and Tell (1945 film)") == "Kiss_and_Tell_(1945_film)"
    assert safe_name("a/b\\c:d") == "a_b_c_d"
    assert safe_name("../..") == "doc" and safe_name("CON") == "doc_CON"
    assert len(safe_name("é" * 500).encode()) <= 120


# --- importers --------------------------------------------------------------------------------


def _beir(folder: Path) -> Path:
    _jsonl(folder / "corpus.jsonl", [
        {"_id": "d/1", "title": "One", "text": "first text"},
        {"_id": "d_1", "title": "", "text": "second text"},
        {"_id": "d3", "title": "Three", "text": "third text"},
    ])
    _jsonl(folder / "queries.jsonl", [{"_id": "q1", "text": "query one"}, {"_id": "q2", "text": "query two"}])
    (folder / "qrels").mkdir()
    qrels = b"query-id\tcorpus-id\tscore\r\nq1\td/1\t1\r\nq1\td3\t0\r\nq2\td_1\t2\r\n"
    (folder / "qrels" / "test.tsv").write_bytes(qrels)
    return folder


def test_import_beir(tmp_path: Path) -> None:
    summary = import_suite("beir", _beir(tmp_path / "beir"), tmp_path / "out")
    assert (summary.questions, summary.documents) == (2, 3)
    docs = sorted(p.name for p in (tmp_path / "out" / "docs").iterdir())
    assert docs == ["d3.txt", "d_1-2.txt", "d_1.txt"]  # "d/1" and "d_1" collide; order fixed by id
    items = {i.id: i for i in read_suite(summary.suite)}
    assert items["q1"].gold_sources == ("docs/d_1.txt",)  # relevance 0 is not gold
    assert (tmp_path / "out" / "docs" / "d_1.txt").read_text() == "One\n\nfirst text\n"
    assert (tmp_path / "out" / items["q2"].gold_sources[0]).read_text() == "second text\n"
    assert not (tmp_path / "out" / ".tmp").exists()


def _hotpot_row(qid: str, answer: str, contexts: list[tuple[str, str, bool]]) -> dict:
    return {
        "question_id": qid, "question_text": f"question {qid}?",
        "answers_objects": [{"number": "", "date": {"day": "", "month": "", "year": ""}, "spans": [answer]}],
        "contexts": [{"id": str(i), "title": t, "paragraph_text": p, "is_supporting": s}
                     for i, (t, p, s) in enumerate(contexts)],
    }


HOTPOT = [
    _hotpot_row("a", "Paris", [("France", "Paris is the capital.", True), ("Rome", "Rome is old.", False),
                               ("Eiffel Tower", "It is in Paris.", True)]),
    _hotpot_row("b", "Rome", [("Rome", "Rome is old.", True), ("France", "Paris is the capital.", False),
                              ("rome", "Another Rome paragraph.", True)]),
]


def test_import_hotpotqa_dedupes_and_keeps_ids_stable(tmp_path: Path) -> None:
    src = _jsonl(tmp_path / "hp" / "dev_subsampled.jsonl", HOTPOT)
    summary = import_suite("hotpotqa", src.parent, tmp_path / "out")
    assert (summary.questions, summary.documents, summary.duplicates_merged) == (2, 4, 2)
    items = read_suite(summary.suite)
    assert items[0].gold_sources == ("docs/France.txt", "docs/Eiffel_Tower.txt")
    assert items[0].answers == ("Paris",) and items[0].gold_contexts == ("Paris is the capital.", "It is in Paris.")
    assert items[1].gold_sources == ("docs/Rome.txt", "docs/rome-2.txt")  # case-insensitive collision
    assert (tmp_path / "out" / "docs" / "Rome.txt").read_text() == "Rome\n\nRome is old.\n"

    reversed_src = _jsonl(tmp_path / "hp2" / "dev.jsonl", HOTPOT[::-1])
    again = read_suite(import_suite("hotpotqa", reversed_src, tmp_path / "out2").suite)
    assert {i.id: i.gold_sources for i in again} == {i.id: i.gold_sources for i in items}


def _clap_row(qid: str, title: str, text: str, answer: str, selected: list[str]) -> dict:
    return {"id": qid, "input": f"question {qid}", "passages": [{"title": title, "text": text, "sentences": [text]}],
            "output": [{"answer": answer, "selected_sentences": selected, "meta": {}}]}


def test_import_clapnq(tmp_path: Path) -> None:
    src = tmp_path / "clap"
    _jsonl(src / "clapnq_dev_answerable.jsonl", [
        _clap_row("1", "Moon", "The Moon orbits Earth . ", "It orbits Earth.", ["The Moon orbits Earth ."]),
        _clap_row("2", "Moon", "The Moon orbits Earth . ", "Earth.", ["The Moon orbits Earth ."]),
    ])
    _jsonl(src / "clapnq_dev_unanswerable.jsonl", [_clap_row("3", "Moon", "Craters cover it .", "", [])])
    summary = import_suite("clapnq", src, tmp_path / "out")
    assert (summary.questions, summary.documents, summary.answerable, summary.unanswerable) == (3, 2, 2, 1)
    items = {i.id: i for i in read_suite(summary.suite)}
    assert items["1"].answers == ("It orbits Earth.",) and items["1"].answerable is True
    assert items["1"].gold_sources == items["2"].gold_sources == ("docs/Moon-2.txt",)  # sorted by text
    assert items["1"].gold_contexts == ("The Moon orbits Earth .",)
    assert items["3"].answerable is False and items["3"].answers == () and items["3"].gold_sources == ("docs/Moon.txt",)


def test_out_must_be_empty_unless_overwrite(tmp_path: Path) -> None:
    src = _jsonl(tmp_path / "hp" / "dev_subsampled.jsonl", HOTPOT[:1])
    out = tmp_path / "out"
    (out / "docs").mkdir(parents=True)
    (out / "docs" / "stale.txt").write_text("old")
    (out / "notes.md").write_text("mine")
    with pytest.raises(ImportSourceError, match="not empty"):
        import_suite("hotpotqa", src, out)
    summary = import_suite("hotpotqa", src, out, overwrite=True)
    assert summary.documents == 3 and not (out / "docs" / "stale.txt").exists()
    assert (out / "notes.md").read_text() == "mine" and not (out / ".tmp").exists()


def test_bad_source_leaves_nothing_behind(tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text('{"question_id": "a", "question_text": "q", "contexts": "oops"}\n')
    with pytest.raises(ImportSourceError, match="bad.jsonl line 1"):
        import_suite("hotpotqa", src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ImportSourceError, match="unknown suite kind"):
        import_suite("squad", src, tmp_path / "out")
