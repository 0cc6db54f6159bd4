"""``mi-helpers doctor`` as a real subprocess: JSON report, exit codes, one-line usage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from support.env import child_environ

from mi_helpers.redaction import JWT_PATTERN


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``mi-helpers doctor`` in a child that starts its own emulator (nothing points it at ours)."""
    env = child_environ()
    return subprocess.run(
        [sys.executable, "-m", "mi_helpers.cli", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def _report(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert not JWT_PATTERN.search(proc.stdout + proc.stderr)
    data = json.loads(proc.stdout)
    assert set(data) == {"target", "scenario", "ok", "elapsed_s", "checks"}
    return data


def test_healthy_json_exit_0() -> None:
    proc = _run("--scenario", "healthy", "--json", "--budget", "10")
    assert proc.returncode == 0, proc.stderr
    data = _report(proc)
    assert data["ok"] is True and data["scenario"] == "healthy" and data["target"] == "emulator"
    assert {c["status"] for c in data["checks"]} == {"pass"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--scenario", "no-identity"), "identity-not-assigned"),
        (("--scenario", "imds-hang", "--budget", "6"), "imds-timeout"),  # room for a loaded machine
        (("--scenario", "identity-propagating", "--param", "n=1"), "identity-propagating"),
    ],
)
def test_failure_json_exit_1(args: tuple[str, ...], expected: str) -> None:
    proc = _run(*args, "--json")
    assert proc.returncode == 1, proc.stderr
    data = _report(proc)
    assert data["ok"] is False
    ids = [c["diagnosis"]["id"] for c in data["checks"] if c["diagnosis"]]
    assert ids and ids[0] == expected
    budget = float(args[args.index("--budget") + 1]) if "--budget" in args else 15.0
    assert data["elapsed_s"] <= budget


def test_text_report_and_card() -> None:
    proc = _run("--scenario", "no-role-assignment")
    assert proc.returncode == 1
    assert "✗" in proc.stdout and "arm-authorization-failed" in proc.stdout
    assert "az role assignment create --assignee-object-id" in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("--scenario", "nope"), "scenario"),
        (("--budget=-1",), "--budget"),
        (("--budget", "soon"), "--budget"),
        (("--param", "n=1"), "--param"),
        (("--scenario", "imds-updating", "--param", "novalue"), "--param"),
        (("--client-id", "xyz"), "client_id"),
    ],
)
def test_bad_usage_exit_2_one_line(args: tuple[str, ...], field: str) -> None:
    proc = _run(*args, timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert field in lines[0]
    assert proc.stdout == ""
    if field == "scenario":
        assert "healthy" in lines[0] and "imds-hang" in lines[0]


def test_scenario_on_an_external_emulator_is_restored() -> None:
    """Like a notebook kernel beside ``mi-helpers lab``: the doctor drives that emulator, then restores it."""
    from mi_helpers.emulator import Emulator

    with Emulator(scenario="imds-updating", params={"t": 1.0}) as emu:
        env = child_environ(**emu.environment())
        proc = subprocess.run(
            [sys.executable, "-m", "mi_helpers.cli", "doctor", "--scenario", "no-identity", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        assert proc.returncode == 1, proc.stderr
        data = _report(proc)
        assert next(c["diagnosis"]["id"] for c in data["checks"] if c["diagnosis"]) == "identity-not-assigned"
        assert emu.scenario == "imds-updating"
        assert emu.params["t"] == 1.0
