"""Papermill parameters change what the notebooks do."""

from __future__ import annotations

import pytest
from support.notebooks import cell_text, html_output, html_table_rows
from support.world import OTHER_VM, SYS_PRINCIPAL

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]  # executes notebooks (papermill)


def test_02_missing_vm_shows_resource_not_found(executed):
    nb = executed("02-query-arm-for-the-vm-identity.ipynb", vm_name="vm-that-does-not-exist")
    principal = cell_text(nb, "nb02-principal")
    assert "(ResourceNotFound)" in principal
    assert "vm-that-does-not-exist" in principal
    assert "[arm-resource-not-found]" in principal
    assert "service principal ID is" not in principal
    assert "(the look-up above failed: nothing to compare with)" in cell_text(nb, "nb02-cross-check")


def test_02_vm_without_identity_shows_the_diagnosis(executed):
    nb = executed("02-query-arm-for-the-vm-identity.ipynb", vm_name=OTHER_VM)
    principal = cell_text(nb, "nb02-principal")
    assert f"'{OTHER_VM}' has no system-assigned managed identity" in principal
    assert (
        "[vm-without-identity]" in principal
        and f"az vm identity assign -g rg-mi-tutorial -n {OTHER_VM}" in principal
    )
    assert SYS_PRINCIPAL not in principal
    assert OTHER_VM in cell_text(nb, "nb02-by-name")
    cross = cell_text(nb, "nb02-cross-check")  # compares with the VM looked up, not this VM
    assert f"(none: {OTHER_VM} has no system-assigned identity)" in cross
    assert f"VM '{OTHER_VM}' has no system-assigned identity" in cross and "matches=False" in cross


def test_05_one_scenario_gives_one_fixed_row(executed):
    nb = executed("05-error-handling-lab.ipynb", scenarios=["no-role-assignment"])
    rows = html_table_rows(html_output(nb, "nb05-walk"))
    assert len(rows) == 1
    fixed, scenario, error_seen, diagnosis = rows[0][:4]
    assert scenario == "no-role-assignment"
    assert "AuthorizationFailed" in error_seen
    assert diagnosis == "arm-authorization-failed"
    assert fixed == "✓ yes"
    assert "1 of 1 scenarios fixed" in cell_text(nb, "nb05-walk-summary")
