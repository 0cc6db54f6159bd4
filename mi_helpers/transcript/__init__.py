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
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from mi_helpers.constants import Imds
from mi_helpers.transcript.placeholders import FORMAT, JWT_MARK, NO_SUCH_CLIENT_ID, sanitize
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

#: The api-versions of the recorded ARM reads: the Azure CLI's VM read and the SDK's role assignments.
VM_API_VERSION = "2024-11-01"
ROLE_ASSIGNMENTS_API_VERSION = "2022-04-01"
#: The mistyped resource of the "wrong audience" lesson.
TYPO_RESOURCE = "https://managements.azure.com/"

_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_PLACEHOLDER = re.compile(r"<([a-z][a-z-]*)-\d+>")
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
    shown = {**headers, "Authorization": f"Bearer {JWT_MARK}"} if "Authorization" in headers else headers
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
        first["response"]["body"]["access_token"] = JWT_MARK  # the token never leaves this function
    first["claims"] = {k: claims.get(k, "<absent>") for k in _KEPT_CLAIMS} | {
        k: "<omitted>" for k in sorted(claims) if k not in _KEPT_CLAIMS
    }
    return {
        "format": FORMAT,
        "recorded": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "exchanges": exchanges,
    }


# ------------------------------------------------------------------------------------------------ sanitize
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
