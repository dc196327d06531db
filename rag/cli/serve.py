"""``rag serve`` and ``rag mcp``, and the CLI commands' path through a running server of the same home."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from rag.cli.context import Context, handle_errors
from rag.core.errors import ConfigError, RagError

LOOPBACK_NAMES = {"localhost"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_for(obj: Context) -> Any:
    """A client of the running server of this home, or None (then the command works on its own)."""
    from rag.serve.client import find_server

    return find_server(obj.home, obj.settings.serve.api_key_env)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit this; without it every reply waited ~40 ms (Nagle + delayed ACK)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RagError(f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port") from None
    return sock


@click.command()
@click.option("--host", default=None, help="Address to listen on ([serve] host; default 127.0.0.1, this machine only).")
@click.option("--port", type=int, default=None, help="TCP port ([serve] port; 0 picks a free one).")
@click.option("--no-warm", is_flag=True, help="Load the models and start the LLM on first use instead of now.")
@click.pass_obj
@handle_errors
def serve(obj: Context, host: str | None, port: int | None, no_warm: bool) -> None:
    """Keep the collections and models of the home loaded and serve them over HTTP.

    While it runs, `rag search`, `ask`, `chat`, `status` and `ingest` of the same home go
    through it (no model load per command, no store lock between commands). It also serves
    an OpenAI-compatible chat API (model "rag:<collection>") for chat front-ends.
    A host other than loopback requires an API key in the env var named by [serve] api_key_env.

    \b
    Example:
      rag serve
      rag serve --port 8484 &  rag search "succulent watering"
      RAG_API_KEY=$(openssl rand -hex 24) rag serve --host 0.0.0.0
    """
    import uvicorn

    from rag.serve.app import create_app
    from rag.serve.client import new_local_token, read_discovery, remove_discovery, write_discovery
    from rag.serve.engine import Engine

    settings = obj.settings
    cfg = settings.serve
    host = host or cfg.host
    port = cfg.port if port is None else port
    api_key = os.environ.get(cfg.api_key_env) or None
    if not is_loopback(host) and not api_key:
        raise ConfigError(f"listening on {host} (not loopback) needs an API key: set the env var {cfg.api_key_env} "
                          "([serve] api_key_env) to a long random value, or use --host 127.0.0.1")
    running = read_discovery(obj.home)
    if running is not None:
        raise RagError(f"a server of {obj.home} already runs (pid {running.pid}, {running.url}); stop it first")
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else ('[::1]' if host == '::' else shown)}:{bound_port}"
    engine = Engine(settings, obj.home)
    if not no_warm:
        click.echo("rag serve: loading the models and starting the LLM...", err=True)
        for note in engine.warm(llm=True):
            click.echo(f"rag: note: {note}", err=True)
    token = new_local_token()
    app = create_app(engine, api_key=api_key, local_token=token)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=30,
                                           lifespan="on"))

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            write_discovery(obj.home, url, token)
            click.echo(f"rag serve: {obj.home} on http://{shown}:{bound_port} (OpenAI base_url {url}/v1); "
                       "Ctrl-C or SIGTERM stops it", err=True)

    threading.Thread(target=announce, name="rag-announce", daemon=True).start()
    # uvicorn drains on SIGTERM/SIGINT, then re-raises the signal to the handler it found: make that
    # one a no-op, so the shutdown ends here (discovery file removed, exit status 0)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        server.run(sockets=[sock])
    finally:
        remove_discovery(obj.home)
        sock.close()


@click.command()
@click.pass_obj
@handle_errors
def mcp(obj: Context) -> None:
    """Serve the collections to an MCP client (assistants, IDEs) over stdio.

    Tools: search, ask, list_collections. It goes through `rag serve` when one runs for
    this home, else it loads the collections and models itself.

    \b
    Example (an MCP client's config):
      {"mcpServers": {"rag": {"command": "rag", "args": ["mcp"]}}}
    """
    from rag.serve.mcp_server import run_stdio

    run_stdio(obj.settings, obj.home)


# -- the CLI commands through a running server -----------------------------------------


def search_result(data: dict[str, Any]) -> Any:
    """A SearchResult rebuilt from the ``rag search --json`` shape (to print it the same way)."""
    from dataclasses import fields

    from rag.query.retrieve import ScoredChunk
    from rag.query.search import SearchResult

    known = {f.name for f in fields(ScoredChunk)}
    chunks = []
    for r in data["results"]:
        values = {"chunk_id": r["chunk_id"], "text": r["text"], "source": r["source"], "score": r["score"],
                  "scores": r.get("scores") or {}, "ranks": r.get("ranks") or {}, "page": r.get("page"),
                  "start": r.get("start"), "end": r.get("end"), "headings": tuple(r.get("headings") or ()),
                  "payload": {"page": r.get("page"), "headings": r.get("headings") or [], "start": r.get("start"),
                              "end": r.get("end")}}
        chunks.append(ScoredChunk(**{k: v for k, v in values.items() if k in known}))
    return SearchResult(data["query"], tuple(chunks), data["retriever"], data["reranked"], dict(data["timings_ms"]),
                        tuple(data["notes"]))


def ask_options(retriever: str | None, expand: str | None, multihop: str | None, max_hops: int | None) -> dict[str, Any]:
    return {"retriever": retriever, "expand": expand, "multihop": multihop, "max_hops": max_hops}


def print_answer(data: dict[str, Any], explain: bool) -> None:
    """After a streamed answer from the server: its notes, the refusal if withdrawn, the sources, --explain."""
    from rag.cli.render import print_answer_sources
    from rag.cli.text import plain

    for note in data.get("notes") or []:
        click.echo(f"rag: note: {plain(note)}", err=True)
    if data.get("withdrawn"):
        click.echo(f"\n{plain(data['answer'], newlines=True)} (withdrawn: the sources do not support the draft above)")
    print_answer_sources(data, explain)


def ask_through(server: Any, question: str, collection: str | None, options: dict[str, Any], explain: bool,
                as_json: bool) -> None:
    """``rag ask`` through the server: the same output as on its own."""
    def echo(delta: str) -> None:
        click.echo(delta, nl=False)
        sys.stdout.flush()

    data = server.chat([{"role": "user", "content": question}], collection, options, None if as_json else echo)
    data.pop("query", None)
    if as_json:
        for note in data.get("notes") or []:
            click.echo(f"rag: note: {note}", err=True)
        click.echo(json.dumps(data, ensure_ascii=False))
        return
    click.echo("")
    print_answer(data, explain)


def chat_through(server: Any, collection: str | None, options: dict[str, Any], explain: bool) -> None:
    """``rag chat`` through the server: the conversation is kept here and sent with every question."""
    from rag.cli.chatloop import ChatTurns, run_chat_loop

    messages: list[dict[str, str]] = []
    last: list[dict[str, Any]] = []
    target = f"'{collection}'" if collection else "the home's collections (routed per question)"
    click.echo(f"chatting with {target} through rag serve ({server.url}); /help for commands", err=True)

    def answer(line: str, on_token: Any) -> None:
        data = server.chat(messages + [{"role": "user", "content": line}], collection, options, on_token)
        click.echo("")
        messages.extend([{"role": "user", "content": line}, {"role": "assistant", "content": data["answer"]}])
        last[:] = [data]
        print_answer(data, explain)

    def reset() -> None:
        messages.clear()
        last.clear()

    run_chat_loop(ChatTurns(answer=answer, reset=reset, collections=lambda: [c["name"] for c in server.collections()],
                            sources=lambda: last[0].get("sources") or [] if last else None))


def ingest_through(server: Any, paths: tuple[str, ...], collection: str) -> Any:
    """``rag ingest`` through the server (it owns the store); returns the IngestReport."""
    from ingest.pipeline import FileIssue, IngestReport

    job = server.ingest([str(Path(p).expanduser().resolve()) for p in paths], collection)
    shown = [-1]

    def progress(j: dict[str, Any]) -> None:
        if sys.stderr.isatty() and j["files_total"] is not None and j["files_done"] != shown[0]:
            shown[0] = j["files_done"]
            click.echo(f"\rrag serve: ingesting {j['files_done']}/{j['files_total']} files, "
                       f"{j['chunks_embedded']} chunks embedded", err=True, nl=False)

    job = server.wait_job(job["id"], progress)
    if shown[0] >= 0:
        click.echo("", err=True)
    for note in job.get("notes") or []:
        click.echo(f"rag: note: {note}", err=True)
    if job["state"] != "done":
        raise RagError(job.get("error") or "the ingest failed; see the server's log")
    r = dict(job["report"])
    r["deleted"] = tuple(r["deleted"])
    for key in ("files_failed", "files_skipped"):
        r[key] = tuple(FileIssue(f["path"], f["reason"]) for f in r[key])
    return IngestReport(**r)


def status_through(server: Any, info: dict[str, Any]) -> dict[str, Any]:
    """Fill in what the server's open stores know (a local open would find them locked)."""
    counts = {c["name"]: c["chunks"] for c in server.collections()}
    for c in info["collections"]:
        if c["name"] in counts and counts[c["name"]] is not None:
            c["chunks"] = counts[c["name"]]
            c["store"] = f"served by rag serve ({server.url})"
            c["bm25_in_step"] = c.get("bm25_chunks") == c["chunks"]
    return info
