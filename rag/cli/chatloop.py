"""The terminal chat loop shared by ``rag chat`` on its own and through ``rag serve``.

The loop reads lines, runs the slash commands and hands every other line to ``answer``; what
differs between the two (who keeps the conversation, where sources come from) is passed in.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import click

from rag.cli.text import plain
from rag.core.errors import RagError

HELP = """commands:
  /sources      the passages behind the last answer
  /reset        forget the conversation so far
  /collections  list the collections in this home
  /help         this text
  /quit         leave (Ctrl-D works too; Ctrl-C stops the current answer)"""
"""The slash commands (the loop is the same on its own and through ``rag serve``, which needs no answering stack)."""


@dataclass(frozen=True, slots=True)
class ChatTurns:
    """What the loop calls: answer a line (streaming through ``on_token``), forget, list, show sources."""

    answer: Callable[[str, Callable[[str], None]], None]
    reset: Callable[[], None]
    collections: Callable[[], Sequence[str]]
    sources: Callable[[], Sequence[Mapping[str, object]] | None]  # the last answer's, None before any


def _stream(delta: str) -> None:
    click.echo(plain(delta, newlines=True), nl=False)
    sys.stdout.flush()


def run_chat_loop(turns: ChatTurns) -> None:
    """Read and answer lines until EOF or /quit; Ctrl-C stops the current answer, not the session."""
    while True:
        try:
            line = input("> ").strip()
        except EOFError:
            break
        except KeyboardInterrupt:
            click.echo("\n(Ctrl-D or /quit to leave)", err=True)
            continue
        if not line:
            continue
        if line in ("/quit", "/exit"):
            break
        if line == "/help":
            click.echo(HELP)
        elif line == "/reset":
            turns.reset()
            click.echo("(conversation cleared)")
        elif line == "/collections":
            click.echo("\n".join(plain(c) for c in turns.collections()) or "(none)")
        elif line == "/sources":
            sources = turns.sources()
            if sources is None:
                click.echo("(no answer yet)")
            for s in sources or []:
                where = f"{s['source']}" + (f", page {s['page']}" if s.get("page") is not None else "")
                click.echo(plain(f"[{s['n']}] {where}: {' '.join(str(s['text']).split())[:200]}"))
        elif line.startswith("/"):
            click.echo(f"unknown command {plain(line)}; /help lists them", err=True)
        else:
            try:
                turns.answer(line, _stream)
            except KeyboardInterrupt:
                click.echo("\n(answer stopped)", err=True)
            except RagError as exc:
                click.echo(f"\nrag: error: {plain(exc)}", err=True)
