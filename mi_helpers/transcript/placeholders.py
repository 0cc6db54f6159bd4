"""Sanitizing a transcript: every ID, name, key and address of the machine becomes a consistent placeholder.

A GUID that is not a public constant (built-in role IDs, first-party application IDs, the lesson's "no such
client") becomes ``<role-N>``, named for what it is (``<subscription-1>``, ``<principal-2>``: from the key
or path segment it appears under) and numbered as it appears; resource names become ``<vm-1>``, ``<rg-1>``…,
tags ``<tag-1>``/``<tag-value-1>``, the admin ``<user-1>``, SSH keys, IPs and MACs likewise. The same value is
always the same placeholder, anywhere in the transcript; a JWT anywhere is ``<jwt>``, and :func:`sanitize`
refuses to return one that still holds a token.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from mi_helpers.constants import Roles

__all__ = ["FORMAT", "JWT_MARK", "NO_SUCH_CLIENT_ID", "PUBLIC_GUIDS", "sanitize"]

FORMAT = "mi-helpers-transcript/1"
JWT_MARK = "<jwt>"  # what replaces a token
#: A client ID no identity has: the "wrong selector" lesson.
NO_SUCH_CLIENT_ID = "00000000-0000-0000-0000-000000000000"
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_PLACEHOLDER = re.compile(r"<([a-z][a-z-]*)-\d+>")
_TENANT_NAME = re.compile(r"(in the tenant named )(.+?)(\. This can happen)")
#: GUIDs that are public facts, kept as they are: built-in role definitions, first-party apps, the lesson's.
PUBLIC_GUIDS = frozenset(
    {g.lower() for g in Roles.BY_ID}
    | {
        NO_SUCH_CLIENT_ID,
        "797f4846-ba00-4fd7-ba43-dac1f8f63013",  # Azure Resource Manager
        "00000003-0000-0000-c000-000000000000",  # Microsoft Graph
    }
)
#: JSON keys whose GUID value says what the GUID is (the placeholder's name).
_GUID_ROLES = {
    "subscriptionid": "subscription", "subscription": "subscription", "tenantid": "tenant", "tid": "tenant",
    "principalid": "principal", "oid": "principal", "sub": "principal", "object_id": "principal",
    "clientid": "client", "client_id": "client", "appid": "client", "vmid": "vm-id",
    "trace_id": "trace", "correlation_id": "correlation", "createdby": "principal", "updatedby": "principal",
    "name": "assignment", "placementgroupid": "placement-group",
}  # fmt: skip
#: Path segments after which a resource ID names something (the placeholder's name).
_NAME_ROLES = {
    "resourcegroups": "rg", "virtualmachines": "vm", "userassignedidentities": "identity", "disks": "disk",
    "networkinterfaces": "nic", "roleassignments": "assignment", "subscriptions": "subscription",
    "vaults": "vault", "storageaccounts": "account",
}  # fmt: skip


class _Names:
    """Consistent placeholders: one per distinct value, named for what it is, numbered as they appear."""

    def __init__(self) -> None:
        self.by_value: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self.guid_roles: dict[str, str] = {}

    def of(self, value: str, role: str) -> str:
        key = value.lower() if _GUID.fullmatch(value) else value
        if key not in self.by_value:
            self.counts[role] = self.counts.get(role, 0) + 1
            self.by_value[key] = f"<{role}-{self.counts[role]}>"
        return self.by_value[key]


#: What a GUID is, from the path segment or host before it.
_GUID_CONTEXT = (
    ("subscriptions/", "subscription"),
    ("sts.windows.net/", "tenant"),
    ("roleassignments/", "assignment"),
)


def _learn_guid_roles(doc: Any, names: _Names, key: str = "") -> None:
    """First pass: the most telling name for each GUID, from a key or path segment it appears under."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            _learn_guid_roles(v, names, k)
    elif isinstance(doc, list):
        for v in doc:
            _learn_guid_roles(v, names, key)
    elif isinstance(doc, str):
        for m in _GUID.finditer(doc):
            guid = m.group(0).lower()
            before = doc[: m.start()].lower()
            role = next((r for ctx, r in _GUID_CONTEXT if before.endswith(ctx)), None)
            role = role or (_GUID_ROLES.get(key.lower()) if m.group(0) == doc else None)
            if role and guid not in names.guid_roles:
                names.guid_roles[guid] = role


def _walk_strings(doc: Any, fn: Callable[[str, str], str], key: str = "") -> Any:
    """``doc`` with every string (the keys of data maps too) passed through ``fn(value, key)``."""
    if isinstance(doc, dict):
        data_map = key.lower() in ("tags", "userassignedidentities")
        return {(fn(k, key) if data_map else k): _walk_strings(v, fn, k) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_walk_strings(v, fn, key) for v in doc]
    return fn(doc, key) if isinstance(doc, str) else doc


