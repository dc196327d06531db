"""Hiding secrets in text that reaches a terminal, a log or an HTTP reply."""

from __future__ import annotations

import re
from typing import Sequence

_LABELLED = re.compile(
    r"""(?i)((?:api[-_]?key|authorization|x-api-key|token|password|secret)["']?\s*[:=]\s*["']?(?:bearer\s+)?)"""
    r"""([^"'\s,;}&]+)"""
)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")


def mask_secrets(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` with secrets hidden: the known values, anything after ``api-key:``-like labels, and the
    credentials of ``scheme://user:password@host`` addresses."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _URL_USERINFO.sub(lambda m: m.group(1) + "***@", text)
    return _LABELLED.sub(lambda m: m.group(1) + "***", text)
