"""The body of an ARM write: JSON object or ARM's 400/415, and the fields every tracked resource shares.

ARM takes ``application/json`` only (415 ``UnsupportedMediaType`` otherwise) and answers a body it cannot
deserialize with 400 ``InvalidRequestContent`` (docs/protocol.md#arm-writes). The detail in that message is
worded like the Json.NET text real replies carry ("… Path 'identity.type'"), so a learner sees which field
is wrong; a write never gets a 500 for its body.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from typing import Any

from werkzeug.wrappers import Request

from mi_helpers.emulator.errors import (
    arm_invalid_request_content,
    arm_location_required,
    arm_unsupported_media_type,
)

__all__ = ["GUID", "json_body", "location_of", "now_stamp", "object_at", "string_at", "tags_of"]

#: A GUID as ARM accepts it in names and IDs (any case, with dashes).
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_JSON_TYPES = ("application/json", "text/json")


def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, or the 415/400 ARM answers for anything else."""
    data = request.get_data(cache=True)
    mimetype = request.mimetype
    if data.strip() and mimetype and mimetype not in _JSON_TYPES and not mimetype.endswith("+json"):
        raise arm_unsupported_media_type(request.content_type or mimetype)
    if not data.strip():
        raise arm_invalid_request_content("The request body is empty: this write takes a JSON object.")
    try:
        body = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise arm_invalid_request_content("The request body is not UTF-8 text.") from None
    except ValueError as exc:
        raise arm_invalid_request_content(f"Unexpected JSON: {exc}. Path '', line 1.") from None
    if not isinstance(body, dict):
        raise arm_invalid_request_content(
            f"Cannot deserialize the current JSON {type(body).__name__} into an object. Path ''."
        )
    return body


def object_at(body: dict[str, Any], key: str, path: str) -> dict[str, Any] | None:
    """``body[key]`` when it is an object, None when absent or null, else 400 naming ``path``."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise arm_invalid_request_content(f"Expected a JSON object at path '{path}'. Path '{path}'.")
    return value


def string_at(body: dict[str, Any], key: str, path: str) -> str | None:
    """``body[key]`` when it is a string, None when absent or null, else 400 naming ``path``."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise arm_invalid_request_content(f"Expected a string at path '{path}'. Path '{path}'.")
    return value


def tags_of(body: dict[str, Any]) -> dict[str, str] | None:
    """The ``tags`` of a write (strings by strings), None when the body has none."""
    tags = object_at(body, "tags", "tags")
    if tags is None:
        return None
    out: dict[str, str] = {}
    for name, value in tags.items():
        if isinstance(value, (dict, list)):
            raise arm_invalid_request_content(
                f"Tag '{name[:64]}' must have a string value. Path 'tags.{name[:64]}'."
            )
        out[str(name)] = (
            "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        )
    return out


def location_of(body: dict[str, Any], *, required: bool) -> str | None:
    """The ``location`` of a write, normalised as ARM reports it (``West Europe`` → ``westeurope``)."""
    location = string_at(body, "location", "location")
    if location is None or not location.strip():
        if required:
            raise arm_location_required()
        return None
    return location.replace(" ", "").lower()


def now_stamp() -> str:
    """Now, as Compute stamps its operations (``2026-01-01T00:00:00.0000000+00:00``)."""
    now = _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}0+00:00"
