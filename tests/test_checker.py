"""Who judges support: the trained verifier or the LLM ([answer] checker), in answers and in evals.

Real components: the shipped verifier (or, in a checkout without it, one trained here on a tiny
fixture), the packaged MiniLM, embedded Qdrant and the tiny LLM through a real llama.cpp server.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from evals.answer_metrics import Verdicts
from evals.judge import VerifierJudge, make_judge
from ingest.pipeline import Ingestor
from rag.cli import main
from rag.core.config import LlmConfig, Settings
from rag.core.errors import ModelLoadError
from rag.core.records import ScoredChunk
from rag.query.answer import Answerer
from rag.query.checker import LlmChecker, VerifierChecker, make_checker, plain
from rag.query.verify_model import SHIPPED, Verifier, has_weights, windows
from tests.test_cli import one_line_error, rag
from tests.test_compact import _Recording

EVIDENCE = ("The Golden Gate Bridge opened to traffic in 1937. It spans the strait between San Francisco Bay "
            "and the Pacific Ocean and was designed by Joseph Strauss.")


@pytest.fixture(scope="module")
def verifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped verifier; without one in this checkout, a tiny one trained on the test fixtures."""
    if has_weights(SHIPPED):
        return SHIPPED
    from tests.test_verifier import make_ares, make_scifact

    root = tmp_path_factory.mktemp("verifier")
    out = root / "verifier"
    result = CliRunner().invoke(main, [
        "tune", "verifier", "--train", str(make_ares(root / "ares")), "--train", str(make_scifact(root / "scifact")),
        "--out", str(out), "--epochs", "1", "--batch-size", "8", "--max-length", "64", "--heldout", "0.3",
        "--threads", "1"])
    assert result.exit_code == 0, result.output
    return out


def test_windows_cover_every_sentence_in_overlapping_runs() -> None:
    assert windows("  One short passage.  ", 50) == ["One short passage."]
    assert windows("   ", 50) == []
    sentences = [f"Sentence number {i} talks about item {i} at some length here." for i in range(30)]
    text = " ".join(sentences)
    got = windows(text, 40, limit=100)
    assert len(got) > 1 and all(len(w.split()) <= 40 for w in got)
    for s in sentences:  # every sentence is whole in some window
        assert any(s in w for w in got), s
    assert all(a != b for a, b in zip(got, got[1:]))
    assert got[0].split()[:3] == ["Sentence", "number", "0"]
    assert len(windows(text, 40, limit=3)) == 3


def test_plain_drops_citation_markers() -> None:
    assert plain("It opened in 1937 [1]. Strauss designed it [2, 3].") == "It opened in 1937. Strauss designed it."


def test_checker_choice_and_fallback(tmp_path: Path, verifier_dir: Path, tiny_llm) -> None:  # type: ignore[no-untyped-def]
    answer = Settings().answer
    llm = make_checker(answer.model_copy(update={"checker": "llm"}), tiny_llm)
    assert isinstance(llm, LlmChecker) and llm.support_threshold == answer.support_threshold and not llm.note
    missing = str(tmp_path / "no-verifier")
    auto = make_checker(answer.model_copy(update={"checker": "auto", "verifier": missing}), tiny_llm)
    assert isinstance(auto, LlmChecker) and "support checked by the LLM" in auto.note and "rag tune verifier" in auto.note
    with pytest.raises(ModelLoadError, match=r'checker = "llm"') as err:
        make_checker(answer.model_copy(update={"checker": "verifier", "verifier": missing}), tiny_llm)
    assert "\n" not in str(err.value)
    ver = make_checker(answer.model_copy(update={"checker": "auto", "verifier": str(verifier_dir)}), tiny_llm)
    assert isinstance(ver, VerifierChecker) and ver.label.startswith("verifier (")
    assert ver.support_threshold == ver.verify_threshold == Verifier(verifier_dir).threshold


def test_verifier_checker_reads_the_best_window(verifier_dir: Path) -> None:
    checker = VerifierChecker(Verifier(verifier_dir, threads=1))
    filler = " ".join(f"Unrelated remark {i} about the weather in a distant town." for i in range(40))
    p_alone = checker.supported("The Golden Gate Bridge opened in 1937 [1].", [EVIDENCE])
    p_buried = checker.supported("The Golden Gate Bridge opened in 1937.", [filler + " " + EVIDENCE, "Bananas."])
    assert 0.0 <= p_alone <= 1.0 and p_buried == pytest.approx(p_alone, abs=0.05)  # found in the last window
    p_stated = checker.stated("When did the Golden Gate Bridge open?", "It opened in 1937 [1].", [EVIDENCE])
    assert 0.0 <= p_stated <= 1.0


