"""The HTTP routes of ``rag serve`` over one :class:`~rag.serve.engine.Engine`.

Every route answers JSON; a failure is ``{"error": {"message", "type", "code"}}`` with its status
code, never a traceback. An API key, when one is set, is checked on every route (constant-time
comparison); the key is never logged.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import threading
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.core.errors import CollectionNotFoundError, ConfigError, RagError, StoreError, StoreLockedError
from rag.core.llm import LlmError
from rag.query.retrieve import parse_filters
from rag.serve.engine import AnswerOptions, Busy, Engine, Forbidden
from rag.serve.openai_api import (
    ChatRequest,
    IngestRequest,
    ModelNotFound,
    SearchRequest,
    chunk,
    completion,
    completion_id,
    error_body,
    model_list,
)

log = logging.getLogger("rag.serve")

LOCAL_TOKEN_HEADER = "x-rag-local-token"
WITHDRAWN_NOTE = " (withdrawn: the sources do not support the draft above)"


# Expected failures and their HTTP status and error type; the first match wins.
_STATUS: tuple[tuple[type[RagError], int, str], ...] = (
    (Forbidden, 403, "forbidden"),
    (ModelNotFound, 404, "model_not_found"),
    (CollectionNotFoundError, 404, "not_found"),
    (ConfigError, 400, "invalid_request_error"),
    (StoreLockedError, 409, "busy"),
    (Busy, 503, "unavailable"),
)


def status_of(exc: RagError) -> tuple[int, str]:
    """The HTTP status and error type of an expected failure."""
    for kind, status, name in _STATUS:
        if isinstance(exc, kind):
            return status, name
    if isinstance(exc, StoreError):
        text = str(exc)
        return (404, "not_found") if ("is empty" in text or "does not exist" in text) else (503, "store_error")
    if isinstance(exc, LlmError):
        return 502, "llm_error"
    return 400, "rag_error"


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse(error_body(status, message, kind), status_code=status)


class Guard:
    """ASGI middleware in front of every route: the API key and the request size limit.

    A request is *trusted* (``scope["state"]["trusted"]``) when it carries the local token that
    ``rag serve`` writes, readable only by the home's owner, into the discovery file: the CLI of
    the same home may ingest any of its own paths.
    """

    def __init__(self, app: Any, api_key: str | None, local_token: str | None, max_bytes: int) -> None:
        self.app = app
        self.api_key = api_key.encode() if api_key else None
        self.local_token = local_token.encode() if local_token else None
        self.max_bytes = max_bytes

    async def _send_error(self, send: Callable[..., Awaitable[None]], status: int, message: str, kind: str,
                          extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
        body = json.dumps(error_body(status, message, kind)).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                *(extra_headers or [])]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        token = headers.get(LOCAL_TOKEN_HEADER.encode(), b"")
        trusted = bool(self.local_token) and hmac.compare_digest(token, self.local_token or b"")
        if self.api_key is not None and not trusted:
            auth = headers.get(b"authorization", b"")
            given = auth[7:].strip() if auth[:7].lower() == b"bearer " else headers.get(b"x-api-key", b"")
            if not hmac.compare_digest(given, self.api_key):
                await self._send_error(send, 401, "missing or wrong API key; send 'Authorization: Bearer KEY'",
                                       "authentication_error", [(b"www-authenticate", b"Bearer")])
                return
        scope.setdefault("state", {})["trusted"] = trusted
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._send_error(send, 413, f"request body over {self.max_bytes} bytes ([serve] max_request_bytes)",
                                   "request_too_large")
            return
        if length is None and scope.get("method") in ("POST", "PUT", "PATCH"):
            # no declared length (a chunked body): read it here, bounded, and hand it on whole
            body, more = b"", True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    return
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > self.max_bytes:
                    await self._send_error(send, 413, f"request body over {self.max_bytes} bytes "
                                           "([serve] max_request_bytes)", "request_too_large")
                    return
            replayed = False

            async def replay() -> dict[str, Any]:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)


def create_app(engine: Engine, api_key: str | None = None, local_token: str | None = None,
               close_engine: bool = True) -> FastAPI:
    """The ASGI application; its shutdown (after uvicorn drained the requests) closes the engine.

    ``close_engine=False`` leaves the engine open, for a second app over the same engine.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if close_engine:
            await run_in_threadpool(engine.close)

    app = FastAPI(title="rag", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(RagError)
    async def _rag_error(request: Request, exc: RagError) -> JSONResponse:
        status, kind = status_of(exc)
        return _error(status, str(exc), kind)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return _error(400, f"invalid request: {where}: {first.get('msg', 'invalid')}", "invalid_request_error")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), "not_found" if exc.status_code == 404 else "http_error")

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return _error(500, f"internal error ({type(exc).__name__}); see the server's log", "server_error")

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "home": str(engine.home), "pid": os.getpid(),
                "collections": await run_in_threadpool(lambda: [c["name"] for c in engine.collections()])}

    @app.get("/v1/collections")
    async def collections() -> dict[str, Any]:
        return {"collections": await run_in_threadpool(engine.collections)}

    @app.post("/v1/search")
    async def search(req: SearchRequest) -> dict[str, Any]:
        flt = parse_filters(req.filters)
        result = await run_in_threadpool(engine.search, req.query, req.collection, req.k, req.retriever,
                                         req.rerank, flt)
        return result.as_dict()

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        names = await run_in_threadpool(lambda: [c["name"] for c in engine.collections()])
        return model_list(names)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(req: ChatRequest) -> Any:
        collection = req.collection()
        question, history = req.conversation()
        options = AnswerOptions(req.rag.retriever, req.rag.expand, req.rag.multihop, req.rag.max_hops)
        if collection is not None:
            await run_in_threadpool(engine.require, collection)
        cid = completion_id()
        if not req.stream:
            answer, query = await run_in_threadpool(engine.answer, question, collection, history, options)
            extra = {**answer.as_dict(), "query": query}
            return completion(cid, req.model, answer.answer, extra)
        return StreamingResponse(_stream(engine, cid, req.model, question, collection, history, options),
                                 media_type="text/event-stream", headers={"cache-control": "no-cache"})

    @app.post("/v1/ingest", status_code=202)
    async def ingest(req: IngestRequest, request: Request) -> dict[str, Any]:
        trusted = bool(getattr(request.state, "trusted", False))
        paths = await run_in_threadpool(engine.check_ingest_paths, req.paths, trusted)
        return engine.start_ingest(paths, req.collection).as_dict()

    @app.get("/v1/ingest")
    async def ingest_jobs() -> dict[str, Any]:
        return {"jobs": [j.as_dict() for j in engine.jobs.values()]}

    @app.get("/v1/ingest/{job_id}")
    async def ingest_job(job_id: str) -> Any:
        job = engine.jobs.get(job_id)
        if job is None:
            return _error(404, f"no ingest job {job_id!r}; GET /v1/ingest lists them", "not_found")
        return job.as_dict()

    app.add_middleware(Guard, api_key=api_key, local_token=local_token,  # type: ignore[arg-type]
                       max_bytes=engine.settings.serve.max_request_bytes)
    return app


