"""Request and response shapes of the HTTP API: rag's own routes and the OpenAI-compatible chat.

Chat answers are plain OpenAI chat completions (so any ``openai`` client reads them) with one
documented extra field, ``rag``: the answer's checked citations and sources (``Answer.as_dict()``
plus the searched ``query``), on the completion, or on the last chunk when streaming.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rag.core.errors import ConfigError

MODEL_PREFIX = "rag:"
ROUTED_MODEL = "rag"  # routed among the home's collections, as `rag ask` without --collection


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchRequest(_Strict):
    """``POST /v1/search``: the options of ``rag search``; the reply has the shape of ``rag search --json``."""

    query: str = Field(max_length=10_000)
    collection: str = "default"
    k: int = Field(5, ge=1)
    retriever: str | None = None
    rerank: bool | None = None
    filters: list[str] = Field([], max_length=32, description="FIELD=VALUE, as `rag search --filter`.")


class IngestRequest(_Strict):
    """``POST /v1/ingest``: folders or files on the server's machine, under ``[serve] ingest_roots``."""

    paths: list[str] = Field(min_length=1, max_length=256)
    collection: str = "default"


class RagOptions(_Strict):
    """The ``rag`` extra of a chat request (``extra_body={"rag": {...}}`` in the openai client)."""

    retriever: str | None = None
    expand: Literal["none", "multi", "hyde"] | None = None
    multihop: Literal["off", "links", "graph", "llm"] | None = None
    max_hops: int | None = Field(None, ge=1, le=5)


class ChatMessage(BaseModel):
    """One message; ``content`` is text or a list of parts of which the text parts are read."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "\n".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


class ChatRequest(BaseModel):
    """``POST /v1/chat/completions``; sampling options of other servers are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    rag: RagOptions = RagOptions()

    def collection(self) -> str | None:
        """The collection the model names (None: routed)."""
        if self.model == ROUTED_MODEL:
            return None
        if self.model.startswith(MODEL_PREFIX) and len(self.model) > len(MODEL_PREFIX):
            return self.model[len(MODEL_PREFIX):]
        raise ModelNotFound(f"unknown model {self.model!r}; use 'rag:<collection>' or 'rag' (GET /v1/models lists them)")

    def conversation(self) -> tuple[str, list[tuple[str, str]]]:
        """The question (the last user message) and the earlier (user, assistant) turns."""
        last = self.messages[-1]
        if last.role != "user" or not last.text().strip():
            raise ConfigError("the last message must be a non-empty user message: it is the question")
        history: list[tuple[str, str]] = []
        pending: str | None = None
        for m in self.messages[:-1]:
            if m.role == "user":
                pending = m.text()
            elif m.role == "assistant" and pending is not None:
                history.append((pending, m.text()))
                pending = None
        return last.text(), history


class ModelNotFound(ConfigError):
    """A chat request names a model that is not ``rag`` or ``rag:<collection>``."""


def model_list(collections: list[str]) -> dict[str, Any]:
    """``GET /v1/models``: ``rag`` (routed) and ``rag:<collection>`` for every collection."""
    ids = ([ROUTED_MODEL] if collections else []) + [MODEL_PREFIX + c for c in collections]
    return {"object": "list", "data": [{"id": i, "object": "model", "created": 0, "owned_by": "rag"} for i in ids]}


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def completion(cid: str, model: str, text: str, extra: dict[str, Any]) -> dict[str, Any]:
    """A whole chat completion with the ``rag`` extra."""
    return {
        "id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "rag": extra,
    }


def chunk(cid: str, model: str, delta: dict[str, Any], finish: str | None = None,
          extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One streamed chunk; the last one (``finish`` set) carries the ``rag`` extra."""
    out: dict[str, Any] = {
        "id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if extra is not None:
        out["rag"] = extra
    return out


def error_body(status: int, message: str, kind: str) -> dict[str, Any]:
    """The error shape of every route: ``{"error": {"message", "type", "code"}}``."""
    return {"error": {"message": message, "type": kind, "code": status}}