@pytest.mark.skipif(not has_weights(SHIPPED), reason="the shipped verifier is not in this checkout")
def test_shipped_checker_tells_supported_from_unsupported() -> None:
    """What the shipped verifier is measured to do (docs/verifier.md): a wrong short answer and an off-topic
    sentence fall below its threshold; a sentence with one fact swapped only scores lower, not below."""
    checker = VerifierChecker(Verifier(threads=1))
    q = "When did the Golden Gate Bridge open?"
    assert checker.stated(q, "1937 [1]", [EVIDENCE]) >= checker.verify_threshold > checker.stated(q, "1962", [EVIDENCE])
    good = checker.supported("The Golden Gate Bridge opened in 1937.", [EVIDENCE])
    swapped = checker.supported("The Golden Gate Bridge opened in 1962.", [EVIDENCE])
    off = checker.supported("Penguins live in Antarctica.", [EVIDENCE])
    assert good >= checker.support_threshold > off and good > swapped, (good, swapped, off)


@pytest.mark.skipif(not has_weights(SHIPPED), reason="the shipped verifier is not in this checkout")
def test_shipped_verifier_gate_reads_the_question_as_the_claim() -> None:
    """[answer] gate by the verifier: sources that hold the answer score well above sources that do not."""
    checker = VerifierChecker(Verifier(threads=1))
    holds = [ScoredChunk(chunk_id="a", text=EVIDENCE, source="bridge.txt", score=1.0)]
    lacks = [ScoredChunk(chunk_id="b", text="Bananas are berries; strawberries are not. Both are sold ripe.",
                         source="fruit.txt", score=1.0)]
    question = "When did the Golden Gate Bridge open?"
    assert checker.answerable(question, holds, None) - checker.answerable(question, lacks, None) > 0.3
    assert checker.answerable(question, lacks + holds, None) == pytest.approx(checker.answerable(question, holds, None))


def test_verifier_gate_refuses_without_the_llm(settings: Settings, rag_home: Path, embedder, docs: Path,  # type: ignore[no-untyped-def]
                                               verifier_dir: Path) -> None:
    """A gated question is refused before any draft: the LLM endpoint (down here) is never asked."""
    Ingestor(settings, rag_home, embedder=embedder).run([docs])
    gated = settings.model_copy(update={
        "answer": settings.answer.model_copy(update={"checker": "verifier", "verifier": str(verifier_dir), "gate": 0.999}),
        "llm": LlmConfig(base_url="http://127.0.0.1:9/v1", model="nobody", timeout_s=2)})
    answerer = Answerer(gated, rag_home, rerank=False)
    try:
        answer = answerer.ask("Which year did the Roman emperor Hadrian die?")
    finally:
        answerer.searcher.close()
    assert answer.refused and answer.answerable_probability is not None and answer.answerable_probability < 0.999
    assert answer.answerable_probability == pytest.approx(answerer.checker.answerable(
        "Which year did the Roman emperor Hadrian die?", answer.sources, None), abs=1e-3)
    assert any(n.startswith("not answered: the verifier judged") for n in answer.notes), answer.notes


@pytest.mark.slow
def test_direct_asks_without_a_refusal_when_the_verifier_finds_the_answer(  # type: ignore[no-untyped-def]
        settings: Settings, rag_home: Path, embedder, docs: Path, tiny_llm, verifier_dir: Path) -> None:
    """[answer] direct: the gate's question is asked (gate off), and at or above the threshold the draft is
    asked for with the prompt that offers no refusal, then verified; below it, or with verify off, the usual prompt."""
    from rag.core.prompts import ANSWER_SYSTEM, DIRECT_SYSTEM

    Ingestor(settings, rag_home, embedder=embedder).run([docs])
    question = "How often should succulents be watered?"
    runs = []
    for direct, verify in ((0.001, 0.01), (0.999, 0.01), (0.001, 0.0)):
        cfg = settings.model_copy(update={"answer": settings.answer.model_copy(update={
            "checker": "verifier", "verifier": str(verifier_dir), "direct": direct, "verify": verify})})
        answerer = Answerer(cfg, rag_home, llm=_Recording(tiny_llm), rerank=False)
        try:
            runs.append((answerer.ask(question), answerer.llm.streams))
        finally:
            answerer.searcher.close()
    (sure, sure_llm), (unsure, unsure_llm), (unchecked, unchecked_llm) = runs
    p = sure.answerable_probability
    assert p is not None and 0.001 <= p < 0.999 and unsure.answerable_probability == pytest.approx(p, abs=1e-3)
    assert sure.direct and sure_llm[0][0]["content"] == DIRECT_SYSTEM and len(sure_llm) == 1
    assert sure_llm[0][1] == unsure_llm[0][1]  # the same sources and question, only the instruction differs
    assert any(n.startswith("asked for the answer without offering a refusal: the verifier judged") for n in sure.notes)
    assert sure.as_dict()["direct"] is True
    # a draft that answers is verified like any other (withdrawn below the verifier's threshold)
    assert sure.verified_probability is not None or (sure.refused and not sure.withdrawn)
    for answer, llm in ((unsure, unsure_llm), (unchecked, unchecked_llm)):
        assert not answer.direct and llm[0][0]["content"] == ANSWER_SYSTEM
        assert not any(n.startswith("asked for the answer without") for n in answer.notes)


