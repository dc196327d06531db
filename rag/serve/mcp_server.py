"""``rag mcp``: the collections as Model Context Protocol tools over stdio (the official ``mcp`` SDK).

Tools: ``search``, ``ask`` and ``list_collections``; results name their sources with their
locations (path, page, character offsets). Each call goes through the resident ``rag serve`` of
the home when one runs, else through an engine this process loads on first use.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from rag.core.config import Settings
from rag.serve.client import find_server
from rag.serve.engine import AnswerOptions, Engine

INSTRUCTIONS = ("Search and question the user's own documents. `search` returns passages with their source path, "
                "page and character offsets; `ask` returns an answer whose [n] markers cite the numbered sources, "
                "each marked supported or not by a check against its passage.")


def _passage(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r.get(k) for k in ("rank", "n", "chunk_id", "source", "page", "start", "end", "score", "text")
            if k in r}


def _answer(d: dict[str, Any]) -> dict[str, Any]:
    """The parts of an answer an assistant needs: text, checked citations, the numbered sources."""
    return {"answer": d["answer"], "refused": d["refused"], "withdrawn": d.get("withdrawn", False),
            "citations": d["citations"], "sources": [_passage(s) for s in d["sources"]],
            "notes": d.get("notes") or []}


class Backend:
    """Where the tools' work runs: the resident server of the home, else a local engine (kept)."""

    def __init__(self, settings: Settings, home: Path) -> None:
        self.settings = settings
        self.home = home
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def _server(self) -> Any:
        return find_server(self.home, self.settings.serve.api_key_env)

    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = Engine(self.settings, self.home)
            return self._engine

    def search(self, query: str, collection: str, k: int) -> dict[str, Any]:
        server = self._server()
        if server is not None:
            try:
                data = server.search(query, collection, k)
            finally:
                server.close()
        else:
            data = self.engine().search(query, collection, k).as_dict()
        return {"query": data["query"], "collection": collection, "results": [_passage(r) for r in data["results"]]}

    def ask(self, question: str, collection: str | None) -> dict[str, Any]:
        server = self._server()
        if server is not None:
            try:
                return _answer(server.chat([{"role": "user", "content": question}], collection))
            finally:
                server.close()
        answer, _ = self.engine().answer(question, collection, (), AnswerOptions())
        return _answer(answer.as_dict())

    def collections(self) -> list[dict[str, Any]]:
        server = self._server()
        if server is not None:
            try:
                return server.collections()
            finally:
                server.close()
        return self.engine().collections()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()


def build_server(settings: Settings, home: Path) -> tuple[Any, Backend]:
    """The FastMCP server with its three tools, and the backend they use."""
    import anyio
    from mcp.server.fastmcp import FastMCP

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request to the server is noise here
    backend = Backend(settings, home)
    app = FastMCP("rag", instructions=INSTRUCTIONS, log_level="WARNING")

    @app.tool()
    async def search(query: str, collection: str = "default", k: int = 5) -> dict[str, Any]:
        """Passages of a collection that match the query by meaning and by exact words, best first,
        each with its source path, page and character offsets."""
        return await anyio.to_thread.run_sync(backend.search, query, collection, k)

    @app.tool()
    async def ask(question: str, collection: str | None = None) -> dict[str, Any]:
        """Answer a question from the documents; [n] in the answer cites sources[n-1]; each citation
        says whether its passage supports the sentence. Without a collection, the question is routed."""
        return await anyio.to_thread.run_sync(backend.ask, question, collection)

    @app.tool()
    async def list_collections() -> list[dict[str, Any]]:
        """The collections of documents that can be searched, with their descriptions and sizes."""
        return await anyio.to_thread.run_sync(backend.collections)

    return app, backend


def run_stdio(settings: Settings, home: Path) -> None:
    """Serve the tools over stdin/stdout until the client closes them."""
    app, backend = build_server(settings, home)
    try:
        app.run("stdio")
    finally:
        backend.close()
