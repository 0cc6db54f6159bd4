"""The error lab without its view: walking scenarios, one-line errors, its own emulator."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest

import mi_helpers as mi
from mi_helpers.notebook.error_lab import ErrorLab

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def lab() -> Iterator[ErrorLab]:
    with ErrorLab(budget=6.0) as the_lab:
        yield the_lab


def test_lab_walk_reports_one_row_per_scenario(lab):
    table = lab.walk(["legacy-extension-endpoint", "expired-token"])
    assert list(table["scenario"]) == ["legacy-extension-endpoint", "expired-token"]
    assert list(table["diagnosis id"]) == ["legacy-extension-endpoint", "arm-token-expired"]
    assert table["fixed"].tolist() == [True, True]
    # The refused connection names the old extension's endpoint: port 50342, or the reserved stand-in the
    # emulator uses when another process on this machine already holds 50342.
    seen = table["error seen"].iloc[0]
    assert "Connection refused" in seen
    assert re.search(r"host='localhost', port=\d+\)", seen), seen
    assert "MSI_ENDPOINT" not in os.environ  # the scenario's client variables never leak out of a run


def test_lab_rejects_unknown_scenarios_in_one_line(lab):
    with pytest.raises(mi.InputError, match=r"^scenario: 'nope' is not a lab scenario"):
        lab.walk(["nope"])


def test_lab_uses_its_own_emulator(lab: ErrorLab, emu: Any) -> None:
    assert lab.emulator is not emu
    assert lab.emulator.imds_url != mi.target().imds_url


def test_every_exercise_has_a_typed_fix_the_emulator_knows() -> None:
    from typing import get_args

    from mi_helpers.emulator import SCENARIOS
    from mi_helpers.notebook.error_lab_scenarios import (
        ERROR_LAB_SCENARIOS,
        ClientChange,
        ClientFix,
        EmulatorFix,
        RetryFix,
    )

    for s in ERROR_LAB_SCENARIOS:
        assert s.emulator_scenario in SCENARIOS, s.name
        assert isinstance(s.fix, (EmulatorFix, ClientFix, RetryFix)), s.name
        if isinstance(s.fix, ClientFix):
            assert s.fix.change in get_args(ClientChange)
        if isinstance(s.fix, RetryFix):
            assert s.transient, f"{s.name}: a retry is its fix, so it is transient"


def test_retry_waits_grow_and_honour_retry_after() -> None:
    from types import SimpleNamespace

    from mi_helpers.notebook.error_lab import ErrorLab, ErrorLabRun

    plain = ErrorLabRun("x", False, "", error=ValueError("no answer"))
    assert [ErrorLab._delay(plain, n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    throttled = ErrorLabRun(
        "x", False, "", error=SimpleNamespace(response=SimpleNamespace(headers={"Retry-After": "3"}))
    )  # type: ignore[arg-type]
    assert ErrorLab._delay(throttled, 1) == 3.0


def test_the_lab_has_the_source_articles_first_check_the_wrong_audience_and_tls(lab: ErrorLab) -> None:
    table = lab.walk(["no-identity", "wrong-audience", "tls-untrusted"])
    assert list(table["diagnosis id"]) == ["identity-not-assigned", "arm-wrong-audience", "tls-untrusted"]
    assert table["fixed"].tolist() == [True, True, True]
    seen = list(table["error seen"])
    assert seen[0].startswith("CredentialUnavailableError: ManagedIdentityCredential authentication")
    assert "(InvalidAuthenticationTokenAudience)" in seen[1]
    assert seen[2].startswith("ServiceRequestError") and "CERTIFICATE_VERIFY_FAILED" in seen[2], seen[2]


def test_an_empty_list_walks_every_scenario(lab: ErrorLab) -> None:
    from unittest import mock

    with mock.patch.object(ErrorLab, "_walk_one", lambda self, s, progress: {"scenario": s.name}):
        table = lab.walk([])
    assert list(table["scenario"]) == [s.name for s in lab.scenarios]


def test_the_card_grants_where_apply_the_fix_grants(lab: ErrorLab) -> None:
    run = lab.run("no-role-assignment")
    assert run.diagnosis is not None
    grant = next(
        line for line in run.diagnosis.commands["az"].splitlines() if "role assignment create" in line
    )
    scope = grant.split("--scope ", 1)[1].split()[0]
    done = lab.apply_fix()
    assert f"at {scope}: az role assignment create" in done, (done, scope)  # ARM's write, the card's command
    assert "as the operator, through ARM" in done
    assert scope.lower().endswith("/resourcegroups/rg-mi-tutorial")
    assert lab.retry_until_green(progress=False).ok


def test_compressed_waits_say_so(lab: ErrorLab) -> None:
    notes = {s.name: s.time_note for s in lab.scenarios}
    assert notes["imds-updating"] == "(time compressed: 70 s → 1.5 s)"
    for name in ("role-propagating", "identity-propagating", "imds-hang"):
        assert notes[name].startswith("(time compressed: "), name
    shown = lab.catalogue().set_index("scenario")["what happens"]
    for name, note in notes.items():
        assert (note in shown[name]) if note else "time compressed" not in shown[name], name


def test_apply_the_fix_makes_the_arm_calls_of_the_card_as_the_operator(lab: ErrorLab) -> None:
    """no-identity: the fix is ``az vm identity assign … --role Reader --scope …`` as ARM writes, not the
    emulator's admin API; the new system identity is a new principal, so it needs the role too."""
    run = lab.run("no-identity")
    assert not run.ok and run.diagnosis is not None
    assert "az vm identity assign -g rg-mi-tutorial -n vm-mi-tutorial" in run.diagnosis.commands["az"]
    lab.emulator.clear_log()
    done = lab.apply_fix()
    assert "as the operator, through ARM" in done and "az vm identity assign" in done, done
    writes = [(e["method"], e["path"].rsplit("/", 2)[-2]) for e in lab.emulator.request_log()
              if e["listener"] == "arm" and e["method"] != "GET"]  # fmt: skip
    assert writes == [("PATCH", "virtualMachines"), ("PUT", "roleAssignments")], writes
    assert not any(e["listener"] == "admin" for e in lab.emulator.request_log())
    assert lab.retry_until_green(progress=False).ok


def test_the_data_plane_exercises_read_with_the_sdk_and_are_fixed_through_arm(lab: ErrorLab) -> None:
    table = lab.walk(["storage-data-role-missing", "kv-rbac-missing"])
    assert list(table["diagnosis id"]) == ["storage-data-role-missing", "kv-rbac-data-role-missing"]
    assert table["fixed"].tolist() == [True, True]
    assert all(t >= 2 for t in table["tries"])  # the grant propagates: a bounded retry, not one try
    seen = list(table["error seen"])
    assert "not authorized to perform this operation using this permission" in seen[0]
    assert "(Forbidden) Caller is not authorized" in seen[1]
    run = lab.run("kv-rbac-missing")
    assert not run.ok and 'az role assignment create --role "Key Vault Secrets User"' in str(run.diagnosis)
    assert "granted Key Vault Secrets User" in lab.apply_fix()
    green = lab.retry_until_green(progress=False)
    assert green.ok and "read secret db-password" in green.summary and "(31 chars)" in green.summary