async def _stream(engine: Engine, cid: str, model: str, question: str, collection: str | None,
                  history: list[tuple[str, str]], options: AnswerOptions) -> AsyncIterator[str]:
    """Server-sent events of a chat completion: role, tokens, then the last chunk with the ``rag`` extra."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancelled = threading.Event()

    def post(kind: str, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(events.put_nowait, (kind, value))
        except RuntimeError:  # the loop is gone: the client went away and the server is stopping
            cancelled.set()

    def work() -> None:
        try:
            post("done", engine.answer(question, collection, history, options, lambda d: post("token", d), cancelled))
        except BaseException as exc:  # noqa: BLE001 - every failure goes to the client as an error event
            post("error", exc)

    def sse(data: dict[str, Any]) -> str:
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    threading.Thread(target=work, name="rag-answer", daemon=True).start()
    try:
        yield sse(chunk(cid, model, {"role": "assistant", "content": ""}))
        while True:
            kind, value = await events.get()
            if kind == "token":
                yield sse(chunk(cid, model, {"content": value}))
                continue
            if kind == "error":
                if isinstance(value, RagError):
                    status, etype = status_of(value)
                    yield sse(error_body(status, str(value), etype))
                else:
                    log.error("internal error while answering: %s: %s", type(value).__name__, value)
                    yield sse(error_body(500, f"internal error ({type(value).__name__}); see the server's log",
                                         "server_error"))
                break
            answer, query = value
            if answer.withdrawn:  # the streamed draft failed its checks: say so, then give the refusal
                yield sse(chunk(cid, model, {"content": f"\n\n{answer.answer}{WITHDRAWN_NOTE}"}))
            yield sse(chunk(cid, model, {}, "stop", {**answer.as_dict(), "query": query}))
            break
        yield "data: [DONE]\n\n"
    finally:
        cancelled.set()
