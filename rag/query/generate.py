"""Generation: stream an answer to the caller as it is written, noting when its first token came.

The time to the first token is what a user of ``rag ask`` waits before reading; it is kept
apart from the total so a slow retrieval and a slow model can be told apart.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

from rag.core.llm import Llm, Messages


def stream_text(deltas: Iterable[str], t0: float, timings: dict[str, float],
                on_token: Callable[[str], None] | None) -> str:
    """Pass each delta to ``on_token`` and return the whole text, stripped.

    ``timings["first_token_s"]`` is set to the seconds from ``t0`` to the first delta (not set
    when there is none). A fixed text (e.g. the refusal) streams the same way as a model's reply.
    """
    parts: list[str] = []
    for delta in deltas:
        if not parts:
            timings["first_token_s"] = time.perf_counter() - t0
        parts.append(delta)
        if on_token:
            on_token(delta)
    return "".join(parts).strip()


def generate(llm: Llm, messages: Messages, t0: float, timings: dict[str, float],
             on_token: Callable[[str], None] | None) -> str:
    """The model's reply to ``messages``, streamed to ``on_token`` (see ``stream_text``)."""
    return stream_text(llm.stream(messages), t0, timings, on_token)
