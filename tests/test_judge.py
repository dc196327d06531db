"""Judges: malformed output is retried then reported (a real local HTTP endpoint that answers badly),
and the real SmolLM2 server gives logprob verdicts that record which judge made them."""

from __future__ import annotations

import http.server
import json
import math
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from evals.answer_metrics import Verdicts, judged
from evals.judge import (
    JsonJudge, JudgeClient, JudgeOutputError, LogprobJudge, RagasJudge, clean_short_answer, entailment_question,
    judge_config, make_judge, short_answer_in,
)
from rag.core.config import LlmConfig, Settings
from rag.core.errors import RagError


class _Endpoint(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint answering every chat request with the next scripted reply."""

    replies: list[dict[str, Any]] = []
    requests: list[dict[str, Any]] = []

    def _send(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        self._send({"object": "list", "data": [{"id": "fake-judge", "object": "model", "owned_by": "test"}]})

    def do_POST(self) -> None:  # noqa: N802
        self.requests.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
        reply = self.replies[min(len(self.requests), len(self.replies)) - 1]
        self._send(reply)

    def log_message(self, *args: object) -> None:
        pass


def _completion(content: str, top: list[tuple[str, float]] | None = None) -> dict[str, Any]:
    logprobs = None
    if top is not None:
        logprobs = {"content": [{"token": top[0][0], "logprob": top[0][1], "bytes": None,
                                 "top_logprobs": [{"token": t, "logprob": lp, "bytes": None} for t, lp in top]}]}
    return {"id": "c1", "object": "chat.completion", "created": 0, "model": "fake-judge",
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": logprobs,
                         "message": {"role": "assistant", "content": content}}]}


@pytest.fixture()
def endpoint() -> Iterator[Callable[[list[dict[str, Any]]], tuple[str, list[dict[str, Any]]]]]:
    """Start a real HTTP server with scripted replies; returns (base_url, the requests it received)."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(replies: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
        requests: list[dict[str, Any]] = []
        handler = type("H", (_Endpoint,), {"replies": replies, "requests": requests})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/v1", requests

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def _judge(url: str, method: str, tmp_path: Path, retries: int = 2) -> LogprobJudge | JsonJudge:
    cfg = judge_config(Settings(), base_url=url)
    return make_judge(cfg, tmp_path, method, retries=retries)


QUESTION = entailment_question(["The Eiffel Tower is in Paris."], "The tower is in Paris.")


def test_json_judge_retries_malformed_output_then_reports_it(endpoint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, requests = endpoint([_completion("Sure! The answer is yes.")])
    judge = _judge(url, "json", tmp_path, retries=2)
    with pytest.raises(JudgeOutputError) as info:
        judge.probability(QUESTION)
    assert len(requests) == 3  # first try + 2 retries
    msg = str(info.value)
    assert "\n" not in msg and "malformed output 3 times" in msg and "Sure! The answer is yes." in msg
    assert f"fake-judge at {url.rstrip('/')} (json)" in msg  # which judge failed
    assert requests[0]["response_format"] == {"type": "json_object"} and requests[0]["temperature"] == 0.0
    assert requests[1]["messages"][-2] == {"role": "assistant", "content": "Sure! The answer is yes."}
    assert isinstance(info.value, RagError)


def test_json_judge_accepts_a_verdict_after_a_bad_reply(endpoint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, requests = endpoint([_completion("{\"answer\": 1}"), _completion('{"verdict": "No"}')])
    judge = _judge(url, "json", tmp_path)
    assert judge.probability(QUESTION) == 0.0 and len(requests) == 2
    assert judge.info.as_dict() == {"endpoint": url.rstrip("/"), "model": "fake-judge", "method": "json"}


def test_logprob_judge_reads_yes_and_no_mass(endpoint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, requests = endpoint([_completion("Yes", [("Yes", -0.1), (" yes", -3.0), ("No", -2.5), ("Maybe", -4.0)])])
    judge = _judge(url, "logprob", tmp_path)
    yes, no = math.exp(-0.1) + math.exp(-3.0), math.exp(-2.5)
    assert judge.probability(QUESTION) == pytest.approx(yes / (yes + no))
    assert requests[0]["max_tokens"] == 1 and requests[0]["logprobs"] is True and requests[0]["temperature"] == 0.0


def test_logprob_judge_without_yes_or_no_is_an_error_not_a_score(endpoint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, requests = endpoint([_completion("Maybe", [("Maybe", -0.2), ("Perhaps", -1.9)])])
    judge = _judge(url, "logprob", tmp_path, retries=1)
    verdicts = Verdicts(judge, ["The Eiffel Tower is in Paris."], "Where is the tower?")
    errors: list[dict[str, str]] = []
    value = judged(lambda: float(verdicts.entails([1], "The tower is in Paris.")), errors, "faithfulness")
    assert value is None  # unknown, not 0 or 1
    assert len(requests) == 2 and len(errors) == 1
    assert errors[0]["metric"] == "faithfulness" and "Maybe Perhaps" in errors[0]["error"]
    assert verdicts.records == []


ANSWER = "The Eiffel Tower stands in Paris [1], on the Champ de Mars."


def test_short_answer_is_copied_from_the_answer(endpoint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, requests = endpoint([_completion("Short answer: Paris.")])
    judge = _judge(url, "logprob", tmp_path)
    assert judge.short_answer("Where is the Eiffel Tower?", ANSWER) == "Paris"
    sent = requests[0]["messages"][-1]["content"]
    assert "Where is the Eiffel Tower?" in sent and ANSWER in sent and requests[0]["temperature"] == 0.0


def test_short_answer_not_in_the_answer_is_retried_then_an_error(endpoint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # the judge must not answer in the system's place: words the answer does not contain are refused
    url, requests = endpoint([_completion("London"), _completion(""), _completion("Champ de Mars")])
    judge = _judge(url, "logprob", tmp_path, retries=2)
    assert judge.short_answer("Where exactly?", ANSWER) == "Champ de Mars" and len(requests) == 3
    assert requests[1]["messages"][-2] == {"role": "assistant", "content": "London"}
    url, requests = endpoint([_completion("London")])
    with pytest.raises(JudgeOutputError, match="London"):
        _judge(url, "logprob", tmp_path, retries=1).short_answer("Where?", ANSWER)
    assert len(requests) == 2


def test_short_answer_may_be_yes_or_no(endpoint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, _ = endpoint([_completion("Yes")])
    assert _judge(url, "json", tmp_path).short_answer("Is it in France?", ANSWER) == "Yes"
    url, requests = endpoint([_completion("Yes"), _completion("Paris")])  # not a yes/no question
    assert _judge(url, "json", tmp_path).short_answer("Which city is it in?", ANSWER) == "Paris"
    assert len(requests) == 2
    assert clean_short_answer('\n"Answer: 1999."\nbecause...') == "1999"


def test_short_answer_may_rewrite_the_answers_own_words() -> None:
    # the judge often writes "1969-1974" for "from 1969 to 1974": the same words, so it is kept
    assert short_answer_in("1969-1974", "Nixon served from 1969 to 1974 [2].")
    assert short_answer_in("Ethiopia sovereignty", "It was about Ethiopia's sovereignty.")
    assert short_answer_in("2014\u201315", "In the 2014\u201315 season [1].")
    assert not short_answer_in("1969-1975", "Nixon served from 1969 to 1974 [2].")
    assert not short_answer_in("Paris, France", "It is in Paris.")
    assert not short_answer_in("2", "Nixon served from 1969 to 1974 [2].")  # a citation marker is not a word


def test_judge_config_picks_the_endpoint() -> None:
    s = Settings()
    assert judge_config(s).local_model == s.llm.local_model and judge_config(s).temperature == 0.0
    assert judge_config(s, model="smollm2-135m-instruct").local_model == "smollm2-135m-instruct"
    remote = judge_config(s, base_url="http://x:1/v1/", model="m")
    assert (remote.base_url, remote.model) == ("http://x:1/v1", "m")
    with_url = Settings.model_validate({"llm": {"base_url": "http://y/v1", "model": "a"}})
    assert judge_config(with_url, model="b").model == "b"


def test_ragas_missing_or_unknown_metric_is_one_line(tmp_path: Path) -> None:
    client = JudgeClient(LlmConfig(base_url="http://127.0.0.1:9/v1", model="m"), tmp_path)
    with pytest.raises(RagError, match="unknown ragas metric 'faithfulnes'"):
        RagasJudge(client, "http://127.0.0.1:9/v1", ["faithfulnes"])


@pytest.mark.slow
def test_smollm2_logprob_judge_records_itself(tmp_path: Path) -> None:
    cfg = LlmConfig(local_model="smollm2-135m-instruct", threads=1, context_tokens=2048)
    judge = make_judge(cfg, tmp_path, "logprob")
    try:
        verdicts = Verdicts(judge, ["Water succulents every two weeks in summer."], "How often to water?")
        verdict = verdicts.supported([1], "Every two weeks in summer.")
        again = verdicts.supported([1], "Every two weeks in summer.")
        assert verdict == again and len(verdicts.records) == 1  # asked once, remembered
        record = verdicts.records[0]
        assert 0.0 <= record["p_yes"] <= 1.0 and record["verdict"] == (record["p_yes"] >= 0.5)
        assert record["contexts"] == [1] and record["kind"] == "supported"
        assert judge.info.as_dict() == {"endpoint": "local:smollm2-135m-instruct", "model": "smollm2-135m-instruct",
                                        "method": "logprob"}
    finally:
        judge.close()


def test_ragas_not_installed_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ragas.llms", None)  # as if ragas were not installed
    client = JudgeClient(LlmConfig(base_url="http://127.0.0.1:9/v1", model="m"), tmp_path)
    with pytest.raises(RagError) as info:
        RagasJudge(client, "http://127.0.0.1:9/v1", ["faithfulness"])
    assert str(info.value).endswith("pip install 'rag-chat[ragas]'") and "\n" not in str(info.value)


def test_ares_benchmark_sampling_and_auroc(tmp_path: Path) -> None:
    import importlib.util

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("judge_ares", REPO / "benchmarks" / "judge_ares.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    head = "document\tsynthetic_query\tContext_Relevance_Label\tgenerated_answer\tAnswer_Faithfulness_Label\n"
    body = "".join(f"doc {i}\tq {i}\t{'No' if i % 3 == 0 else 'Yes'}\ta {i}\t{'' if i % 3 == 0 else ('Yes' if i % 2 else 'No')}\n"
                   for i in range(30))
    (tmp_path / "nq_synthetic_queries.tsv").write_text(head + body, encoding="utf-8")
    rows = bench.load_rows(tmp_path)
    assert len(rows) == 20 and {r["file"] for r in rows} == {"nq"}  # irrelevant rows left out
    picked = bench.sample(rows, 8, seed=3)
    assert sum(r["Answer_Faithfulness_Label"] == "Yes" for r in picked) == 4 and len(picked) == 8
    assert picked == bench.sample(rows, 8, seed=3) and picked != bench.sample(rows, 8, seed=4)
    assert bench.auroc([0.9, 0.8, 0.1], [True, False, False]) == 1.0
    assert bench.auroc([0.5, 0.5, 0.2, 0.9], [True, False, False, True]) == pytest.approx(0.875)


@pytest.mark.slow
def test_ragas_failure_is_an_error_record_not_a_score(tmp_path: Path) -> None:
    """SmolLM2 cannot finish ragas's JSON within 24 tokens: the metric is None and the error names the judge."""
    client = JudgeClient(LlmConfig(local_model="smollm2-135m-instruct", threads=1, context_tokens=2048), tmp_path)
    judge = RagasJudge(client, "local:smollm2-135m-instruct", ["faithfulness"], max_tokens=24)
    errors: list[dict[str, str]] = []
    try:
        sample = {"user_input": "When was Google founded?", "response": "Google was founded in 1998.",
                  "retrieved_contexts": ["Google was founded in 1998 by Larry Page and Sergey Brin."]}
        values = judge.score({**sample}, errors)
        missing = judge.score({"user_input": "q", "response": "", "retrieved_contexts": []}, errors)
    finally:
        judge.close()
        client.close()
    assert values["ragas_faithfulness"] is None
    assert [e["metric"] for e in errors][:1] == ["ragas_faithfulness"]
    assert "smollm2-135m-instruct at local:smollm2-135m-instruct (ragas)" in errors[0]["error"]
    assert missing == {"ragas_faithfulness": None}  # no inputs: not scored, no error recorded
    assert len(errors) == 1
