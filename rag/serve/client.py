"""Finding the running server of a home, and talking to it (the CLI and ``rag mcp`` use this).

``rag serve`` writes ``<home>/serve.json`` (mode 0600: url, pid, a local token) once it listens
and removes it when it stops; a file whose pid is dead, or whose server does not answer, is
ignored. ``RAG_NO_SERVER=1`` makes the CLI work on its own even when a server runs.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx

from rag.core.errors import CollectionNotFoundError, ConfigError, RagError, StoreError

DISCOVERY_FILE = "serve.json"
LOCAL_TOKEN_HEADER = "X-Rag-Local-Token"


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What the discovery file says about a running server."""

    url: str
    pid: int
    local_token: str


def discovery_path(home: Path) -> Path:
    return home / DISCOVERY_FILE


def new_local_token() -> str:
    return secrets.token_urlsafe(32)


def write_discovery(home: Path, url: str, local_token: str) -> Path:
    """Announce a server of ``home`` (atomically; readable by the home's owner only)."""
    home.mkdir(parents=True, exist_ok=True)
    path = discovery_path(home)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"url": url, "pid": os.getpid(), "local_token": local_token, "started": time.time()}, fh)
    os.replace(tmp, path)
    return path


def remove_discovery(home: Path) -> None:
    """Withdraw this process's announcement (another server's file is left alone)."""
    path = discovery_path(home)
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_discovery(home: Path) -> ServerInfo | None:
    """The server announced in ``home``, or None (no file, unreadable, or its process is dead)."""
    try:
        data = json.loads(discovery_path(home).read_text(encoding="utf-8"))
        info = ServerInfo(str(data["url"]), int(data["pid"]), str(data.get("local_token", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if _alive(info.pid) else None


def find_server(home: Path, api_key_env: str = "RAG_API_KEY") -> "ServeClient | None":
    """A client of the running server of ``home``, or None when none runs (or RAG_NO_SERVER is set)."""
    if os.environ.get("RAG_NO_SERVER", "").strip() not in ("", "0"):
        return None
    info = read_discovery(home)
    if info is None:
        return None
    client = ServeClient(info.url, api_key=os.environ.get(api_key_env) or None, local_token=info.local_token)
    try:
        client.health(timeout=2.0)
    except RagError:
        client.close()
        return None
    return client


class ServerError(RagError):
    """The server answered with an error (its message is the server's)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        err = response.json()["error"]
        message = str(err["message"])
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {response.status_code}: {response.text[:200]}"
    if response.status_code == 404:
        raise CollectionNotFoundError(message)
    if response.status_code == 400:
        raise ConfigError(message)
    if response.status_code in (409, 503):
        raise StoreError(message)
    raise ServerError(message, response.status_code)


class ServeClient:
    """A small synchronous client of ``rag serve``; failures raise RagError with the server's message."""

    def __init__(self, url: str, api_key: str | None = None, local_token: str | None = None,
                 timeout: float = 600.0) -> None:
        headers = {}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if local_token:
            headers[LOCAL_TOKEN_HEADER] = local_token
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout, connect=5.0))

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RagError(f"cannot reach rag serve at {self.url}: {type(exc).__name__}: {exc}; "
                           "is it still running? (RAG_NO_SERVER=1 works without it)") from None
        _raise_for(response)
        return response.json()

    def health(self, timeout: float | None = None) -> dict[str, Any]:
        """``GET /healthz``."""
        return self._call("GET", "/healthz", **({"timeout": timeout} if timeout else {}))

    def collections(self) -> list[dict[str, Any]]:
        """``GET /v1/collections``."""
        return list(self._call("GET", "/v1/collections")["collections"])

    def search(self, query: str, collection: str = "default", k: int = 5, retriever: str | None = None,
               rerank: bool | None = None, filters: list[str] | None = None) -> dict[str, Any]:
        """``POST /v1/search``: the ``rag search --json`` shape."""
        body = {"query": query, "collection": collection, "k": k, "retriever": retriever, "rerank": rerank,
                "filters": list(filters or [])}
        return dict(self._call("POST", "/v1/search", json=body))

    def chat(self, messages: list[dict[str, str]], collection: str | None = None,
             options: dict[str, Any] | None = None, on_token: Callable[[str], None] | None = None) -> dict[str, Any]:
        """A streamed chat completion; tokens go to ``on_token``; returns the ``rag`` extra of the last chunk."""
        body = {"model": "rag" if collection is None else f"rag:{collection}", "messages": messages, "stream": True,
                "rag": {k: v for k, v in (options or {}).items() if v is not None}}
        extra: dict[str, Any] | None = None
        try:
            with self._http.stream("POST", "/v1/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for(response)
                for data in _events(response.iter_lines()):
                    if "error" in data:
                        raise ServerError(str(data["error"].get("message")), int(data["error"].get("code", 500)))
                    for choice in data.get("choices") or []:
                        delta = (choice.get("delta") or {}).get("content")
                        if delta and on_token is not None:
                            on_token(delta)
                    if "rag" in data:
                        extra = data["rag"]
        except httpx.HTTPError as exc:
            raise RagError(f"lost rag serve at {self.url} mid-answer: {type(exc).__name__}: {exc}") from None
        if extra is None:
            raise RagError("rag serve ended the answer without its citations; see the server's log")
        return extra

    def ingest(self, paths: list[str], collection: str = "default") -> dict[str, Any]:
        """``POST /v1/ingest``: starts a background ingest; returns the job."""
        return dict(self._call("POST", "/v1/ingest", json={"paths": paths, "collection": collection}))

    def job(self, job_id: str) -> dict[str, Any]:
        """``GET /v1/ingest/{id}``."""
        return dict(self._call("GET", f"/v1/ingest/{job_id}"))

    def wait_job(self, job_id: str, on_progress: Callable[[dict[str, Any]], None] | None = None,
                 poll_s: float = 0.3) -> dict[str, Any]:
        """Poll a job until it is done or failed."""
        while True:
            job = self.job(job_id)
            if on_progress is not None:
                on_progress(job)
            if job["state"] in ("done", "failed"):
                return job
            time.sleep(poll_s)


def _events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        yield json.loads(payload)
