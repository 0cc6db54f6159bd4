"""The emulator against real responses recorded from Azure (``recorded/``), key by key.

Each fixture is one real reply, copied from a public recording (the Azure CLI's test recordings, a body a
user pasted into an issue) with its source named in the file and its IDs replaced. The test asks the
emulator the same question and compares with the rules of ``mi-helpers compare``
(:func:`mi_helpers.transcript.compare_bodies`): every key on both sides, the same JSON types, the same
values where they are protocol facts (types, states, error codes), IDs of the same shape (their GUIDs and
names masked, so ``resourcegroups`` against ``resourceGroups`` shows), plus the fixture's ``patterns``
(a format both values must have) and headers. A difference the fixture does not explain fails; so does an
explanation that no longer matches a difference. A later change that drifts from Azure fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from support.emulator import RawArm, RawImds
from support.world import OTHER_VM, RG, SUB, SYS_PRINCIPAL, UAMI_READER, UAMI_READER_PRINCIPAL, VM

from mi_helpers.constants import Roles
from mi_helpers.transcript import compare_bodies

RECORDED = Path(__file__).parent / "recorded"
FIXTURES = sorted(p.name for p in RECORDED.glob("*.json"))
#: Headers whose values must be equal; the others of a fixture must only be present.
EQUAL_HEADERS = {
    "cache-control",
    "content-type",
    "expires",
    "pragma",
    "strict-transport-security",
    "x-content-type-options",
}
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_NAMED = re.compile(
    r"(?<=/)(resourceGroups|resourcegroups|virtualMachines|userAssignedIdentities|disks|networkInterfaces|"
    r"storageAccounts|roleAssignments)/[^/]+"
)
_BUILTIN_ROLE = Roles.READER
_TENANT = re.compile(r"(tenant named ).+?(\. This can happen)")


def _masked(doc: Any) -> Any:
    """IDs as shapes: GUIDs (but the built-in Reader's), resource names and the tenant's display name in an
    AADSTS text become placeholders."""
    if isinstance(doc, dict):  # keys stay: a data map's keys are data, only its values are compared
        return {k: _masked(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_masked(v) for v in doc]
    if isinstance(doc, str):
        text = _GUID.sub(lambda m: m.group(0) if m.group(0) == _BUILTIN_ROLE else "<guid-1>", doc)
        text = _TENANT.sub(r"\1<tenant-1>\2", text)
        return _NAMED.sub(lambda m: m.group(1) + "/<name-1>", text) if text.startswith("/") else text
    return doc


def _at(doc: Any, path: str) -> Any:
    for part in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path.removeprefix("$")):
        key, index = part
        doc = doc[int(index)] if index else doc[key]
    return doc


def _fill(text: str) -> str:
    base = f"/subscriptions/{SUB}/resourceGroups/{RG}"
    return (
        text.replace("{vm}", f"{base}/providers/Microsoft.Compute/virtualMachines/{VM}")
        .replace("{other_vm}", f"{base}/providers/Microsoft.Compute/virtualMachines/{OTHER_VM}")
        .replace("{uami}", f"{base}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{UAMI_READER}")
        .replace("{sub}", SUB)
        .replace("{rg}", RG)
        .replace("{principal}", SYS_PRINCIPAL if "roleAssignments" in text else UAMI_READER_PRINCIPAL)
    )


def _ask(emu: Any, request: dict[str, Any]) -> Any:
    # A recorded role-assignment list is of a principal with one role (Reader on a resource group): in the
    # default world that is uami-reader (the VM's system identity also holds its data roles).
    who = UAMI_READER_PRINCIPAL if "roleAssignments" in request["path"] else SYS_PRINCIPAL
    params = {k: _fill(v).replace("{principal}", who) for k, v in request.get("params", {}).items()}
    params = {k: v.replace(UAMI_READER_PRINCIPAL, who) for k, v in params.items()}
    imds = RawImds(emu.imds_url)
    if request.get("service") == "imds":
        return imds.get(request["path"], params={"api-version": request["api-version"], **params})
    arm = RawArm(emu.arm_url, emu.ca_bundle)
    try:
        return arm.get(_fill(request["path"]), token=imds.access_token(), api_version=request["api-version"],
                       params=params, method=request["method"])  # fmt: skip
    finally:
        arm.close()


@pytest.mark.parametrize("name", FIXTURES)
def test_the_emulator_answers_as_azure_was_recorded(name: str, emu: Any) -> None:
    fixture = json.loads((RECORDED / name).read_text("utf-8"))
    assert fixture["source"] and fixture["sanitized"], f"{name}: name the source and what was replaced"
    r = _ask(emu, fixture["request"])
    assert r.status_code == fixture["status"], (r.status_code, r.text[:300])
    body = r.json()
    if "entry" in fixture["request"]:  # one entry of a list: the emulator's first of that type
        body = next(i for i in body["value"] if i["type"] == fixture["request"]["entry"])
    recorded = fixture["body"]
    found = dict(compare_bodies(_masked(recorded), _masked(body)))
    explained = fixture.get("explained", {})
    unexplained = {p: w for p, w in found.items() if p not in explained}
    assert not unexplained, f"{name}: the emulator departs from the recording:\n  " + "\n  ".join(
        f"{p}: {w}" for p, w in unexplained.items()
    )
    stale = [p for p in explained if p not in found]
    assert not stale, f"{name}: explanations of differences that no longer exist: {stale}"
    for path, pattern in fixture.get("patterns", {}).items():
        assert re.search(pattern, str(_at(recorded, path))), f"{name}: the recording does not match {path}"
        assert re.search(pattern, str(_at(body, path))), f"{name}: {path} = {_at(body, path)!r} !~ {pattern}"
    if fixture.get("ordered"):
        assert list(body) == list(recorded), f"{name}: key order {list(body)} != {list(recorded)}"
    headers = {k.lower(): v for k, v in r.headers.items()}
    for key, value in fixture.get("headers", {}).items():
        assert key in headers, f"{name}: header {key} missing"
        if key in EQUAL_HEADERS:
            assert headers[key] == value, f"{name}: header {key}: {headers[key]!r} != {value!r}"


def test_the_comparison_is_not_vacuous(emu: Any) -> None:
    """A drifted body fails: a key renamed, a type changed, a fact changed, an ID of another shape."""
    fixture = json.loads((RECORDED / "user_assigned_identity_2024-11-30.json").read_text("utf-8"))
    body = _ask(emu, fixture["request"]).json()
    drifted = json.loads(json.dumps(body))
    drifted["properties"]["clientID"] = drifted["properties"].pop("clientId")
    drifted["properties"]["isolationScope"] = "Regional"
    drifted["tags"] = []
    drifted["id"] = drifted["id"].replace("/resourcegroups/", "/resourceGroups/")
    found = dict(compare_bodies(_masked(fixture["body"]), _masked(drifted)))
    assert set(found) == {
        "$.properties.clientId",
        "$.properties.clientID",
        "$.properties.isolationScope",
        "$.tags",
        "$.id",
    }
