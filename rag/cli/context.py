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


def show_warnings_as_notes() -> None:
    """Library warnings (qdrant-client's, torch's...) become one ``rag: warning:`` line, without source lines.

    Their text is masked like store errors (an API key a server echoes never reaches the terminal).
    """
    import warnings

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        from rag.cli.text import plain
        from rag.core.redact import mask_secrets

        click.echo(f"rag: warning: {plain(mask_secrets(str(message)))}", err=True)

    warnings.showwarning = show


def _fail(message: str, code: int) -> None:
    from rag.cli.text import plain

    from rag.core.redact import mask_secrets

    click.echo(f"rag: error: {plain(mask_secrets(message))}", err=True)
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
        except OSError as exc:  # a write that library code did not expect to fail: a full disk is one line
            import errno

            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            from rag.core.disk import disk_full

            _fail(str(disk_full(exc.filename or ".")), EXIT_ERROR)

    return wrapper
