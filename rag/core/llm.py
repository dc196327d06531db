"""LLM access through the openai client: a configured endpoint, or an embedded llama.cpp server.

With ``[llm] base_url`` empty, ``LlmClient`` starts ``python -m llama_cpp.server`` on a free
loopback port the first time a completion is needed and stops it at exit. Every openai
failure becomes an ``LlmError`` with one line naming the endpoint and the setting to change.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

import httpx
import openai

from rag.core.config import LlmConfig
from rag.core.errors import RagError
from rag.core.llm_models import model_alias, resolve_gguf
from rag.core.redact import mask_secrets

__all__ = ["Llm", "LlmClient", "LlmError", "LocalServer"]

Messages = list[dict[str, Any]]
log = logging.getLogger(__name__)


class LlmError(RagError):
    """The LLM endpoint could not be reached or refused a request (message: one line, what to set)."""


class Llm(Protocol):
    """What the query stages and evaluations use of a chat model (``LlmClient`` is the one in use).

    Tests wrap the real client to inject a reply; anything with these methods will do.
    """

    @property
    def endpoint(self) -> str:
        """A human description of the endpoint, for messages."""
        ...

    def chat(self, messages: Messages, *, max_tokens: int | None = None, temperature: float | None = None,
             stop: list[str] | None = None, json_mode: bool = False) -> str:  # fmt: skip
        """The assistant's full answer to ``messages``."""
        ...

    def stream(self, messages: Messages, *, max_tokens: int | None = None, temperature: float | None = None,
               stop: list[str] | None = None, json_mode: bool = False) -> Iterator[str]:  # fmt: skip
        """The answer's text deltas as they arrive."""
        ...

    def yes_probability(self, prompt: str | Messages) -> float:
        """P(Yes) / (P(Yes) + P(No)) for the next token after ``prompt``, for a yes/no judge."""
        ...

    def close(self) -> None:
        """Release the connection (and stop a local server)."""
        ...


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _death_signal_hook() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGKILL the child when this thread dies (PR_SET_PDEATHSIG).

    libc is resolved here, in the parent: the hook runs between fork and exec, where
    dlopen could deadlock. The signal fires when the *thread* that forked exits, so it
    is only used from the main thread.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook


def _log_tail(path: Path, lines: int = 3) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 8192))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    kept = [ln.strip() for ln in text.splitlines() if ln.strip().strip("^~")][-lines:]
    return " | ".join(kept)


