"""Input validators: each bad value becomes one :class:`InputError` line naming the field and what is allowed.

Validation happens before any request is sent, so a typo never turns into a confusing 400 from IMDS or a
404 from ARM, and a learner sees one sentence instead of a traceback. The rules follow Azure's documented
naming rules (resource groups, VM resource names, user-assigned identity IDs) and the token endpoint's
contract (one resource URI with a scheme per request).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from mi_helpers.redaction import redact

__all__ = [
    "GUID_EXAMPLE",
    "InputError",
    "validate_arm_scope",
    "validate_guid",
    "validate_one_selector",
    "validate_resource",
    "validate_resource_group",
    "validate_scenario",
    "validate_seconds",
    "validate_uami_resource_id",
    "validate_vm_name",
]

GUID_EXAMPLE = "1b3d5f7a-9c1e-4b3d-8f5a-7c9e1b3d5f7a"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_VM_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?$")
_UAMI_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,127}$")
_UAMI_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/providers/"
    r"microsoft\.managedidentity/userassignedidentities/(?P<name>[^/]+)$",
    re.IGNORECASE,
)
_SCENARIO = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_URI_SCHEMES = ("https://", "api://")


class InputError(ValueError):
    """A value a learner typed (or a caller passed) is not acceptable.

    ``str()`` is always a single line: ``<field>: <what is wrong> (<what is allowed>)``. ``field`` and
    ``value`` are kept as attributes so widgets can highlight the offending input.
    """

    def __init__(self, field: str, message: str, value: object = None) -> None:
        self.field = field
        self.value = value
        one_line = redact(" ".join(f"{field}: {message}".split()))
        super().__init__(one_line)


def _show(value: object, limit: int = 60) -> str:
    """Quote a bad value for a message; long values are shortened so the message stays one line."""
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    if len(text) > limit:
        text = f"{text[: limit - 12]}…({len(text)} chars)"
    return repr(text) if isinstance(value, str) else text


def _require_text(field: str, value: object, allowed: str) -> str:
    if value is None:
        raise InputError(field, f"is missing ({allowed})", value)
    if not isinstance(value, str):
        raise InputError(field, f"{_show(value)} is a {type(value).__name__}, not text ({allowed})", value)
    text = value.strip()
    if not text:
        raise InputError(field, f"is empty ({allowed})", value)
    return text


def validate_guid(value: object, field: str = "client_id") -> str:
    """Return ``value`` stripped if it is a GUID (8-4-4-4-12 hex digits), else raise :class:`InputError`."""
    allowed = f"expected 8-4-4-4-12 hex digits, e.g. {GUID_EXAMPLE}"
    text = _require_text(field, value, allowed)
    if not _GUID.match(text):
        raise InputError(field, f"{_show(text)} is not a GUID ({allowed})", value)
    return text


def validate_vm_name(value: object, field: str = "vm_name") -> str:
    """Check an Azure VM resource name: 1–64 characters, letters, digits, ``_ . -``.

    It must start with a letter or digit and end with a letter, digit or underscore (Azure's rule for
    ``Microsoft.Compute/virtualMachines`` names; Windows *computer* names are shorter, but that is the OS).
    """
    allowed = "1-64 letters, digits, '_', '.', '-'; start with a letter or digit; not ending in '.' or '-'"
    text = _require_text(field, value, allowed)
    if len(text) > 64:
        raise InputError(field, f"{_show(text)} is {len(text)} characters long ({allowed})", value)
    if not _VM_NAME.match(text):
        raise InputError(field, f"{_show(text)} is not a valid VM name ({allowed})", value)
    return text


def validate_resource_group(value: object, field: str = "resource_group") -> str:
    """Check a resource group name: 1–90 letters (Unicode), digits, ``_ - . ( )``, not ending in ``.``."""
    allowed = "1-90 letters, digits, '_', '-', '.', '(', ')'; not ending in '.'"
    text = _require_text(field, value, allowed)
    if len(text) > 90:
        raise InputError(field, f"{_show(text)} is {len(text)} characters long ({allowed})", value)
    if text.endswith("."):
        raise InputError(field, f"{_show(text)} ends in '.' ({allowed})", value)
    bad = sorted({ch for ch in text if not (ch.isalnum() or ch in "_-.()")})
    if bad:
        shown = " ".join(repr(ch) for ch in bad[:5])
        raise InputError(field, f"{_show(text)} contains {shown} ({allowed})", value)
    return text


def validate_uami_resource_id(value: object, field: str = "resource_id") -> str:
    """Check a user-assigned identity's ARM resource ID (case-insensitive, as ARM compares them)."""
    allowed = (
        "expected /subscriptions/<subscription GUID>/resourceGroups/<group>/providers/"
        "Microsoft.ManagedIdentity/userAssignedIdentities/<name>"
    )
    text = _require_text(field, value, allowed)
    match = _UAMI_ID.match(text.rstrip("/"))
    if not match:
        raise InputError(
            field, f"{_show(text)} is not a user-assigned identity resource ID ({allowed})", value
        )
    if not _GUID.match(match["sub"]):
        raise InputError(field, f"subscription {_show(match['sub'])} in the resource ID is not a GUID", value)
    validate_resource_group(match["rg"], field=f"{field} (resource group part)")
    if not _UAMI_NAME.match(match["name"]):
        raise InputError(
            field,
            f"identity name {_show(match['name'])} is not valid (3-128 letters, digits, '-', '_'; "
            "start with a letter or digit)",
            value,
        )
    return text.rstrip("/")


