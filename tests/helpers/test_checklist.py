"""The checklist (``mi.doctor``) against the embedded emulator: every scenario names its diagnosis within the
budget.

The scenario sweep lives here (one module) and reuses the package's embedded emulator, switching scenarios.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from support.timing import SLACK
from support.world import HELLO_BLOB, SECRET_VALUES

from mi_helpers.checklist import Check, DoctorReport, doctor
from mi_helpers.emulator import SCENARIOS
from mi_helpers.redaction import JWT_PATTERN
from mi_helpers.validate import InputError

# scenario -> (expected diagnosis id, status of the check carrying it); None = everything passes.
EXPECTED: dict[str, tuple[str, str] | None] = {
    "healthy": None,
    "no-identity": ("identity-not-assigned", "fail"),
    "user-assigned-only": ("user-assigned-selector-required", "warn"),
    "multiple-user-assigned": ("user-assigned-selector-required", "fail"),
    "no-role-assignment": ("arm-authorization-failed", "fail"),
    "role-propagating": ("role-propagating", "warn"),
    "identity-propagating": ("identity-propagating", "warn"),
    "imds-unreachable": ("imds-unreachable", "fail"),
    "imds-hang": ("imds-timeout", "fail"),
    "imds-updating": ("imds-updating", "warn"),
    "imds-throttled": ("imds-throttled", "warn"),  # after the simulated load, a refill lets it through
    "imds-server-error": ("imds-server-error", "warn"),
    "foreign-metadata-server": ("non-imds-response", "fail"),
    "proxy-intercept": ("proxy-intercepts-imds", "fail"),
    "legacy-extension-endpoint": ("legacy-extension-endpoint", "fail"),
    "expired-token": ("arm-token-expired", "fail"),
    "arm-throttled": ("arm-throttled", "warn"),  # the doctor's second read waits for Retry-After
    "tls-untrusted": ("tls-untrusted", "fail"),
    "docker-desktop-unreachable": ("imds-unreachable", "fail"),
    # the data-plane scenarios: doctor checks them only when given --secret-url / --blob-url
    "kv-access-policy-missing": None,
    "kv-rbac-missing": None,
    "storage-data-role-missing": None,
    "data-role-propagating": None,
    "storage-wrong-audience": None,
}
# Small windows so the sweep stays fast (the doctor's defaults are used for the rest).
PARAMS: dict[str, dict[str, Any]] = {
    "imds-updating": {"t": 1.0},
    "identity-propagating": {"n": 1},
    "role-propagating": {"n": 1},
    "imds-server-error": {"n": 1},
}
BUDGET = 8.0
CHECK_IDS = [
    "target",
    "environment",
    "imds-reachable",
    "identity",
    "arm-token",
    "token-claims",
    "vm-readable",
    "principal-matches",
    "role-assignments",
]


@pytest.fixture(autouse=True)
def _healthy(emu: Any) -> Any:
    """Every test starts (and the restore is checked) against the package emulator in ``healthy``."""
    return emu


def _assert_no_token(report: DoctorReport) -> None:
    for out in (report.to_json(), str(report), repr(report), report._repr_html_()):
        assert not JWT_PATTERN.search(out), "a whole token leaked into the doctor output"


def test_every_scenario_is_mapped() -> None:
    assert set(SCENARIOS) == set(EXPECTED), "a scenario was added or removed: map it to its diagnosis"


@pytest.mark.parametrize("name", list(EXPECTED))
def test_scenario_sweep(name: str, emu: Any) -> None:
    report = doctor(scenario=name, budget=BUDGET, params=PARAMS.get(name))
    assert report.scenario == name
    assert report.target == "emulator"
    assert [c.id for c in report.checks] == CHECK_IDS
    assert report.elapsed_s <= BUDGET + SLACK
    _assert_no_token(report)
    expected = EXPECTED[name]
    if expected is None:
        assert report.ok, str(report)
        assert all(c.status == "pass" and c.diagnosis is None for c in report.checks)
        return
    did, status = expected
    assert not report.ok
    flagged = [c for c in report.checks if c.status in ("fail", "warn")]
    assert flagged, str(report)
    carrying = [c for c in flagged if c.diagnosis is not None and c.diagnosis.id == did]
    assert carrying, f"{name}: expected {did}, got {report.diagnosis_ids}\n{report}"
    assert carrying[-1].status == status
    # the first problem found is this one (an environment warning may name the same cause earlier)
    assert report.diagnosis_ids[0] == did
    if status == "fail":  # everything after the first failure depends on it here, so it is skipped
        failed = next(c for c in report.checks if c.status == "fail")
        later = report.checks[report.checks.index(failed) + 1 :]
        assert all(c.status == "skip" and c.detail.startswith("skipped: needs") for c in later)


def test_restores_scenario_and_environment(emu: Any) -> None:
    before = dict(os.environ)
    report = doctor(scenario="proxy-intercept", budget=BUDGET)
    assert "proxy-intercepts-imds" in report.diagnosis_ids
    assert dict(os.environ) == before
    assert emu.scenario == "healthy"
    assert doctor(budget=BUDGET).ok  # the process still works against the restored emulator


def test_variants_of_foreign_and_proxy(emu: Any) -> None:
    mmds = doctor(scenario="foreign-metadata-server", budget=BUDGET, params={"mode": "mmds"})
    assert mmds.diagnosis_ids[0] == "non-imds-response"
    forward = doctor(scenario="proxy-intercept", budget=BUDGET, params={"mode": "forward"})
    assert "proxy-intercepts-imds" in forward.diagnosis_ids


def test_hang_respects_a_small_budget(emu: Any) -> None:
    report = doctor(scenario="imds-hang", budget=1.5)
    assert report.elapsed_s <= 1.5 + SLACK
    assert report.diagnosis_ids == ["imds-timeout"]
    assert [c.status for c in report.checks][3:] == ["skip"] * 6


def test_without_scenario_uses_current_target(emu: Any) -> None:
    report = doctor(budget=BUDGET, client_id="1b3d5f7a-9c1e-4b3d-8f5a-7c9e1b3d5f7a")
    assert report.scenario is None
    assert report.ok, str(report)
    principal = next(c for c in report.checks if c.id == "principal-matches")
    assert "user-assigned uami-reader" in principal.detail


def test_unattached_client_id_is_identity_not_assigned(emu: Any) -> None:
    report = doctor(scenario="healthy", budget=BUDGET, client_id="2c4e6a8b-0d2f-4c4e-8a6b-8d0f2c4e6a8b")
    identity = next(c for c in report.checks if c.id == "identity")
    assert identity.status == "fail"
    assert identity.diagnosis is not None and identity.diagnosis.id == "identity-not-assigned"
    assert "2c4e6a8b-0d2f-4c4e-8a6b-8d0f2c4e6a8b" in identity.diagnosis.commands["az"]


def test_json_shape_and_rendering(emu: Any) -> None:
    report = doctor(scenario="no-identity", budget=BUDGET)
    data = json.loads(report.to_json())
    assert set(data) == {"target", "scenario", "ok", "elapsed_s", "checks"}
    assert data["ok"] is False and data["scenario"] == "no-identity"
    for c in data["checks"]:
        assert set(c) == {"id", "title", "status", "detail", "diagnosis"}
        assert c["status"] in {"pass", "fail", "warn", "skip"}
        if c["diagnosis"] is not None:
            assert set(c["diagnosis"]) == {"id", "cause", "fix", "commands"}
            assert set(c["diagnosis"]["commands"]) == {"az", "powershell"}
    failed = [c for c in data["checks"] if c["status"] == "fail"]
    assert failed[0]["diagnosis"]["id"] == "identity-not-assigned"
    assert (
        "az vm identity assign -g rg-mi-tutorial -n vm-mi-tutorial"
        in failed[0]["diagnosis"]["commands"]["az"]
    )
    text = str(report)
    assert "✓" in text and "✗" in text and "–" in text
    assert "Cause:" in text and "Fix:" in text  # the diagnosis card follows the table
    html = report._repr_html_()
    for label in ("pass", "fail", "skip", "Cause:", "Fix:"):
        assert label in html


def test_bad_inputs_are_one_line_errors() -> None:
    for kwargs, field in (
        ({"budget": -1}, "budget"),
        ({"budget": 0}, "budget"),
        ({"budget": "fast"}, "budget"),
        ({"scenario": "nope"}, "scenario"),
        ({"client_id": "not-a-guid"}, "client_id"),
        ({"params": {"n": 1}}, "params"),
        ({"scenario": "imds-updating", "params": {"bogus": 1}}, "bogus"),
    ):
        with pytest.raises(InputError) as info:
            doctor(**kwargs)
        msg = str(info.value)
        assert msg.startswith(field) and "\n" not in msg, msg
    with pytest.raises(InputError) as info:
        doctor(scenario="nope")
    assert "healthy" in str(info.value) and "imds-hang" in str(info.value)


def test_check_to_dict_without_diagnosis() -> None:
    c = Check("target", "Target", "pass", "emulator")
    assert c.to_dict() == {
        "id": "target",
        "title": "Target",
        "status": "pass",
        "detail": "emulator",
        "diagnosis": None,
    }


@pytest.mark.parametrize(
    ("looks_like_azure", "statuses", "diagnosis"),
    [(False, ["warn", "pass", "fail"], "not-on-azure"), (True, ["pass", "pass", "fail"], "imds-unreachable")],
)
def test_forced_azure_is_judged_by_the_machine(
    isolated_target: None,
    monkeypatch: pytest.MonkeyPatch,
    looks_like_azure: bool,
    statuses: list[str],
    diagnosis: str,
) -> None:
    """MI_HELPERS_TARGET=azure where nothing answers: off an Azure VM that is "not on Azure", on one it is
    an unreachable IMDS. Both outcomes are checked, so the SMBIOS answer the test injects really decides."""
    import socket

    from mi_helpers import targeting

    with socket.socket() as s:  # a loopback port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for var in ("MI_HELPERS_EMULATOR_ADMIN", "MI_HELPERS_EMULATOR_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MI_HELPERS_TARGET", "azure")
    monkeypatch.setenv("MI_HELPERS_CLOUD", "public")  # no instance-metadata lookup for the cloud
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MI_HELPERS_ARM_URL", f"https://127.0.0.1:{port}")
    answer = targeting.Detection(looks_like_azure, "test: SMBIOS answer")
    monkeypatch.setattr(targeting, "detect", lambda *a, **k: answer)
    report = doctor(budget=BUDGET)
    assert report.target == "azure"
    assert [c.status for c in report.checks[:3]] == statuses
    assert report.diagnosis_ids == [diagnosis]


def test_emulator_switch_failure_is_a_report(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from mi_helpers import targeting

    real = targeting.use_emulator

    def broken(scenario: str = "healthy", **params: Any) -> Any:
        if scenario != "healthy":
            raise RuntimeError("listener failed to start")
        return real(scenario, **params)

    monkeypatch.setattr(targeting, "use_emulator", broken)
    before = dict(os.environ)
    report = doctor(scenario="no-identity", budget=BUDGET)
    assert [c.status for c in report.checks] == ["fail"] + ["skip"] * 8
    assert "listener failed to start" in report.checks[0].detail
    assert dict(os.environ) == before and emu.scenario == "healthy"


def test_throttling_that_never_clears_fails_within_budget(emu: Any) -> None:
    report = doctor(scenario="imds-throttled", budget=5, params={"burst": 2, "rate": 0, "retry_after": 1})
    assert report.elapsed_s <= 5 + SLACK
    assert "2 token requests sent first" in report.checks[0].detail  # the simulated load is disclosed
    identity = next(c for c in report.checks if c.id == "identity")
    assert identity.status == "fail"
    assert identity.diagnosis is not None and identity.diagnosis.id == "imds-throttled"


# ------------------------------------------------------------------ the optional data-plane check


def _data_urls(emu: Any) -> tuple[str, str]:
    from mi_helpers.constants import EnvironmentVariables as Env

    env = emu.environment()
    vault = env[Env.MI_HELPERS_KEYVAULT_URL].rstrip("/")
    return f"{vault}/secrets/db-password", env[Env.MI_HELPERS_BLOB_URL].rstrip(
        "/"
    ) + "/stmitutorial/data/hello.txt"


def test_data_url_adds_a_last_check_that_reads_the_secret_or_blob(emu: Any) -> None:
    secret_url, blob_url = _data_urls(emu)
    plain = doctor(budget=20)
    assert "data-read" not in [c.id for c in plain.checks]
    report = doctor(budget=20, data_url=secret_url)
    last = report.checks[-1]
    assert (last.id, last.status) == ("data-read", "pass") and report.ok, str(report)
    assert last.detail == "read secret db-password: Tut…(31 chars)"
    whole = SECRET_VALUES["db-password"][-1]
    assert whole not in str(report) and whole not in report.to_json()
    blob = doctor(budget=20, data_url=blob_url).checks[-1]
    assert (blob.status, blob.detail) == (
        "pass",
        f"read blob data/hello.txt ({len(HELLO_BLOB.encode())} bytes)",
    )


@pytest.mark.parametrize(
    ("scenario", "which", "diagnosis_id"),
    [
        ("kv-rbac-missing", 0, "kv-rbac-data-role-missing"),
        ("storage-data-role-missing", 1, "storage-data-role-missing"),
    ],
)
def test_data_url_failures_are_diagnosed(emu: Any, scenario: str, which: int, diagnosis_id: str) -> None:
    report = doctor(scenario=scenario, budget=25, data_url=_data_urls(emu)[which])
    last = report.checks[-1]
    assert last.id == "data-read" and last.status == "fail" and not report.ok, str(report)
    assert last.diagnosis is not None and last.diagnosis.id == diagnosis_id
    assert all(c.status in ("pass", "warn") for c in report.checks[:-1]), str(report)


@pytest.mark.parametrize("url", ["http://vault.example/secrets/x", "not a url", 42])
def test_a_data_url_that_is_not_https_is_an_input_error(url: Any) -> None:
    with pytest.raises(InputError, match=r"^data_url: a secret or blob URL starting with https://"):
        doctor(data_url=url)


@pytest.mark.parametrize(
    "url", ["https://kv.vault.azure.net/keys/k", "https://127.0.0.1:9/stmitutorial/data"]
)
def test_a_data_url_naming_neither_a_secret_nor_a_blob_fails_its_check_in_one_line(
    emu: Any, url: str
) -> None:
    """Refused before any request (no lookup of the vault's name either)."""
    last = doctor(budget=20, data_url=url).checks[-1]
    assert last.status == "fail" and last.detail.startswith("url: a secret URL"), last.detail
    assert last.diagnosis is None