@dataclass(eq=False)
class LocalServer:
    """A llama.cpp OpenAI-compatible server in a child process, stopped at exit or on ``close()``.

    It runs in its own process group (the whole group is stopped), and on Linux it also
    gets SIGKILL if the process that started it dies, so a killed CLI leaves nothing behind
    (SIGTERM would let uvicorn finish the request in flight first: up to a long prompt pass
    for nobody; the server keeps no state worth a graceful exit).
    """

    model_path: Path
    alias: str
    log_path: Path
    threads: int = 2
    context_tokens: int = 4096
    startup_timeout_s: float = 120.0
    host: str = "127.0.0.1"
    port: int | None = field(default=None, init=False)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (``http://127.0.0.1:PORT/v1``); starts the server if needed."""
        self.start()
        return f"http://{self.host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the server and wait until ``GET /v1/models`` answers; no-op when already running."""
        with self._lock:
            if self.running:
                return
            for attempt in range(3):  # a free port can be taken between probe and bind: retry
                self._spawn()
                if self._wait_ready(last_try=attempt == 2):
                    return

    def _spawn(self) -> None:
        self.port = _free_port(self.host)
        cmd = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(self.model_path),
            "--host", self.host, "--port", str(self.port), "--n_threads", str(self.threads),
            "--n_ctx", str(self.context_tokens), "--model_alias", self.alias,
        ]  # fmt: skip
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log_path.exists() and self.log_path.stat().st_size > 20 * 1024 * 1024:
            os.replace(self.log_path, self.log_path.with_suffix(".log.1"))
        with open(self.log_path, "ab") as log_fh:
            log_fh.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
            log_fh.flush()
            self.process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_death_signal_hook(),
            )  # fmt: skip
        atexit.register(self.close)
        log.debug("started llama.cpp server pid %s on port %s", self.process.pid, self.port)

    def exit_note(self, wait_s: float = 0.0) -> str:
        """Why the server is gone, for an error message; empty while it runs (or was never started).

        ``wait_s``: how long to give a dying process to be reaped. A broken connection can reach the
        client before the kernel reports the server's exit, so callers that saw one wait a moment.
        """
        if self.process is None:
            return ""
        if wait_s > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=wait_s)
        if self.process.poll() is None:
            return ""
        code = self.process.returncode
        how = f"exit code {code}"
        if code < 0:
            with contextlib.suppress(ValueError):
                how = f"signal {signal.Signals(-code).name}"
        note = f"the local llama.cpp server stopped ({how}; log {self.log_path})"
        if code in (-signal.SIGSEGV, -signal.SIGILL, -signal.SIGBUS):
            note += ("; a llama-cpp-python built for instructions this CPU or VM does not allow crashes like this "
                     "(e.g. Intel AMX in a VM): reinstall it as the README's Troubleshooting says")
        return note

    def _wait_ready(self, *, last_try: bool) -> bool:
        assert self.process is not None
        url = f"http://{self.host}:{self.port}/v1/models"
        deadline = time.monotonic() + self.startup_timeout_s
        started = time.monotonic()
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                tail = _log_tail(self.log_path)
                if not last_try and "address already in use" in tail.lower():
                    return False
                raise LlmError(
                    f"the local llama.cpp server exited with code {code} while loading {self.model_path.name} "
                    f"(log {self.log_path}): {tail or 'no output'}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        log.info("llama.cpp server ready in %.1f s on port %s", time.monotonic() - started, self.port)
                        return True
            except OSError:
                pass
            time.sleep(0.1)
        tail = _log_tail(self.log_path)
        self.close()
        raise LlmError(
            f"the local llama.cpp server did not become ready within {self.startup_timeout_s:g} s "
            f"(log {self.log_path}): {tail or 'no output'}; raise [llm] timeout_s or use a smaller [llm] local_model"
        )

    def close(self) -> None:
        """Stop the server's process group: SIGTERM, then SIGKILL after 5 s. Safe to call twice."""
        proc, self.process = self.process, None
        atexit.unregister(self.close)
        if proc is None or proc.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _one_line(text: str, limit: int = 200) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


class LlmClient:
    """Chat completions from ``[llm]``: the configured ``base_url``, else a lazily started local server."""

    def __init__(self, config: LlmConfig, home: Path, environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.home = home
        env = os.environ if environ is None else environ
        self._api_key = env.get(config.api_key_env) or "unused"
        self._server: LocalServer | None = None
        self._client: openai.OpenAI | None = None
        self._model = config.model
        self._lock = threading.Lock()

    @property
    def is_local(self) -> bool:
        """True when completions come from the embedded llama.cpp server."""
        return not self.config.base_url

    @property
    def endpoint(self) -> str:
        """A human description of the endpoint, for messages (never includes the key)."""
        if not self.is_local:
            return mask_secrets(self.config.base_url)
        name = model_alias(self.config.local_model)
        if self._server is not None and self._server.port is not None:
            return f"http://{self._server.host}:{self._server.port}/v1 (local llama.cpp server, {name})"
        return f"local llama.cpp server ({name}, not started)"

    def _openai(self) -> openai.OpenAI:
        with self._lock:
            if self._client is not None and self._server is not None and not self._server.running:
                log.warning("%s; starting it again", self._server.exit_note())
                self._client.close()  # its base_url names the dead server's port
                self._client = None
            if self._client is None:
                cfg = self.config
                if self.is_local:
                    path = resolve_gguf(cfg.local_model, self.home)
                    alias = model_alias(cfg.local_model)
                    self._server = self._server or LocalServer(
                        path, alias, self.home / "logs" / "llm-server.log", threads=cfg.threads,
                        context_tokens=cfg.context_tokens, startup_timeout_s=max(cfg.timeout_s, 60.0),
                    )  # fmt: skip
                    base_url, self._model = self._server.base_url, cfg.model or alias
                else:
                    base_url = cfg.base_url
                timeout = openai.Timeout(cfg.timeout_s, connect=min(cfg.timeout_s, 10.0))
                self._client = openai.OpenAI(
                    base_url=base_url, api_key=self._api_key, timeout=timeout,
                    max_retries=0 if self.is_local else 1,
                )  # fmt: skip
            if not self._model:
                self._model = self._first_model(self._client)
            return self._client

    def _first_model(self, client: openai.OpenAI) -> str:
        try:
            ids = [m.id for m in client.models.list()]
        except openai.OpenAIError as exc:
            raise self._error(exc) from None
        if not ids:
            raise LlmError(f"the LLM endpoint {self.endpoint} lists no models; set [llm] model (RAG_LLM_MODEL)")
        return ids[0]

    def _params(self, messages: Messages, max_tokens: int | None, temperature: float | None,
                stop: list[str] | None, json_mode: bool) -> dict[str, Any]:  # fmt: skip
        params: dict[str, Any] = {
            "model": self._model, "messages": messages,
            "max_tokens": max_tokens or self.config.max_tokens,
            "temperature": self.config.temperature if temperature is None else temperature,
        }  # fmt: skip
        if stop:
            params["stop"] = stop
        if json_mode:
            params["response_format"] = {"type": "json_object"}
        return params

    def chat(self, messages: Messages, *, max_tokens: int | None = None, temperature: float | None = None,
             stop: list[str] | None = None, json_mode: bool = False) -> str:  # fmt: skip
        """The assistant's full answer to ``messages`` (OpenAI chat format)."""
        client = self._openai()
        try:
            resp = client.chat.completions.create(**self._params(messages, max_tokens, temperature, stop, json_mode))
        except openai.OpenAIError as exc:
            raise self._error(exc) from None
        return (resp.choices[0].message.content or "") if resp.choices else ""

    def stream(self, messages: Messages, *, max_tokens: int | None = None, temperature: float | None = None,
               stop: list[str] | None = None, json_mode: bool = False) -> Iterator[str]:  # fmt: skip
        """Yield the answer's text deltas as they arrive (empty and usage-only chunks skipped)."""
        client = self._openai()
        params = self._params(messages, max_tokens, temperature, stop, json_mode)
        try:
            with client.chat.completions.create(stream=True, **params) as chunks:
                for chunk in chunks:
                    if not chunk.choices:
                        continue
                    delta = chunk.choices[0].delta.content
                    if delta:
                        yield delta
        except (openai.OpenAIError, httpx.HTTPError) as exc:  # httpx: the connection broke mid-stream
            raise self._error(exc) from None

    def first_token_logprobs(self, messages: Messages) -> list[tuple[str, float]] | None:
        """(token, logprob) of the top 20 candidates for the first answer token (temperature 0).

        None when the endpoint returns no log-probabilities at all.
        """
        client = self._openai()
        try:
            resp = client.chat.completions.create(
                model=self._model, messages=messages, max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=20,
            )  # fmt: skip
        except openai.OpenAIError as exc:
            raise self._error(exc) from None
        choice = resp.choices[0] if resp.choices else None
        content = choice.logprobs.content if choice is not None and choice.logprobs else None
        if not content:
            return None
        return [(top.token, float(top.logprob)) for top in content[0].top_logprobs or []]

    def yes_probability(self, prompt: str | Messages) -> float:
        """P("Yes") / (P("Yes") + P("No")) for the next token after ``prompt``, for a yes/no judge.

        Reads the top log-probabilities of one generated token; 0.5 when neither word is among them.
        """
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        tops = self.first_token_logprobs(messages)
        if tops is None:
            raise LlmError(f"the LLM endpoint {self.endpoint} returned no logprobs; it cannot be used as a yes/no judge")
        p = yes_share(tops)
        return 0.5 if p is None else p

    def _error(self, exc: openai.OpenAIError | httpx.HTTPError) -> LlmError:
        """One clear line for an openai exception: what failed, at which endpoint, what to set."""
        where, cfg = self.endpoint, self.config
        broken = isinstance(exc, (httpx.HTTPError, openai.APIConnectionError))  # includes APITimeoutError
        died = self._server.exit_note(wait_s=2.0 if broken else 0.0) if self._server is not None else ""
        if died:  # the local server crashed: that is the news, not the broken connection
            msg = f"{died}; the next request starts it again"
        elif isinstance(exc, httpx.HTTPError):
            msg = f"the LLM endpoint {where} broke off its answer: {_one_line(str(exc))}; check the endpoint's log"
        elif isinstance(exc, openai.APITimeoutError):
            msg = (f"the LLM endpoint {where} did not answer within {cfg.timeout_s:g} s; "
                   "raise [llm] timeout_s or use a smaller model")  # fmt: skip
        elif isinstance(exc, openai.APIConnectionError):
            reason, cause = "connection failed", exc.__cause__
            while cause is not None:
                text = str(cause).lower()
                if isinstance(cause, ConnectionRefusedError) or "refused" in text:
                    reason = "connection refused"
                    break
                if isinstance(cause, socket.gaierror) or "name or service" in text or "nodename" in text:
                    reason = "host name not found"
                    break
                cause = cause.__cause__ or cause.__context__
            msg = (f"cannot reach the LLM endpoint {where}: {reason}; "
                   "check that it runs or set [llm] base_url (RAG_LLM_BASE_URL)")  # fmt: skip
        elif isinstance(exc, openai.APIStatusError):
            status, body = exc.status_code, _one_line(_body_text(exc))
            if status in (401, 403):
                unset = "" if self._api_key != "unused" else f"; {cfg.api_key_env} is not set"
                msg = (f"the LLM endpoint {where} rejected the API key (HTTP {status}); "
                       f"set the env var named by [llm] api_key_env ({cfg.api_key_env}){unset}")  # fmt: skip
            elif status == 404 and "model" in body.lower():
                msg = (f"the LLM endpoint {where} has no model {self._model!r} (HTTP 404); "
                       "set [llm] model (RAG_LLM_MODEL) to one it serves")  # fmt: skip
            elif status == 404:
                msg = f"the LLM endpoint {where} answered HTTP 404 ({body}); check that [llm] base_url ends with /v1"
            elif status == 400 and "context" in body.lower():
                msg = f"the LLM endpoint {where} rejected the request as too long (HTTP 400: {body}); raise [llm] context_tokens"
            else:
                msg = f"the LLM endpoint {where} answered HTTP {status}: {body or exc.message}"
        else:
            msg = f"the LLM endpoint {where} failed: {_one_line(str(exc))}"
        return LlmError(mask_secrets(msg, [self._api_key] if self._api_key != "unused" else []))

    def close(self) -> None:
        """Close the HTTP client and stop the local server, if one was started."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._server is not None:
            self._server.close()

    def __enter__(self) -> LlmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def yes_share(tops: Sequence[tuple[str, float]]) -> float | None:
    """P(yes) / (P(yes) + P(no)) over (token, logprob) candidates; None when neither word is among them."""
    mass = {"yes": 0.0, "no": 0.0}
    for token, logprob in tops:
        word = token.strip().lower()
        if word in mass:
            mass[word] += math.exp(logprob)
    total = mass["yes"] + mass["no"]
    return mass["yes"] / total if total > 0 else None


def _body_text(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        return str(err.get("message", err)) if isinstance(err, dict) else str(err)
    if body is not None:
        return str(body)
    try:
        return exc.response.text
    except Exception:  # a streamed response whose body was not read
        return ""
