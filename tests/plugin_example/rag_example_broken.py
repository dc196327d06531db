"""An example of a retriever plugin that cannot be imported (rag must report it and go on)."""

from __future__ import annotations

raise ImportError("example of a broken plugin")


def factory(ctx: object) -> object:  # pragma: no cover - never reached
    """Never reached."""
    raise AssertionError
