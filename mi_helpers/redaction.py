"""Redaction of bearer tokens in any text: messages, logs, reprs and exceptions never carry a whole JWT."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["JWT_PATTERN", "redact", "redact_secret", "redact_text", "redact_token"]

# A JWT is three base64url segments; its header is JSON, so the first segment always starts with "eyJ"
# ('{"' encoded). Requiring that prefix keeps host names such as management.azure.com untouched.
# The signature may be empty (unsigned tokens), so the third segment may have length 0.
JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
# Texts pasted from elsewhere (az output, HTTP dumps) may carry secrets that are not JWTs. Compiled on
# first use: only diagnoses need them, and every module imports this one.
_BEARER = r"(?i)(bearer\s+)([A-Za-z0-9._~+/=-]{16,})"
_TOKEN_FIELD = (
    r"""(?i)(["']?(?:access_token|refresh_token|id_token|client_secret)["']?\s*[:=]\s*["']?)"""  # noqa: S105
    r"""([^"',\s}]{8,})"""
)


def redact_token(token: str) -> str:
    """Show a token as its first 8 characters, an ellipsis and its length: ``eyJ0eXAi…(1234 chars)``."""
    return f"{token[:8]}…({len(token)} chars)"


def redact(text: Any) -> str:
    """Return ``str(text)`` with every JWT-shaped substring replaced by :func:`redact_token` of it."""
    return JWT_PATTERN.sub(lambda m: redact_token(m.group(0)), str(text))


def redact_text(text: str, limit: int = 600) -> str:
    """:func:`redact`, and every bearer value and token field shortened too; cut to ``limit`` characters.

    For foreign texts (server answers, pasted CLI output) that are shown as evidence.
    """
    out = redact(text)
    out = re.sub(_BEARER, lambda m: m.group(1) + redact_token(m.group(2)), out)
    out = re.sub(_TOKEN_FIELD, lambda m: m.group(1) + redact_token(m.group(2)), out)
    if len(out) > limit:
        out = out[: limit - 1] + "…"
    return out


def redact_secret(secret: str) -> str:
    """Show a client secret as Entra's portal and Graph's ``hint`` do: its first 3 characters, then ``…``.

    ``abc…(40 chars)``: enough to tell two secrets apart, never enough to use one.
    """
    return f"{secret[:3]}…({len(secret)} chars)"
