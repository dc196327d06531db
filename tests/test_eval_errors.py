"""`rag eval run` against an endpoint that fails some questions: they are recorded as errors, the run finishes.

The endpoint is a real local OpenAI-compatible HTTP server (chat completions, streamed or not,
with log-probabilities for the yes/no checks) in a thread: a boundary the project does not own,
faked by a server rather than by patching the client.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evals.run import EvalOptions, run_suite
from evals.suite import SuiteItem, write_suite
from ingest.pipeline import Ingestor
from rag.cli import main
from rag.core.config import Settings

QUESTIONS = [
    SuiteItem(id="q1", question="How often should succulents be watered?", gold_sources=("docs/guide.md",),
              answers=("every two weeks",)),
    SuiteItem(id="q2", question="What do fungus gnats breed in?", gold_sources=("docs/sub/pests.html",)),
    SuiteItem(id="q3", question="When should a fiddle-leaf fig be repotted?", gold_sources=("docs/notes.txt",)),
    SuiteItem(id="q4", question="What do spider mites leave under leaves?", gold_sources=("docs/sub/pests.html",)),
    SuiteItem(id="q5", question="How many hours of direct sun do cacti want?", gold_sources=("docs/guide.md",)),
    SuiteItem(id="q6", question="How often should the large leaves be dusted?", gold_sources=("docs/notes.txt",)),
]
TIMEOUT_S = 1.0
FAILING = {"q3": "timeout", "q6": "http 500"}  # every third question
ANSWER = "The documents say so [1]."


class FakeEndpoint(ThreadingHTTPServer):
    """An OpenAI-compatible chat endpoint; while ``failing`` it hangs or answers 500 for the questions of FAILING."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.failing = True
        self.asked: list[str] = []  # ids of the questions whose requests arrived (answers and checks)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def question_of(self, body: dict[str, Any]) -> str | None:
        text = json.dumps(body.get("messages", []))
        return next((q.id for q in QUESTIONS if q.question in text), None)


class _Handler(BaseHTTPRequestHandler):
    server: FakeEndpoint

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        question = self.server.question_of(body)
        if question is not None:
            self.server.asked.append(question)
        failure = FAILING.get(question or "") if self.server.failing else None
        if failure == "timeout":
            time.sleep(TIMEOUT_S * 3)  # the client gives up first
            return self._send(200, {"choices": []})
        if failure == "http 500":
            return self._send(500, {"error": {"message": "model crashed", "type": "server_error"}})
        if body.get("stream"):
            return self._stream(ANSWER)
        content = "Yes" if body.get("logprobs") else ANSWER
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": content}}
        if body.get("logprobs"):
            tops = [{"token": "Yes", "logprob": -0.1, "bytes": None}, {"token": "No", "logprob": -2.5, "bytes": None}]
            choice["logprobs"] = {"content": [{"token": "Yes", "logprob": -0.1, "bytes": None, "top_logprobs": tops}]}
        self._send(200, {"id": "c", "object": "chat.completion", "created": 0, "model": "fake", "choices": [choice]})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client hung up (it timed out)
            pass

    def _stream(self, text: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for delta, finish in (({"role": "assistant", "content": text}, None), ({}, "stop")):
            chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "fake",
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture()
def endpoint() -> Iterator[FakeEndpoint]:
    server = FakeEndpoint()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class Progress:
    """Records what the run reports: failures as they happen, in order with the finished questions."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def start(self, total: int, cached: int) -> None:
        self.events.append(("start", str(total), str(cached)))

    def failed(self, question_id: str, kinds: list[str]) -> None:
        self.events.append(("failed", question_id, *kinds))

    def advance(self, question_id: str) -> None:
        self.events.append(("done", question_id))


def test_a_run_with_failing_questions_finishes_and_a_rerun_retries_only_those(
        tmp_path: Path, docs: Path, rag_home: Path, embedder: Any, endpoint: FakeEndpoint) -> None:  # fmt: skip
    settings = Settings.model_validate({
        # checker llm: the fake endpoint's fixed answer is judged by the same endpoint (the verifier would
        # judge it against the real passages and may withdraw it, which is not what this test is about)
        "chunking": {"chunk_size": 300, "chunk_overlap": 50}, "answer": {"k": 2, "checker": "llm"},
        "llm": {"base_url": endpoint.url, "model": "fake", "timeout_s": 300},
        "eval": {"llm_timeout_s": TIMEOUT_S},
    })
    Ingestor(settings, rag_home, embedder=embedder).run([docs])
    suite = tmp_path / "suite.jsonl"
    write_suite(QUESTIONS, suite)
    options = EvalOptions(rerank=False, depth=3)  # what the command line below asks for

    progress = Progress()
    started = time.perf_counter()
    results, summary = run_suite(suite, settings, rag_home, options, progress)
    assert time.perf_counter() - started < 60  # [eval] llm_timeout_s, not [llm] timeout_s, bounds the slow call
    by_id = {r["id"]: r for r in results}
    for qid, r in by_id.items():
        if qid in FAILING:
            assert [(e["metric"], e["kind"]) for e in r["errors"]] == [
                ("answer", "timeout" if FAILING[qid] == "timeout" else "endpoint")]
            assert "answer" not in r and r["retrieved"]  # retrieval still measured
            assert ("within 1 s" in r["errors"][0]["error"]) == (FAILING[qid] == "timeout")
        else:
            assert r["errors"] == [] and r["answer"] == ANSWER
            assert r["metrics"]["faithfulness"] == 1.0 and r["metrics"]["relevance"] == 1.0
    assert summary.errors_by_kind == {"endpoint": 1, "timeout": 1} and summary.errors == 2
    assert summary.retry == ("q3", "q6") and summary.metrics["faithfulness"].n == 4
    assert summary.metrics["recall@3"].n == 6
    assert ("failed", "q3", "timeout") in progress.events and ("failed", "q6", "endpoint") in progress.events
    assert progress.events.index(("failed", "q3", "timeout")) < progress.events.index(("done", "q4"))
    assert summary.as_dict()["errors_by_kind"] == {"endpoint": 1, "timeout": 1}

    (rag_home / "config.toml").write_text(  # the same settings, for the command line
        f'[chunking]\nchunk_size = 300\nchunk_overlap = 50\n[answer]\nk = 2\nchecker = "llm"\n'
        f'[llm]\nbase_url = "{endpoint.url}"\nmodel = "fake"\n[eval]\nllm_timeout_s = {TIMEOUT_S}\n', encoding="utf-8")
    cli = CliRunner().invoke(main, ["--home", str(rag_home), "eval", "run", str(suite), "--no-rerank", "--depth", "3",
                                    "--json"], catch_exceptions=False)
    assert cli.exit_code == 0, cli.stderr
    assert json.loads(cli.stdout)["cached"] == 4 and json.loads(cli.stdout)["retry"] == ["q3", "q6"]
    assert "2 error(s) (endpoint 1, timeout 1)" in cli.stderr and "retry only those" in cli.stderr

    endpoint.failing, endpoint.asked = False, []
    progress = Progress()
    results, summary = run_suite(suite, settings, rag_home, options, progress)
    assert progress.events[0] == ("start", "2", "4") and summary.cached == 4
    assert set(endpoint.asked) == {"q3", "q6"}  # only the failed questions were asked again
    assert summary.errors == 0 and summary.retry == () and summary.metrics["faithfulness"].n == 6
    assert all(r["answer"] == ANSWER for r in results)

    _, summary = run_suite(suite, settings, rag_home, options)
    assert summary.cached == 6  # now every question is a result
