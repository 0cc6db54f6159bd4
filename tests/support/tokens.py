"""Find whole JWTs in any text: the suite's one scanner for "no token is ever shown whole".

Stricter than the library's own ``JWT_PATTERN`` (which needs the ``eyJ`` prefix): any three base64url
segments whose first two decode to JSON objects count, whatever the header looks like, and the signature
may be empty (unsigned tokens).
"""

from __future__ import annotations

import base64
import json
import re

_SEGMENTS = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")


def _json_object(segment: str) -> bool:
    try:
        value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(value, dict)


def whole_jwts(text: str) -> list[str]:
    """Every whole JWT in ``text``, each shown by its first 12 characters (so a failure never prints one)."""
    found = []
    for match in _SEGMENTS.finditer(text):
        header, payload = match.group(0).split(".")[:2]
        if _json_object(header) and _json_object(payload):
            found.append(match.group(0)[:12] + "…")
    return found