def validate_resource(value: object, field: str = "resource") -> str:
    """Check a token audience: one resource URI or scope with a scheme (``https://…`` or ``api://…``).

    Lists, tuples and space/comma separated strings are refused: a managed identity token request carries
    exactly one resource (the SDK says "This credential requires exactly one scope per token request").
    """
    allowed = "one resource URI or scope with a scheme, e.g. https://management.azure.com/.default or api://<app-id>"
    if isinstance(value, (list, tuple, set, frozenset)):
        if len(value) == 1:
            return validate_resource(next(iter(value)), field)
        raise InputError(field, f"got {len(value)} scopes; one scope per token request ({allowed})", value)
    text = _require_text(field, value, allowed)
    if any(sep in text for sep in (" ", ",", ";", "\t")):
        raise InputError(
            field, f"{_show(text)} looks like several scopes; one scope per token request", value
        )
    if "://" not in text:
        raise InputError(field, f"{_show(text)} has no scheme ({allowed})", value)
    if not text.lower().startswith(_URI_SCHEMES):
        scheme = text.split("://", 1)[0]
        raise InputError(field, f"scheme {scheme!r} is not allowed ({allowed})", value)
    host = text.split("://", 1)[1].split("/", 1)[0]
    if not host:
        raise InputError(field, f"{_show(text)} has no host or application ID after the scheme", value)
    return text


def validate_arm_scope(value: object, field: str = "scope") -> str:
    """Check an ARM scope: ``/``, ``/subscriptions/<GUID>``, ``…/resourceGroups/<rg>`` or a resource below."""
    allowed = (
        "expected '/subscriptions/<GUID>', optionally followed by '/resourceGroups/<group>[/providers/...]'"
    )
    text = _require_text(field, value, allowed)
    if text == "/":
        return text
    parts = text.rstrip("/").split("/")
    if parts[0] != "" or len(parts) < 3 or parts[1].lower() != "subscriptions":
        raise InputError(field, f"{_show(text)} is not an ARM scope ({allowed})", value)
    validate_guid(parts[2], field=f"{field} (subscription part)")
    if len(parts) > 3:
        if parts[3].lower() != "resourcegroups" or len(parts) < 5:
            raise InputError(field, f"{_show(text)} is not an ARM scope ({allowed})", value)
        validate_resource_group(parts[4], field=f"{field} (resource group part)")
        if len(parts) > 5 and (parts[5].lower() != "providers" or len(parts) < 9 or len(parts) % 2 == 0):
            raise InputError(
                field,
                f"{_show(text)} is not an ARM scope (after the group: /providers/<Ns>/<type>/<name>)",
                value,
            )
    return text.rstrip("/")


def validate_scenario(value: object, known: Iterable[str] | None = None, field: str = "scenario") -> str:
    """Check an emulator scenario name (lower-case words joined by ``-``), in ``known`` when given."""
    names = sorted(known) if known is not None else []
    allowed = ("one of: " + ", ".join(names)) if names else "lower-case words joined by '-', e.g. healthy"
    text = _require_text(field, value, allowed)
    if not _SCENARIO.match(text) or (names and text not in names):
        raise InputError(field, f"{_show(text)} is not a known scenario ({allowed})", value)
    return text


def validate_one_selector(
    client_id: object = None, object_id: object = None, resource_id: object = None
) -> tuple[str, str] | None:
    """Validate the identity selector: none (system-assigned) or exactly one of the three.

    Returns ``(kind, value)`` with kind ``client_id``/``object_id``/``resource_id``, or None.
    """
    given = {
        k: v
        for k, v in (("client_id", client_id), ("object_id", object_id), ("resource_id", resource_id))
        if v is not None and v != ""  # empty means "not given"; any other value is validated below
    }
    if len(given) > 1:
        raise InputError(
            "identity",
            f"got {' and '.join(given)}; pass at most one of client_id, object_id, resource_id "
            "(they are mutually exclusive)",
        )
    if not given:
        return None
    kind, value = next(iter(given.items()))
    if kind == "resource_id":
        return kind, validate_uami_resource_id(value, field=kind)
    return kind, validate_guid(value, field=kind)


def validate_seconds(value: object, field: str, *, example: float = 15) -> float:
    """A positive, finite number of seconds (a number, or its text from a command line)."""
    number = math.nan
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    if not 0 < number < math.inf:
        raise InputError(
            field, f"{value!r} is not allowed (a positive number of seconds, e.g. {example:g})", value
        )
    return number