def _collect_map(low: str, value: Any, names: _Names) -> bool:
    """Names in a data map (``tags``, ``userAssignedIdentities``, ``tagsList``); True if ``value`` is one."""
    if low in ("tags", "userassignedidentities") and isinstance(value, dict):
        for k, v in value.items():
            if low == "tags":
                names.of(str(k), "tag")
                names.of(str(v), "tag-value")
            else:
                _collect_ids(str(k), names)
            _collect_names(v, names)
        return True
    if low == "tagslist" and isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                names.of(str(item.get("name", "")), "tag")
                names.of(str(item.get("value", "")), "tag-value")
        return True
    return False


def _collect_names(doc: Any, names: _Names) -> None:
    """Register the names that identify the machine: resource-ID segments, IMDS fields, tags, keys, IPs."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            if _collect_map(k.lower(), v, names):
                continue
            if isinstance(v, str) and v:
                _collect_field(k.lower(), v, names)
            _collect_names(v, names)
    elif isinstance(doc, list):
        for v in doc:
            _collect_names(v, names)
    elif isinstance(doc, str):
        _collect_ids(doc, names)


_FIELD_ROLES = {
    "computername": "vm", "resourcegroupname": "rg", "adminusername": "user", "keydata": "ssh-public-key",
    "macaddress": "mac", "vmscalesetname": "scale-set", "placementgroupid": "placement-group",
}  # fmt: skip


def _collect_field(key: str, value: str, names: _Names) -> None:
    if key == "tags" and ":" in value:  # IMDS's "k:v;k2:v2"
        for pair in value.split(";"):
            tk, _, tv = pair.partition(":")
            names.of(tk, "tag")
            names.of(tv, "tag-value")
    elif key == "path" and value.startswith("/home/"):
        names.of(value.split("/")[2], "user")
    elif key in _FIELD_ROLES and not _GUID.fullmatch(value):
        names.of(value, _FIELD_ROLES[key])
    else:
        _collect_ids(value, names)


def _collect_ids(text: str, names: _Names) -> None:
    parts = text.split("/")
    for i, part in enumerate(parts[:-1]):
        role = _NAME_ROLES.get(part.lower())
        if role and parts[i + 1] and not _GUID.fullmatch(parts[i + 1]):
            names.of(parts[i + 1], role)
    for ip in _IPV4.findall(text):
        names.of(ip, "ip")


def _replace(value: str, key: str, names: _Names, values: list[tuple[str, str]]) -> str:
    if _JWT.search(value):
        return _JWT.sub(JWT_MARK, value)
    value = _TENANT_NAME.sub(lambda m: m.group(1) + names.of(m.group(2), "tenant-name") + m.group(3), value)

    def guid(m: re.Match[str]) -> str:
        g = m.group(0)
        return g if g.lower() in PUBLIC_GUIDS else names.of(g, names.guid_roles.get(g.lower(), "guid"))

    value = _GUID.sub(guid, value)
    exact = names.by_value.get(value)
    if exact is not None:
        return exact
    for original, placeholder in values:  # longest first; whole path segments or words only
        if original in value:
            value = re.sub(rf"(?<![\w.-]){re.escape(original)}(?![\w-])", placeholder, value)
    return value


def sanitize(raw: dict[str, Any]) -> dict[str, Any]:
    """A transcript with nothing secret or identifying left in it (see the module docstring)."""
    names = _Names()
    exchanges = raw.get("exchanges", [])
    replies = [[ex.get("response", {}).get("body"), ex.get("claims")] for ex in exchanges]
    _learn_guid_roles(replies, names)
    _collect_names(replies, names)
    values = sorted(
        ((v, p) for v, p in names.by_value.items() if v and not _GUID.fullmatch(v)), key=lambda t: -len(t[0])
    )
    clean = [
        {**ex, "request": _walk_strings(ex.get("request", {}), lambda v, k: _replace(v, k, names, values)),
         "response": _walk_strings(ex.get("response", {}), lambda v, k: _replace(v, k, names, values)),
         **({"claims": _walk_strings(ex["claims"], lambda v, k: _replace(v, k, names, values))}
            if "claims" in ex else {})}
        for ex in exchanges
    ]  # fmt: skip
    for ex in clean:
        body = ex["response"].get("body")
        if isinstance(body, dict) and "access_token" in body:
            body["access_token"] = JWT_MARK
    if any(_JWT.search(s) for s in _strings(clean)):  # a safety net: a token never gets through
        raise ValueError("a token survived sanitizing")
    return {"format": FORMAT, "recorded": raw.get("recorded", ""), "exchanges": clean}


def _strings(doc: Any) -> Iterator[str]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _strings(v)
    elif isinstance(doc, str):
        yield doc