@pytest.mark.slow
def test_answers_are_checked_by_the_verifier(settings: Settings, rag_home: Path, embedder, docs: Path,  # type: ignore[no-untyped-def]
                                             tiny_llm, verifier_dir: Path) -> None:
    Ingestor(settings, rag_home, embedder=embedder).run([docs])
    loose = settings.model_copy(update={"answer": settings.answer.model_copy(update={
        "checker": "verifier", "verifier": str(verifier_dir), "refuse_unsupported": False, "verify": 0.0,
        "attribute": 0.01})})
    answerer = Answerer(loose, rag_home, llm=tiny_llm, rerank=False)
    try:
        answer = answerer.ask("How often should succulents be watered?")
    finally:
        answerer.searcher.close()
    checked = [s for s in answer.sentences if s.supported is not None]
    if not checked:  # the tiny model refused: nothing was judged, and no checker is named
        assert answer.refused and answer.checker == ""
        return
    threshold = answerer.checker.support_threshold
    for s in checked:  # each verdict is the verifier's own probability against its own threshold
        texts = [answer.sources[n - 1].text for n in s.sources]
        assert s.support_probability == pytest.approx(answerer.checker.supported(s.text, texts), abs=1e-3)
        assert s.supported == (s.support_probability >= threshold)
    data = answer.as_dict()
    assert data["checker"].startswith("verifier (") and any(
        line.startswith("support checked by: verifier") for line in data["explain"])


def test_checker_verifier_without_weights_is_one_line(tmp_path: Path, docs: Path) -> None:
    home = tmp_path / "h"
    env = {"RAG_ANSWER_CHECKER": "verifier", "RAG_ANSWER_VERIFIER": str(tmp_path / "none"),
           "RAG_LLM_LOCAL_MODEL": "smollm2-135m-instruct"}
    assert rag(home, "ingest", str(docs), env=env).returncode == 0
    proc = rag(home, "ask", "How often should succulents be watered?", env=env)  # fails before any LLM work
    assert proc.returncode != 0
    line = one_line_error(proc)
    assert "no verifier weights" in line and 'checker = "llm"' in line


def test_eval_judge_verifier_checks_claims_without_the_llm(tmp_path: Path, verifier_dir: Path) -> None:
    """Faithfulness and citation verdicts come from the verifier; the LLM endpoint (down here) is not asked."""
    config = LlmConfig(base_url="http://127.0.0.1:9/v1", model="nobody", timeout_s=2)
    judge = make_judge(config, tmp_path, "verifier", verifier=str(verifier_dir))
    assert isinstance(judge, VerifierJudge) and judge.info.method == "verifier"
    assert str(verifier_dir) in judge.info.model
    verdicts = Verdicts(judge, [EVIDENCE, "Bananas are berries."], "When did the Golden Gate Bridge open?")
    verdicts.supported([1], "It opened in 1937.")
    verdicts.entails([2], "The Golden Gate Bridge opened in 1937.")
    kinds = [r["kind"] for r in verdicts.records]
    assert kinds == ["supported", "entails"]
    for r in verdicts.records:
        assert 0.0 <= r["p_yes"] <= 1.0 and r["verdict"] == (r["p_yes"] >= judge.claim_threshold)
    with pytest.raises(ModelLoadError, match="rag tune verifier"):
        make_judge(config, tmp_path, "verifier", verifier=str(tmp_path / "none"))
