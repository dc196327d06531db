"""What every command shares: the global options, exit statuses, and the error-to-one-line handler."""

from __future__ import annotations

import sys
from typing import Any, Callable

import click

from rag.core.config import Settings, load_settings, resolve_home
from rag.core.errors import RagError

EXIT_OK = 0
EXIT_ERROR = 1  # nothing could be done (store locked, model missing, bad config...)
EXIT_USAGE = 2  # wrong command-line usage or invalid configuration
EXIT_PARTIAL = 3  # some files failed; the rest went in
EXIT_NOTHING = 4  # no file could be ingested


class Context:
    """Global options shared by every command."""

    def __init__(self, home: str | None) -> None:
        self.home = resolve_home(home)
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.home)
        return self._settings


def _fail(message: str, code: int) -> None:
    click.echo(f"rag: error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into one line on stderr and an exit status."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RagError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            click.echo("rag: interrupted; rerun the same command to continue where it stopped", err=True)
            sys.exit(130)

    return wrapper
