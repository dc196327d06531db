"""`rag serve`: a real server (uvicorn on a free port, in a thread) over real stores and models.

One server per module: a home with the fixture documents, the packaged embedder and reranker,
and the tiny SmolLM2 model behind the real llama.cpp server (``tiny_llm``). Clients are httpx,
the real ``openai`` client, and the ``rag`` CLI (in-process, and once as a subprocess).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from click.testing import CliRunner

from rag.core.config import Settings
from tests.conftest import REPO, write

DOCS = {
    "guide.md": "# Watering\n\nWater succulents every two weeks in summer and once a month in winter. "
                "Overwatering rots the roots.\n\n## Signs of thirst\n\nWrinkled leaves mean the plant is thirsty. "
                "Give it a deep soak and let the soil dry out completely.\n\n# Light\n\nMost cacti want four to six "
                "hours of direct sun. A south-facing window is ideal in the northern hemisphere.\n",
    "notes.txt": "The ficus lyrata, or fiddle-leaf fig, dislikes being moved. It drops leaves when its position "
                 "changes.\n\nRepot it every two years in spring, one size up. Use a chunky, well-draining mix "
                 "with bark and perlite.\n\nDust the large leaves monthly so they can photosynthesise.\n",
    "sub/pests.html": "<html><head><title>Pests</title></head><body><h1>Spider mites</h1><p>Spider mites leave "
                      "fine webbing under leaves. Wash the plant and raise humidity.</p><h2>Fungus gnats</h2><p>Fungus "
                      "gnats breed in wet soil. Let the top layer dry and use yellow sticky traps.</p></body></html>",
}
# verify (a second judgement per answer) is covered by tests/test_answer.py; here it would only add time
SETTINGS = {"chunking": {"chunk_size": 300, "chunk_overlap": 50}, "answer": {"k": 3, "verify": 0.0},
            "serve": {"max_k": 50, "max_request_bytes": 20_000}}


class Served:
    """A running server and what the tests need to reach it."""

    def __init__(self, home: Path, root: Path, url: str, engine: Any, token: str) -> None:
        self.home, self.root, self.url, self.engine, self.token = home, root, url, engine, token

    def http(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, headers=headers)


def start_uvicorn(app: Any) -> tuple[Any, threading.Thread, str]:
    """uvicorn on a free loopback port in a thread; returns (server, thread, url) once it listens."""
    import uvicorn

    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as `rag serve` does
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


def stop_uvicorn(server: Any, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_llm: Any) -> Iterator[Served]:
    from ingest.pipeline import ingest
    from rag.serve.app import create_app
    from rag.serve.client import remove_discovery, write_discovery
    from rag.serve.engine import Engine

    base = tmp_path_factory.mktemp("serve")
    home, docs, root = base / "home", base / "docs", base / "allowed"
    for name, text in DOCS.items():
        write(docs / name, text)
    root.mkdir()
    settings = Settings.model_validate({**SETTINGS, "serve": {**SETTINGS["serve"], "ingest_roots": [str(root)]}})
    ingest([str(docs)], settings, home)
    engine = Engine(settings, home, llm=tiny_llm)
    app = create_app(engine, local_token="local-secret")
    server, thread, url = start_uvicorn(app)
    write_discovery(home, url, "local-secret")
    try:
        yield Served(home, root, url, engine, "local-secret")
    finally:
        remove_discovery(home)
        stop_uvicorn(server, thread)


def cli(home: Path, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Any:
    from rag.cli.main import main

    return CliRunner().invoke(main, ["--home", str(home), *args], input=input, env=env, catch_exceptions=False)


# -- (1) health, collections, search; the CLI finds the server --------------------------------


def test_health_collections_and_search_have_the_cli_shape(served: Served) -> None:
    with served.http() as http:
        health = http.get("/healthz").json()
        assert health["status"] == "ok" and health["collections"] == ["default"] and health["pid"] == os.getpid()
        (col,) = http.get("/v1/collections").json()["collections"]
        assert col["name"] == "default" and col["chunks"] > 3
        reply = http.post("/v1/search", json={"query": "fungus gnats in wet soil", "k": 2})
    assert reply.status_code == 200
    data = reply.json()
    assert set(data) == {"query", "retriever", "reranked", "results", "timings_ms", "notes"}
    first = data["results"][0]
    assert first["source"].endswith("pests.html") and first["rank"] == 1
    for key in ("chunk_id", "page", "headings", "start", "end", "text", "score", "scores", "ranks"):
        assert key in first
    # the CLI of the same home goes through the server and prints the same JSON
    out = cli(served.home, "search", "fungus gnats in wet soil", "-k", "2", "--json")
    assert out.exit_code == 0, out.output
    via_cli = json.loads(out.stdout)
    assert [r["chunk_id"] for r in via_cli["results"]] == [r["chunk_id"] for r in data["results"]]


def test_concurrent_searches_share_the_model_thread_and_get_what_one_at_a_time_gets(served: Served) -> None:
    queries = ["fungus gnats in wet soil", "repot the fiddle-leaf fig", "wrinkled leaves thirsty", "south window sun",
               "spider mites webbing", "dust the leaves", "overwatering rots roots", "yellow sticky traps"]
    with served.http() as http:
        alone = {q: [r["chunk_id"] for r in http.post("/v1/search", json={"query": q, "k": 3}).json()["results"]]
                 for q in queries}
    calls_before = served.engine.worker.calls
    got: dict[tuple[int, str], list[str]] = {}
    statuses: list[int] = []

    def client(n: int) -> None:
        with served.http() as http:
            for q in queries[n:] + queries[:n]:
                reply = http.post("/v1/search", json={"query": q, "k": 3})
                statuses.append(reply.status_code)
                got[(n, q)] = [r["chunk_id"] for r in reply.json()["results"]]

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert statuses == [200] * 64
    assert all(got[(n, q)] == alone[q] for n in range(8) for q in queries)
    assert served.engine.worker.calls > calls_before  # the model calls ran on the model thread


def test_search_options_filters_and_limits(served: Served) -> None:
    with served.http() as http:
        # (not "water": with document headers it is in half of these 6 chunks, where BM25's idf is 0)
        only_md = http.post("/v1/search", json={"query": "succulents in summer", "k": 5, "filters": ["source=*.md"],
                                                "rerank": False, "retriever": "bm25"}).json()
        assert "results" in only_md, only_md
        assert only_md["results"] and all(r["source"].endswith(".md") for r in only_md["results"])
        assert only_md["retriever"] == "bm25" and only_md["reranked"] is False
        too_many = http.post("/v1/search", json={"query": "water", "k": 51})
        unknown = http.post("/v1/search", json={"query": "water", "collection": "nope"})
        bad_name = http.post("/v1/search", json={"query": "water", "collection": "../etc"})
        empty = http.post("/v1/search", json={"query": "   "})
        missing = http.post("/v1/search", json={"k": 3})
        extra = http.post("/v1/search", json={"query": "water", "kk": 3})
        not_json = http.post("/v1/search", content=b"{", headers={"content-type": "application/json"})
        too_big = http.post("/v1/search", json={"query": "x" * 30_000})
        no_route = http.get("/v1/nothing")
    for reply, status in ((too_many, 400), (unknown, 404), (bad_name, 400), (empty, 400), (missing, 400),
                          (extra, 400), (not_json, 400), (too_big, 413), (no_route, 404)):
        assert reply.status_code == status, (status, reply.text)
        err = reply.json()["error"]
        assert set(err) == {"message", "type", "code"} and err["code"] == status
        assert "Traceback" not in reply.text
    assert "[serve] max_k" in too_many.json()["error"]["message"]


def test_chunked_body_over_the_limit_is_refused(served: Served) -> None:
    def body() -> Iterator[bytes]:
        for _ in range(30):
            yield b" " * 1000

    with served.http() as http:
        reply = http.post("/v1/search", content=body(), headers={"content-type": "application/json"})
    assert reply.status_code == 413 and reply.json()["error"]["type"] == "request_too_large"


def test_without_a_server_the_cli_works_alone_and_ignores_a_dead_servers_file(tmp_path: Path) -> None:
    from rag.serve.client import discovery_path

    home = tmp_path / "alone"
    docs = tmp_path / "d"
    write(docs / "a.md", "# Cacti\n\nMost cacti want four to six hours of direct sun.\n")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    home.mkdir()
    discovery_path(home).write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": int(dead.stdout), "local_token": "x"}))
    assert cli(home, "ingest", str(docs), "--json").exit_code == 0
    out = cli(home, "search", "direct sun", "-k", "1", "--no-rerank", "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["results"][0]["source"].endswith("a.md")


def test_api_key_is_checked_on_every_route(served: Served) -> None:
    from rag.serve.app import create_app

    app = create_app(served.engine, api_key="s3cret-key", local_token="local-secret", close_engine=False)
    server, thread, url = start_uvicorn(app)
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            for method, path in (("GET", "/healthz"), ("GET", "/v1/collections"), ("GET", "/v1/models"),
                                 ("POST", "/v1/search"), ("POST", "/v1/chat/completions"), ("GET", "/v1/nothing")):
                for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret-key"}):
                    reply = http.request(method, path, headers=headers, json={})
                    assert reply.status_code == 401, (method, path, headers)
                    assert reply.json()["error"]["type"] == "authentication_error"
                    assert "s3cret-key" not in reply.text
            ok = http.post("/v1/search", json={"query": "water", "k": 1},
                           headers={"authorization": "Bearer s3cret-key"})
            assert ok.status_code == 200
            assert http.get("/healthz", headers={"x-api-key": "s3cret-key"}).status_code == 200
            assert http.get("/healthz", headers={"x-rag-local-token": "local-secret"}).status_code == 200
    finally:
        stop_uvicorn(server, thread)


def test_serve_refuses_a_public_address_without_an_api_key(tmp_path: Path) -> None:
    out = cli(tmp_path / "h", "serve", "--host", "0.0.0.0", "--port", "0", env={"RAG_API_KEY": ""})
    assert out.exit_code == 2
    assert "RAG_API_KEY" in out.output and "api_key_env" in out.output


def rag_proc(home: Path, *args: str, env: dict[str, str] | None = None, **kw: Any) -> Any:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "rag.cli", "--home", str(home), *args], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_rag_serve_process_is_found_by_the_cli_holds_the_store_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """The real `rag serve` command: discovery file, CLI through it, store owned, SIGTERM drains and removes the file."""
    from ingest.pipeline import ingest
    from rag.serve.client import LOCAL_TOKEN_HEADER, discovery_path, read_discovery

    home, docs = tmp_path / "home", tmp_path / "docs"
    for name, text in DOCS.items():
        write(docs / name, text)
    ingest([str(docs)], Settings.model_validate(SETTINGS), home)
    # one model less to load in the subprocess; an LLM endpoint that refuses: the warm-up notes it, search works
    write(home / "config.toml", '[rerank]\nenabled = false\n[llm]\nbase_url = "http://127.0.0.1:9/v1"\n')
    proc = rag_proc(home, "serve", "--port", "0")
    try:
        deadline = time.monotonic() + 120
        while read_discovery(home) is None:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "rag serve did not announce itself"
            time.sleep(0.1)
        info = read_discovery(home)
        assert info is not None and info.pid == proc.pid and oct(discovery_path(home).stat().st_mode & 0o777) == "0o600"
        first = rag_proc(home, "search", "fungus gnats", "-k", "1", "--json")
        second = rag_proc(home, "search", "direct sun for cacti", "-k", "1", "--json")
        for p, expect in ((first, "pests.html"), (second, "guide.md")):
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
            assert json.loads(out)["results"][0]["source"].endswith(expect)
        # on its own (RAG_NO_SERVER) the CLI finds the store held, waits a bounded time, and names the holder
        alone = rag_proc(home, "search", "water", "--no-rerank", env={"RAG_NO_SERVER": "1", "RAG_LOCK_WAIT_S": "1"})
        _, err = alone.communicate(timeout=300)
        assert alone.returncode == 1, err
        assert f"pid {proc.pid}" in err and "waiting up to 1 s" in err and "Traceback" not in err
        # an ingest in flight when SIGTERM comes is let finish: every file is stored, none twice
        more = tmp_path / "more"
        for i in range(30):
            write(more / f"note{i:02d}.txt", f"Field note {i}: the quillwort{i:02d} grows in shallow acid lakes.\n")
        with httpx.Client(base_url=info.url, headers={LOCAL_TOKEN_HEADER: info.local_token}, timeout=60) as http:
            job = http.post("/v1/ingest", json={"paths": [str(more)]})
            assert job.status_code == 202, job.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
        assert not discovery_path(home).exists()
        err = proc.stderr.read() if proc.stderr else ""
        assert "rag: note: the LLM did not start" in err and "Traceback" not in err
        status = rag_proc(home, "status", "--json", env={"RAG_NO_SERVER": "1"})
        out, err = status.communicate(timeout=300)
        assert status.returncode == 0, err
        (col,) = json.loads(out)["collections"]
        assert col["files"] == len(DOCS) + 30 and col["files_pending"] == 0, col
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- (2) OpenAI-compatible chat ---------------------------------------------------------------


def openai_client(served: Served) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def unmarked(text: str) -> str:
    import re

    return re.sub(r"\s*\[\d+\]", "", text).strip()


CITATION_KEYS = {"n", "chunk_id", "source", "page", "start", "end", "supported", "attributed"}


def test_models_list_the_collections(served: Served) -> None:
    ids = [m.id for m in openai_client(served).models.list()]
    assert ids == ["rag", "rag:default"]


def test_openai_client_gets_a_cited_answer_and_earlier_turns_rewrite_the_follow_up(served: Served) -> None:
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Tell me about the fiddle-leaf fig."},
                {"role": "assistant", "content": "The fiddle-leaf fig dislikes being moved [1]."},
                {"role": "user", "content": [{"type": "text", "text": "How often should it be repotted?"}]}]
    reply = openai_client(served).chat.completions.create(model="rag:default", messages=messages)
    text = reply.choices[0].message.content
    assert isinstance(text, str) and text.strip() and reply.choices[0].finish_reason == "stop"
    extra = reply.model_extra["rag"]
    assert extra["answer"] == text and extra["route"] == ["default"]
    assert extra["query"].strip() and extra["question"] == extra["query"]  # the rewritten follow-up is asked
    assert len(extra["sources"]) == 3 and {"chunk_id", "source", "page", "start", "end", "text"} <= set(extra["sources"][0])
    for c in extra["citations"]:
        assert set(c) == CITATION_KEYS
        assert f"[{c['n']}]" in text and c["chunk_id"] == extra["sources"][c["n"] - 1]["chunk_id"]


def test_chat_errors_reach_the_openai_client_as_status_errors(served: Served) -> None:
    import openai

    client = openai_client(served)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="rag:nope", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="rag:default", messages=[{"role": "assistant", "content": "hi"}])


def test_concurrent_streams_queue_end_with_their_citations_and_are_not_mixed(served: Served) -> None:
    questions = ["What do spider mites leave under leaves?", "When should the ficus be repotted?"]
    results: dict[str, Any] = {}

    def one(q: str) -> None:
        stream = openai_client(served).chat.completions.create(
            model="rag:default", stream=True, messages=[{"role": "user", "content": q}])
        results[q] = list(stream)

    threads = [threading.Thread(target=one, args=(q,)) for q in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert set(results) == set(questions)
    for q, chunks in results.items():
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert all("rag" not in (c.model_extra or {}) for c in chunks[:-1])
        extra = chunks[-1].model_extra["rag"]
        assert extra["question"] == q  # not another client's answer
        if extra["withdrawn"]:  # the draft streamed, then its refusal
            assert text.endswith(extra["answer"] + " (withdrawn: the sources do not support the draft above)")
        else:  # the final text may carry markers rag added for sentences the model left uncited
            assert unmarked(text) == unmarked(extra["answer"])
        assert all(set(c) == CITATION_KEYS for c in extra["citations"])


def test_a_client_leaving_mid_stream_frees_the_llm_and_the_cli_asks_and_chats_through_the_server(
        served: Served) -> None:
    body = {"model": "rag:default", "stream": True, "messages": [{"role": "user", "content": "Describe fungus gnats."}]}
    with served.http() as http:
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            for line in response.iter_lines():
                if '"content": "' in line and '"content": ""' not in line:
                    break  # the first token: leave
    out = cli(served.home, "ask", "How much sun do cacti want?", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["question"] == "How much sun do cacti want?" and "query" not in data
    assert all(set(c) == CITATION_KEYS for c in data["citations"])
    # what --explain prints about retrieval travels too (so it prints the same through the server)
    assert any(line.startswith("route detail:") for line in data["explain"]), data["explain"]
    assert not served.engine.answering.locked()
    chat = cli(served.home, "chat", "-c", "default", input="What do spider mites leave?\n/sources\n/quit\n")
    assert chat.exit_code == 0, chat.output
    assert "through rag serve" in chat.output and "[1] " in chat.output


# what a served command must not import: model code, the LLM client and server, the store, the answer stack
HEAVY_MODULES = ("torch", "sentence_transformers", "transformers", "openai", "llama_cpp", "qdrant_client",
                 "rag.core.llm", "rag.core.embed", "rag.query.answer", "ingest.pipeline")


@pytest.mark.parametrize("command", [["ask", "How much sun do cacti want?"],
                                     ["ask", "How much sun do cacti want?", "--json"],
                                     ["chat", "-c", "default"]], ids=["ask", "ask-json", "chat"])
def test_a_served_ask_or_chat_turn_loads_no_model_and_starts_no_llm(served: Served, command: list[str]) -> None:
    """Warm answers: with `rag serve` running, the command process imports none of the models or the LLM client."""
    code = ("import sys\nfrom rag.cli.main import main\nmain(sys.argv[1:], standalone_mode=False)\n"
            f"print('LOADED', [m for m in {HEAVY_MODULES!r} if m in sys.modules], file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code, "--home", str(served.home), *command],
                          input="What do spider mites leave?\n/quit\n", capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "LOADED []" in proc.stderr, proc.stderr[-2000:]
    assert "through rag serve" in proc.stderr if command[0] == "chat" else proc.stdout.strip()


# -- (3) ingest over HTTP, alongside searches -------------------------------------------------


def test_ingest_paths_are_limited_to_the_allowed_folders(served: Served, tmp_path: Path) -> None:
    outside = write(tmp_path / "secret.txt", "not for the server")
    with served.http() as http:
        refused = http.post("/v1/ingest", json={"paths": [str(outside)]})
        escape = http.post("/v1/ingest", json={"paths": [str(served.root / ".." / "home")]})
        relative = http.post("/v1/ingest", json={"paths": ["docs"]})
        missing = http.post("/v1/ingest", json={"paths": [str(served.root / "nothing-here")]})
        no_job = http.get("/v1/ingest/abc")
    assert refused.status_code == 403 and "ingest_roots" in refused.json()["error"]["message"]
    assert escape.status_code == 403
    assert relative.status_code == 400 and missing.status_code == 400 and no_job.status_code == 404


N_BATCH = 80


def test_searches_during_an_ingest_succeed_and_nothing_is_lost(served: Served) -> None:
    batch = served.root / "batch"
    filler = " ".join(f"Leaf note {j}: the leaves stay glossy with weekly misting and monthly feeding." for j in range(12))
    for i in range(N_BATCH):
        write(batch / f"plant{i:03d}.txt", f"Plant number {i} is the zylophant{i:03d} variety. It likes bright "
                                            f"indirect light and water every {i % 7 + 3} days.\n\n{filler}\n")
    with served.http() as http:
        before = http.get("/v1/collections").json()["collections"][0]["chunks"]
        job = http.post("/v1/ingest", json={"paths": [str(batch)], "collection": "default"})
        assert job.status_code == 202 and job.json()["state"] in ("queued", "running")
        statuses: list[int] = []
        during = 0  # searches answered while the ingest was still running
        while True:
            reply = http.post("/v1/search", json={"query": "fungus gnats", "k": 3})
            statuses.append(reply.status_code)
            state = http.get(f"/v1/ingest/{job.json()['id']}").json()
            if state["state"] in ("done", "failed"):
                break
            during += state["state"] == "running"
            assert reply.json()["results"][0]["source"].endswith("pests.html")  # the committed state
        assert state["state"] == "done", state
        assert set(statuses) == {200} and during >= 2, (statuses, during)
        assert state["report"]["files_added"] == N_BATCH and state["files_done"] == N_BATCH
        after = http.get("/v1/collections").json()["collections"][0]["chunks"]
        assert after == state["report"]["chunks_total"] == before + state["report"]["chunks_embedded"]
        for i in (0, 17, N_BATCH - 1):  # every file is there, and filters see the new sources
            found = http.post("/v1/search", json={"query": f"zylophant{i:03d}", "k": 1, "retriever": "bm25",
                                                  "filters": [f"source=plant{i:03d}.txt"]}).json()
            assert found["results"][0]["source"].endswith(f"plant{i:03d}.txt")
        assert any(j["id"] == state["id"] for j in http.get("/v1/ingest").json()["jobs"])


def test_cli_ingest_and_status_go_through_the_server(served: Served, tmp_path: Path) -> None:
    docs = tmp_path / "mine"
    write(docs / "orchid.md", "# Orchids\n\nWater orchids once a week by soaking the bark.\n")
    out = cli(served.home, "ingest", str(docs), "--collection", "orchids", "--json")
    assert out.exit_code == 0, out.output  # the CLI's local token lets it ingest its own paths
    report = json.loads(out.stdout)
    assert report["collection"] == "orchids" and report["files_added"] == 1
    status = json.loads(cli(served.home, "status", "--json").stdout)
    orchids = next(c for c in status["collections"] if c["name"] == "orchids")
    assert orchids["chunks"] == report["chunks_total"] and "rag serve" in orchids["store"]
    assert "rag:orchids" in [m.id for m in openai_client(served).models.list()]


# -- (5) MCP over stdio -------------------------------------------------------------------------


def test_mcp_tools_over_stdio_use_the_resident_server(served: Served) -> None:
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    params = StdioServerParameters(command=sys.executable, args=["-m", "rag.cli", "--home", str(served.home), "mcp"],
                                   env={**env, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)})

    async def session_run() -> dict[str, Any]:
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = sorted(t.name for t in (await session.list_tools()).tools)
                found = await session.call_tool("search", {"query": "fungus gnats in wet soil", "k": 2})
                listed = await session.call_tool("list_collections", {})
                asked = await session.call_tool("ask", {"question": "What do spider mites leave?",
                                                        "collection": "default"})
                missing = await session.call_tool("search", {"query": "x", "collection": "nope"})
                return {"tools": tools, "search": found, "list": listed, "ask": asked, "missing": missing}

    out = anyio.run(session_run)
    assert out["tools"] == ["ask", "list_collections", "search"]
    search = out["search"].structuredContent
    assert not out["search"].isError and search["results"][0]["source"].endswith("pests.html")
    assert {"source", "page", "start", "end", "text", "chunk_id"} <= set(search["results"][0])
    names = [c["name"] for c in out["list"].structuredContent["result"]]
    assert "default" in names
    ask = out["ask"].structuredContent
    assert not out["ask"].isError and ask["answer"].strip() and len(ask["sources"]) == 3
    assert all(set(c) == CITATION_KEYS for c in ask["citations"])
    assert out["missing"].isError and "does not exist" in out["missing"].content[0].text
    # the tools ran in this process's server: `rag mcp` on its own could not open the store this process holds


# -- (6) the load benchmark -----------------------------------------------------------------------


def test_serve_load_benchmark_runs_and_reports_ratios(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(REPO))
    from benchmarks.serve_load import main, percentile

    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5 and percentile([5.0], 95) == 5.0 and percentile([], 50) == 0.0
    assert main(["default", "--home", str(served.home), "--seconds", "0.5", "--clients", "1,2",
                 "--baseline-seconds", "0.5", "--k", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [s["clients"] for s in result["steps"]] == [1, 2] and result["errors"] == 0
    assert all(s["requests"] > 0 and s["p95_ms"] >= s["p50_ms"] > 0 for s in result["steps"])
    assert result["engine_search_p50_ms"] > 0 and result["ratio_server_p50_1_client_over_engine_p50"] > 0
    assert "ratio_p95_2_clients_over_p50_1_client" in result
    assert all(s["server_cpu_cores"] >= 0 for s in result["steps"]) and result["model_thread_items"] > 0
    from benchmarks.serve_load import cpu_bound_ratio, run_chats

    # 10 req/s on half a core at one client: 2 cores serve at most 40 req/s, so 8 clients wait >= 200 ms (2x 100 ms)
    assert cpu_bound_ratio({"throughput_rps": 10.0, "server_cpu_cores": 0.5, "p50_ms": 100.0}, 8, cores=2) == 2.0

    chats = run_chats(served.url, "default", ["What do spider mites leave?"])
    assert (chats["complete"], chats["not_mixed"], chats["errors"]) == (1, 1, [])


def test_mcp_without_a_server_loads_the_engine_itself(tmp_path: Path) -> None:
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    from ingest.pipeline import ingest

    home, docs = tmp_path / "home", tmp_path / "docs"
    write(docs / "cacti.md", "# Light\n\nMost cacti want four to six hours of direct sun.\n")
    ingest([str(docs)], Settings.model_validate(SETTINGS), home)
    write(home / "config.toml", "[rerank]\nenabled = false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    params = StdioServerParameters(command=sys.executable, args=["-m", "rag.cli", "--home", str(home), "mcp"],
                                   env={**env, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)})

    async def session_run() -> Any:
        async with stdio_client(params) as (read, write_):
            async with ClientSession(read, write_) as session:
                await session.initialize()
                return (await session.call_tool("search", {"query": "direct sun", "k": 1}),
                        await session.call_tool("list_collections", {}))

    found, listed = anyio.run(session_run)
    assert not found.isError and found.structuredContent["results"][0]["source"].endswith("cacti.md")
    assert [c["name"] for c in listed.structuredContent["result"]] == ["default"]
