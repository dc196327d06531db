"""Crash injection for the crash-safety tests: ``RAG_FAULT_KILL_AT=<point>`` kills the process there.

Unset (always, outside tests), :func:`fault_point` does nothing.
"""

from __future__ import annotations

import os
import signal


def fault_point(point: str) -> None:
    """Kill this process with SIGKILL when ``RAG_FAULT_KILL_AT`` names ``point``."""
    if os.environ.get("RAG_FAULT_KILL_AT") == point:
        os.kill(os.getpid(), signal.SIGKILL)
