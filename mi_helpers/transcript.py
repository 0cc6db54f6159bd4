"""Transcripts of the tutorial's requests: record them on a VM, sanitize them, compare them with the emulator.

A *transcript* is what the tutorial's read-only calls got back from one machine's IMDS and ARM: a token for
ARM, the instance metadata, the VM, the identity's role assignments, and the deliberately failing requests
of the lessons (a selector that matches nothing, a mistyped resource, a missing ``Metadata`` header). A
workshop facilitator records one on a real Azure VM (``mi-helpers record``) and contributes it
(docs/contributing-transcripts.md); ``mi-helpers compare`` replays the same requests against a fresh
emulator and reports, key by key, where the emulator differs.

Nothing secret survives :func:`sanitize`: the access token is dropped (a few of its claims are kept, their
IDs replaced), every GUID that is not a public constant (built-in role IDs, first-party application IDs)
becomes a placeholder named for what it is (``<subscription-1>``, ``<principal-2>``), so are resource names,
tags, the admin's name, SSH keys and addresses (``<vm-1>``, ``<tag-1>``, ``<ip-1>``), consistently across the
whole transcript. :func:`compare` then compares shapes and types everywhere, and values only where they are
protocol facts (error codes, resource types, ``token_type``…), messages (numbers masked) and IDs (their
placeholders masked, so ``resourcegroups`` against ``resourceGroups`` shows).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from mi_helpers.constants import Imds, Roles
from mi_helpers.validate import InputError

__all__ = [
    "FORMAT",
    "Difference",
    "Exchange",
    "compare",
    "compare_bodies",
    "load",
    "record",
    "sanitize",
]

FORMAT = "mi-helpers-transcript/1"
#: The api-versions of the recorded ARM reads: the Azure CLI's VM read and the SDK's role assignments.
VM_API_VERSION = "2024-11-01"
ROLE_ASSIGNMENTS_API_VERSION = "2022-04-01"
#: A client ID no identity has: the "wrong selector" lesson.
NO_SUCH_CLIENT_ID = "00000000-0000-0000-0000-000000000000"
#: The mistyped resource of the "wrong audience" lesson.
TYPO_RESOURCE = "https://managements.azure.com/"

_JWT_MARK = "<jwt>"  # what replaces a token
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
}  # fmt: skip
#: Claims kept from the access token (IDs replaced); the others are named only.
_KEPT_CLAIMS = ("aud", "iss", "idp", "appidacr", "idtyp", "ver", "xms_mirid", "oid", "sub", "tid", "appid")
_KEPT_HEADERS = ("content-type", "server", "etag", "www-authenticate", "retry-after")


@dataclass(frozen=True)
class Exchange:
    """One recorded request: where it goes (``imds`` or ``arm``), what it asks, and how."""

    name: str
    service: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...] = (("Metadata", "true"),)
    bearer: bool = False


def _exchanges(resource: str, sub: str, resource_id: str, oid: str) -> list[Exchange]:
    token = (("api-version", Imds.TOKEN_API_VERSION), ("resource", resource))
    return [
        Exchange(
            "token-wrong-client-id", "imds", Imds.TOKEN_PATH, (*token, ("client_id", NO_SUCH_CLIENT_ID))
        ),
        Exchange("token-typo-resource", "imds", Imds.TOKEN_PATH, (token[0], ("resource", TYPO_RESOURCE))),
        Exchange("token-no-metadata-header", "imds", Imds.TOKEN_PATH, token, headers=()),
        Exchange("vm", "arm", resource_id, (("api-version", VM_API_VERSION),), headers=(), bearer=True),
        Exchange(
            "role-assignments",
            "arm",
            f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments",
            (("$filter", f"principalId eq '{oid}'"), ("api-version", ROLE_ASSIGNMENTS_API_VERSION)),
            headers=(),
            bearer=True,
        ),
    ]


# ------------------------------------------------------------------------------------------------ record
def _send(session: Any, base: str, ex: Exchange, token: str | None, ca: str | bool) -> dict[str, Any]:
    headers = dict(ex.headers)
    if ex.bearer and token:
        headers["Authorization"] = f"Bearer {token}"
    shown = {**headers, "Authorization": f"Bearer {_JWT_MARK}"} if "Authorization" in headers else headers
    url = f"{base}{ex.path}?{urlencode(ex.query)}"
    r = session.get(url, headers=headers, timeout=15, verify=ca if ex.service == "arm" else True)
    try:
        body: Any = r.json()
    except ValueError:
        body = r.text[:2000]
    kept = {k: v for k, v in ((h, r.headers.get(h)) for h in _KEPT_HEADERS) if v is not None}
    return {
        "name": ex.name,
        "request": {
            "method": "GET",
            "url": f"<{ex.service}>{ex.path}?{urlencode(ex.query)}",
            "headers": shown,
        },
        "response": {"status": r.status_code, "headers": kept, "body": body},
    }


def record(imds_url: str, arm_url: str, resource: str, *, ca_bundle: str | None = None) -> dict[str, Any]:
    """Run the tutorial's read-only calls against ``imds_url``/``arm_url`` and return the raw transcript.

    The token itself is already replaced (``<jwt>``); the raw transcript still holds the machine's IDs and
    names: pass it to :func:`sanitize` before writing it anywhere.
    """
    import jwt
    import requests

    session = requests.Session()
    session.trust_env = False  # IMDS and the emulator are never reached through a proxy
    ca: str | bool = ca_bundle or True
    token_ex = Exchange(
        "token", "imds", Imds.TOKEN_PATH, (("api-version", Imds.TOKEN_API_VERSION), ("resource", resource))
    )
    instance_ex = Exchange(
        "instance", "imds", Imds.INSTANCE_PATH, (("api-version", Imds.INSTANCE_API_VERSION),)
    )
    with session:
        first = _send(session, imds_url, token_ex, None, ca)
        instance = _send(session, imds_url, instance_ex, None, ca)
        token = (
            str((first["response"]["body"] or {}).get("access_token", ""))
            if isinstance(first["response"]["body"], dict)
            else ""
        )
        claims = jwt.decode(token, options={"verify_signature": False}) if token else {}
        compute = (
            instance["response"]["body"].get("compute", {})
            if isinstance(instance["response"]["body"], dict)
            else {}
        )
        rest = _exchanges(
            resource,
            str(compute.get("subscriptionId", "")),
            str(compute.get("resourceId", "")),
            str(claims.get("oid", "")),
        )
        exchanges = [first, instance] + [
            _send(session, arm_url if ex.service == "arm" else imds_url, ex, token, ca) for ex in rest
        ]
    if isinstance(first["response"]["body"], dict) and "access_token" in first["response"]["body"]:
        first["response"]["body"]["access_token"] = _JWT_MARK  # the token never leaves this function
    first["claims"] = {k: claims.get(k, "<absent>") for k in _KEPT_CLAIMS} | {
        k: "<omitted>" for k in sorted(claims) if k not in _KEPT_CLAIMS
    }
    return {
        "format": FORMAT,
        "recorded": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "exchanges": exchanges,
    }


# ------------------------------------------------------------------------------------------------ sanitize
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
        return _JWT.sub(_JWT_MARK, value)
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
            body["access_token"] = _JWT_MARK
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


def load(path: str | Path) -> dict[str, Any]:
    """Read a transcript file; a file that is not one is an :class:`InputError` naming what is wrong."""
    p = Path(path)
    try:
        data = json.loads(p.read_text("utf-8"))
    except OSError as exc:
        raise InputError("TRANSCRIPT", f"cannot read {str(p)!r}: {exc.strerror}", str(p)) from exc
    except json.JSONDecodeError as exc:
        raise InputError(
            "TRANSCRIPT", f"{str(p)!r} is not JSON ({exc.msg}, line {exc.lineno})", str(p)
        ) from exc
    if (
        not isinstance(data, dict)
        or data.get("format") != FORMAT
        or not isinstance(data.get("exchanges"), list)
    ):
        raise InputError(
            "TRANSCRIPT", f"{str(p)!r} is not a {FORMAT} transcript (made by mi-helpers record)", str(p)
        )
    return data


# ------------------------------------------------------------------------------------------------ compare
#: Keys whose values are protocol facts: the emulator must say the same.
_FACTS = (
    "token_type", "error", "error_codes", "code", "type", "provisioningState", "principalType", "resource",
    "isolationScope", "securityType", "createOption", "caching", "diskControllerType", "patchMode",
    "assessmentMode", "provider", "idtyp", "ver", "appidacr", "error_uri",
)  # fmt: skip
FACT_KEYS = frozenset(_FACTS)
#: Keys whose values are texts: compared with numbers masked (trace IDs and times already are placeholders).
MESSAGE_KEYS = frozenset({"message", "error_description"})
#: Facts that depend on how the VM is set up, not on the protocol.
_WORLD_PATHS = ("identity.type",)
_DATA_MAPS = frozenset({"tags", "userAssignedIdentities"})


@dataclass(frozen=True)
class Difference:
    """Where the emulator's answer departs from the transcript's."""

    exchange: str
    path: str
    what: str

    def __str__(self) -> str:
        return f"{self.exchange}: {self.path}: {self.what}"


def _masked(value: str) -> str:
    return re.sub(r"\d+", "#", _PLACEHOLDER.sub(lambda m: f"<{m.group(1)}>", value))


def _kind(value: Any) -> str:
    return {
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), "null")


def _values_differ(key: str, path: str, ref: Any, got: Any) -> bool:
    if ref == got:
        return False
    if isinstance(ref, str) and isinstance(got, str):
        if key in MESSAGE_KEYS:
            return _masked(ref) != _masked(got)
        if _PLACEHOLDER.search(ref) or _PLACEHOLDER.search(got):
            return _masked(ref) != _masked(got)
    return key in FACT_KEYS and not any(path.endswith(w) for w in _WORLD_PATHS)


def _compare(ref: Any, got: Any, path: str, key: str, out: list[tuple[str, str]]) -> None:
    if _kind(ref) != _kind(got):
        out.append(
            (
                path,
                f"the emulator sends {_kind(got)} {_short(got)}, the transcript {_kind(ref)} {_short(ref)}",
            )
        )
    elif isinstance(ref, dict) and key in _DATA_MAPS:  # keys are data: each value against the first recorded
        sample = next(iter(ref.values()), None)
        for k, v in got.items():
            if sample is not None:
                _compare(sample, v, f"{path}[{k!r}]", "", out)
    elif isinstance(ref, dict):
        _compare_objects(ref, got, path, out)
    elif isinstance(ref, list):
        for i, item in enumerate(got):
            if ref:
                _compare(ref[min(i, len(ref) - 1)], item, f"{path}[{i}]", key, out)
    elif _values_differ(key, path.removeprefix("$."), ref, got):
        out.append((path, f"the emulator says {_short(got)}, the transcript {_short(ref)}"))


def _compare_objects(ref: dict[str, Any], got: dict[str, Any], path: str, out: list[tuple[str, str]]) -> None:
    for k in ref:
        if k not in got:
            out.append((f"{path}.{k}", f"missing in the emulator (the transcript has {_short(ref[k])})"))
    for k in got:
        if k not in ref:
            out.append((f"{path}.{k}", f"the emulator adds it ({_short(got[k])})"))
        else:
            _compare(ref[k], got[k], f"{path}.{k}", k, out)


def compare_bodies(reference: Any, actual: Any) -> list[tuple[str, str]]:
    """(JSON path, what differs) for every difference of ``actual`` from ``reference``, by the rules of
    :func:`compare`: shapes and types everywhere, values where they are facts, texts or IDs."""
    out: list[tuple[str, str]] = []
    _compare(reference, actual, "$", "", out)
    return out


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def compare(reference: dict[str, Any], actual: dict[str, Any]) -> list[Difference]:
    """Every difference of ``actual`` (a fresh emulator recording) from ``reference`` (the transcript)."""
    got = {ex.get("name"): ex for ex in actual.get("exchanges", [])}
    diffs: list[Difference] = []
    for ex in reference.get("exchanges", []):
        name = str(ex.get("name"))
        other = got.get(name)
        if other is None:
            diffs.append(Difference(name, "$", "the emulator recording has no such exchange"))
            continue
        found: list[tuple[str, str]] = []
        ref_resp, got_resp = ex.get("response", {}), other.get("response", {})
        if ref_resp.get("status") != got_resp.get("status"):
            found.append(
                (
                    "status",
                    f"the emulator answers {got_resp.get('status')}, the transcript {ref_resp.get('status')}",
                )
            )
        ref_type = ref_resp.get("headers", {}).get("content-type")
        got_type = got_resp.get("headers", {}).get("content-type")
        if ref_type is not None and ref_type != got_type:
            found.append(
                ("headers.content-type", f"the emulator sends {got_type!r}, the transcript {ref_type!r}")
            )
        _compare(ref_resp.get("body"), got_resp.get("body"), "$", "", found)
        if "claims" in ex:
            _compare(ex["claims"], other.get("claims", {}), "claims", "", found)
        diffs.extend(Difference(name, p, w) for p, w in found)
    return diffs
