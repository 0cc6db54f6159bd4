"""``mi-helpers record`` and ``compare`` (mi_helpers/transcript.py, mi_helpers/cli/record.py), on an emulator.

A transcript must hold nothing secret or identifying (no token, none of the world's IDs or names) and replace
consistently (one placeholder per value, the same value always the same placeholder); ``compare`` must find
no difference in the emulator's own transcript and exactly the keys someone edited in one.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.world import RG, UAMI_READER, VM

from mi_helpers.cli import main
from mi_helpers.constants import Roles
from mi_helpers.transcript import FORMAT, compare, load

pytestmark = pytest.mark.timeout(120)

_GUID = re.compile(r"[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}", re.IGNORECASE)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("transcript") / "t.json"
    assert main(["record", "--against-emulator", "--output", str(out)]) == 0
    return out


def _exchange(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in doc["exchanges"] if e["name"] == name)


def test_the_transcript_has_the_tutorial_s_calls(recorded: Path) -> None:
    doc = load(recorded)
    assert doc["format"] == FORMAT and doc["target"] == "emulator"
    statuses = {e["name"]: e["response"]["status"] for e in doc["exchanges"]}
    assert statuses == {
        "token": 200,
        "instance": 200,
        "token-wrong-client-id": 400,
        "token-typo-resource": 400,
        "token-no-metadata-header": 400,
        "vm": 200,
        "role-assignments": 200,
    }
    typo = _exchange(doc, "token-typo-resource")["response"]["body"]
    assert typo["error"] == "invalid_resource" and typo["error_description"].startswith("AADSTS500011: ")


def test_nothing_secret_or_identifying_is_left(recorded: Path, emu_module: Any) -> None:
    text = recorded.read_text("utf-8")
    assert not _JWT.search(text)
    world = emu_module.world_dict()
    world_guids = {g.lower() for g in _GUID.findall(json.dumps(world))}
    # built-in role definition IDs (the same in every tenant) and the zero GUID are public constants
    public = {*(g.lower() for g in Roles.BY_ID), "00000000-0000-0000-0000-000000000000"}
    assert {g.lower() for g in _GUID.findall(text)} <= public  # only public constants remain
    assert not (world_guids - public) & {g.lower() for g in _GUID.findall(text)}
    vm = emu_module.world.host_vm
    key = str(vm.ssh_public_key).split()[1]
    names = (VM, RG, UAMI_READER, "azureuser", "Emulated Tenant", "mi-tutorial", "purpose", "10.0.0.4")
    for name in (*names, "000D3A2B4C5D", vm.os_disk_name, key, f"{VM}VMNic"):
        assert name not in text, name


def test_placeholders_are_consistent(recorded: Path) -> None:
    doc = load(recorded)
    token = _exchange(doc, "token")
    instance = _exchange(doc, "instance")["response"]["body"]["compute"]
    vm = _exchange(doc, "vm")["response"]["body"]
    assignments = _exchange(doc, "role-assignments")["response"]["body"]["value"]
    # the same value is always the same placeholder...
    assert token["response"]["body"]["client_id"] == token["claims"]["appid"]
    assert token["claims"]["oid"] == token["claims"]["sub"] == vm["identity"]["principalId"]
    assert token["claims"]["oid"] == assignments[0]["properties"]["principalId"]
    assert instance["subscriptionId"] in vm["id"] and instance["resourceGroupName"] in vm["id"]
    assert instance["name"] == vm["name"] == instance["osProfile"]["computerName"]
    assert (
        instance["storageProfile"]["osDisk"]["name"] == vm["properties"]["storageProfile"]["osDisk"]["name"]
    )
    assert vm["identity"]["tenantId"] in token["claims"]["iss"]
    # ...and different values different ones, named for what they are
    uami = next(iter(vm["identity"]["userAssignedIdentities"].values()))
    assert (
        uami["principalId"] != vm["identity"]["principalId"] and uami["clientId"] != token["claims"]["appid"]
    )
    assert re.fullmatch(r"<principal-\d+>", uami["principalId"]) and re.fullmatch(
        r"<client-\d+>", uami["clientId"]
    )
    assert re.fullmatch(r"<subscription-\d+>", instance["subscriptionId"]) and instance["vmId"].startswith(
        "<vm-id-"
    )


def test_the_emulator_s_own_transcript_compares_without_a_difference(
    recorded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(recorded)]) == 0
    assert "no difference" in capsys.readouterr().out


def test_compare_reports_exactly_the_edited_keys(recorded: Path, tmp_path: Path) -> None:
    doc = load(recorded)
    edited = copy.deepcopy(doc)
    _exchange(edited, "token")["response"]["body"]["token_type"] = "bearer"  # a fact changed
    del _exchange(edited, "vm")["response"]["body"]["etag"]  # a key removed
    _exchange(edited, "instance")["response"]["body"]["compute"]["colour"] = "blue"  # a key added
    _exchange(edited, "role-assignments")["response"]["body"]["value"][0]["properties"]["principalType"] = 1
    _exchange(edited, "token-typo-resource")["response"]["status"] = 401
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(edited), encoding="utf-8")
    from mi_helpers.cli.record import _record_emulator

    found = {(d.exchange, d.path) for d in compare(load(path), _record_emulator())}
    assert found == {
        ("token", "$.token_type"),
        ("vm", "$.etag"),
        ("instance", "$.compute.colour"),
        ("role-assignments", "$.value[0].properties.principalType"),
        ("token-typo-resource", "status"),
    }


def test_compare_shows_a_scenario_that_differs(recorded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(recorded), "--scenario", "no-role-assignment"]) == 1
    out = capsys.readouterr().out
    assert "vm: status: the emulator answers 403, the transcript 200" in out
    assert "difference(s) in 7 exchanges (emulator scenario no-role-assignment)" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [("not json", "is not JSON"), ('{"format": "other"}', "is not a mi-helpers-transcript/1 transcript")],
)
def test_a_file_that_is_not_a_transcript_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "x.json"
    path.write_text(content, encoding="utf-8")
    assert main(["compare", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("mi-helpers compare: error: TRANSCRIPT")


def test_record_refuses_off_azure_in_one_line(tmp_path: Path) -> None:
    """This machine is no Azure VM (no Azure chassis asset tag): ``record`` says so and sends nothing."""
    proc = subprocess.run(
        [sys.executable, "-m", "mi_helpers.cli", "record", "--output", str(tmp_path / "t.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    line = proc.stderr.strip()
    assert "\n" not in line and line.startswith("mi-helpers record: not an Azure VM")
    assert "--against-emulator" in line and not (tmp_path / "t.json").exists()
