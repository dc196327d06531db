"""LLM access: the real llama.cpp server with the packaged SmolLM2, and real failing HTTP endpoints."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from rag.core.config import LlmConfig
from rag.core.errors import ModelLoadError, RagError
from rag.core.llm import LlmClient, LlmError
from rag.core.llm_models import REGISTRY, SplitModel, register, resolve_gguf

SECRET = "sk-test-do-not-leak-1234567890"
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


@pytest.fixture(scope="module")
def local_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlmClient]:
    """One real llama.cpp server with SmolLM2 for the whole module."""
    home = tmp_path_factory.mktemp("llm-home")
    cfg = LlmConfig(local_model="smollm2-135m-instruct", threads=1, context_tokens=2048, max_tokens=32)
    client = LlmClient(cfg, home, environ={})
    yield client
    client.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); treat it as gone
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def test_local_server_chat_and_stream(local_llm: LlmClient) -> None:
    assert "not started" in local_llm.endpoint
    answer = local_llm.chat(QUESTION)
    assert answer.strip()
    assert local_llm.endpoint.startswith("http://127.0.0.1:")
    assert "smollm2-135m-instruct" in local_llm.endpoint

    deltas = list(local_llm.stream([{"role": "user", "content": "Count from 1 to 10, separated by commas."}]))
    assert len(deltas) >= 3 and all(deltas)
    full = local_llm.chat([{"role": "user", "content": "Count from 1 to 10, separated by commas."}])
    assert "".join(deltas) == full  # temperature 0: the stream joins to the same text

    p = local_llm.yes_probability("Is Paris in France? Answer Yes or No.")
    assert 0.0 <= p <= 1.0


def test_server_dying_mid_answer_is_one_line_and_the_next_request_restarts_it(tmp_path: Path) -> None:
    """A llama.cpp build that crashes on this CPU (SIGSEGV from its first matrix product) is reported as such."""
    cfg = LlmConfig(local_model="smollm2-135m-instruct", threads=1, context_tokens=1024, max_tokens=300)
    with LlmClient(cfg, tmp_path, environ={}) as client:
        stream = client.stream([{"role": "user", "content": "Write a long story about a dragon."}])
        assert next(stream)
        server = client._server
        assert server is not None and server.process is not None
        first_pid = server.process.pid
        os.kill(first_pid, signal.SIGSEGV)
        with pytest.raises(LlmError) as info:
            list(stream)
        msg = str(info.value)
        assert "\n" not in msg
        assert "the local llama.cpp server stopped (signal SIGSEGV; log " in msg and "llm-server.log" in msg
        assert "Troubleshooting" in msg and "starts it again" in msg
        assert client.chat(QUESTION, max_tokens=4)  # started again, on a new port
        assert server.process is not None and server.process.pid != first_pid


def test_local_server_stops_on_close(tmp_path: Path) -> None:
    cfg = LlmConfig(local_model="smollm2-135m-instruct", threads=1, context_tokens=512)
    with LlmClient(cfg, tmp_path, environ={}) as client:
        assert client.chat(QUESTION, max_tokens=4)
        server = client._server
        assert server is not None and server.process is not None
        pid = server.process.pid
        assert _pid_alive(pid)
    assert not _pid_alive(pid)
    assert not server.running
    log = (tmp_path / "logs" / "llm-server.log").read_text()
    assert "llama_cpp.server" in log


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _remote(url: str, **kw: object) -> LlmClient:
    cfg = LlmConfig(base_url=url, model="m", api_key_env="RAG_TEST_KEY", **kw)  # type: ignore[arg-type]
    return LlmClient(cfg, Path("/nonexistent"), environ={"RAG_TEST_KEY": SECRET})


def test_endpoint_down_is_one_clear_line() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    start = time.monotonic()
    with pytest.raises(LlmError) as info:
        _remote(url).chat(QUESTION)
    assert time.monotonic() - start < 5
    msg = str(info.value)
    assert "\n" not in msg
    assert f"cannot reach the LLM endpoint {url}: connection refused" in msg
    assert "[llm] base_url" in msg and "RAG_LLM_BASE_URL" in msg
    assert isinstance(info.value, RagError)


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 500
    body = {"error": {"message": "internal kaboom", "type": "server_error"}}
    delay = 0.0

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(self.delay)
        data = json.dumps(self.body).encode()
        try:
            self.send_response(self.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (timeout test)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def fake_endpoint() -> Iterator[Callable[..., str]]:
    """Start a real HTTP server on a loopback port answering with a fixed status/body/delay."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(status: int, body: dict[str, object], delay: float = 0.0) -> str:
        handler = type("H", (_Handler,), {"status": status, "body": body, "delay": delay})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/v1"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def test_http_500_names_status_and_body(fake_endpoint: Callable[..., str]) -> None:
    url = fake_endpoint(500, {"error": {"message": f"internal kaboom (key {SECRET})"}})
    with pytest.raises(LlmError) as info:
        _remote(url).chat(QUESTION)
    msg = str(info.value)
    assert "HTTP 500" in msg and "internal kaboom" in msg and url in msg
    assert SECRET not in msg and "\n" not in msg


def test_http_401_names_the_key_setting(fake_endpoint: Callable[..., str]) -> None:
    url = fake_endpoint(401, {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})
    with pytest.raises(LlmError) as info:
        list(_remote(url).stream(QUESTION))
    msg = str(info.value)
    assert "rejected the API key (HTTP 401)" in msg
    assert "[llm] api_key_env (RAG_TEST_KEY)" in msg
    assert SECRET not in msg and "\n" not in msg


def test_http_404_model_names_the_model_setting(fake_endpoint: Callable[..., str]) -> None:
    url = fake_endpoint(404, {"error": {"message": "The model `m` does not exist"}})
    with pytest.raises(LlmError, match=r"has no model 'm' \(HTTP 404\); set \[llm\] model"):
        _remote(url).chat(QUESTION)


def test_timeout_is_reported(fake_endpoint: Callable[..., str]) -> None:
    url = fake_endpoint(200, {}, delay=4.0)
    start = time.monotonic()
    with pytest.raises(LlmError) as info:
        _remote(url, timeout_s=1).chat(QUESTION)
    assert time.monotonic() - start < 4
    msg = str(info.value)
    assert "did not answer within 1 s" in msg and "[llm] timeout_s" in msg and url in msg


def test_resolve_packaged_smollm2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_MODEL_CACHE", str(tmp_path / "models"))  # the shared model cache
    path = resolve_gguf("smollm2-135m-instruct", tmp_path)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    marker = tmp_path / "models" / ".verified" / "smollm2-135m-instruct.json"
    assert json.loads(marker.read_text())["size"] == path.stat().st_size
    start = time.monotonic()
    assert resolve_gguf("smollm2-135m-instruct", tmp_path) == path  # cached: no re-hash
    assert time.monotonic() - start < 0.1


def test_resolve_gguf_path_and_unknown(tmp_path: Path) -> None:
    gguf = tmp_path / "mine.gguf"
    with pytest.raises(ModelLoadError, match="does not exist.*local_model"):
        resolve_gguf(str(gguf), tmp_path)
    gguf.write_bytes(b"GGUF")
    assert resolve_gguf(str(gguf), tmp_path) == gguf.resolve()
    with pytest.raises(ModelLoadError, match="unknown local model 'nope'.*smollm2-135m-instruct"):
        resolve_gguf("nope", tmp_path)


def test_missing_part_packages_are_named(tmp_path: Path) -> None:
    fake = SplitModel(
        name="fake-split-model",
        packages=("rag-test-absent-part1", "rag-test-absent-part2"),
        size=10,
        sha256="0" * 64,
    )
    register(fake)
    try:
        with pytest.raises(ModelLoadError) as info:
            resolve_gguf("fake-split-model", tmp_path)
    finally:
        REGISTRY.pop("fake-split-model")
    msg = str(info.value)
    assert "rag-test-absent-part1 rag-test-absent-part2" in msg
    assert "pip install rag-test-absent-part1 rag-test-absent-part2" in msg
    assert not (tmp_path / "models" / "fake-split-model.gguf").exists()


def test_split_model_is_assembled_and_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real assembly path on a tiny split model built from two temp packages."""
    monkeypatch.setenv("RAG_MODEL_CACHE", str(tmp_path / "home" / "models"))  # the shared model cache
    pkgs = tmp_path / "site"
    data = [b"hello ", b"world"]
    for i, chunk in enumerate(data, 1):
        mod = pkgs / f"rag_test_part{i}"
        (mod / "data").mkdir(parents=True)
        (mod / "data" / "p.bin").write_bytes(chunk)
        (mod / "__init__.py").write_text(
            "import os\ndef get_part_path():\n    return os.path.join(os.path.dirname(__file__), 'data', 'p.bin')\n"
        )
    joined = b"".join(data)
    good = SplitModel("tiny-split", ("rag-test-part1", "rag-test-part2"), len(joined), hashlib.sha256(joined).hexdigest())
    bad = SplitModel("tiny-bad", good.packages, len(joined), "f" * 64)
    sys.path.insert(0, str(pkgs))
    register(good)
    register(bad)
    try:
        path = resolve_gguf("tiny-split", tmp_path / "home")
        assert path.read_bytes() == joined and path == tmp_path / "home" / "models" / "tiny-split.gguf"
        with pytest.raises(ModelLoadError, match="does not match its checksum.*force-reinstall rag-test-part1"):
            resolve_gguf("tiny-bad", tmp_path / "home")
        assert sorted(p.name for p in (tmp_path / "home" / "models").iterdir()) == [".tiny-bad.gguf.lock", ".tiny-split.gguf.lock", "tiny-split.gguf"]
    finally:
        sys.path.remove(str(pkgs))
        REGISTRY.pop("tiny-split")
        REGISTRY.pop("tiny-bad")
        for name in ("rag_test_part1", "rag_test_part2"):
            sys.modules.pop(name, None)


def test_server_crash_shows_log_tail(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF not really a model")
    client = LlmClient(LlmConfig(local_model=str(bad)), tmp_path / "home", environ={})
    with pytest.raises(LlmError) as info:
        client.chat(QUESTION)
    msg = str(info.value)
    assert "exited with code" in msg and "broken.gguf" in msg and "llm-server.log" in msg
    assert "\n" not in msg
    client.close()


_ORPHAN_SCRIPT = """
import sys, threading, time
from pathlib import Path
from rag.core.config import LlmConfig
from rag.core.llm import LlmClient
client = LlmClient(LlmConfig(local_model="smollm2-135m-instruct", threads=1, context_tokens=4096), Path(sys.argv[1]), environ={})
client.chat([{"role": "user", "content": "hi"}], max_tokens=1)
if sys.argv[2:] == ["busy"]:  # a long generation in flight when the parent dies
    story = [{"role": "user", "content": "Write a very long story about a dragon."}]
    threading.Thread(target=lambda: client.chat(story, max_tokens=3000), daemon=True).start()
    time.sleep(1.0)
print(client._server.process.pid, flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
@pytest.mark.parametrize("state", ["idle", "busy"])
def test_killed_parent_does_not_leave_server_running(tmp_path: Path, state: str) -> None:
    """Also while it generates: an orphan that finished its request first (SIGTERM) ran on for ~26 s."""
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(repo)}
    parent = subprocess.Popen([sys.executable, "-c", _ORPHAN_SCRIPT, str(tmp_path), state], stdout=subprocess.PIPE,
                              env=env)
    try:
        assert parent.stdout is not None
        server_pid = int(parent.stdout.readline())
        assert _pid_alive(server_pid)
    finally:
        parent.kill()  # SIGKILL: no atexit, no cleanup in the parent
        parent.wait()
    deadline = time.monotonic() + 8
    while _pid_alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _pid_alive(server_pid)


def test_credentials_in_the_endpoint_address_and_labelled_tokens_never_reach_a_message() -> None:
    from rag.core.redact import mask_secrets

    cfg = LlmConfig(base_url="http://alice:hunter2-pass@127.0.0.1:9/v1", model="m", timeout_s=5)
    client = LlmClient(cfg, Path("/nonexistent"), environ={})
    with pytest.raises(LlmError) as info:
        client.chat(QUESTION)
    msg = str(info.value)
    assert "cannot reach the LLM endpoint http://***@127.0.0.1:9/v1" in msg and "hunter2" not in msg
    masked = mask_secrets('failed: {"api_key": "sk-abc123"} token=xyz789 at https://u:p4ss@host/v1 key KEY1', ["KEY1"])
    assert masked == 'failed: {"api_key": "***"} token=*** at https://***@host/v1 key ***'
