"""Every notebook runs top to bottom in emulator mode, shows what its lesson promises, and leaks no token."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest
from support.notebooks import NOTEBOOKS, all_text, cell_text, html_output, html_table_rows, kernel_env
from support.tokens import whole_jwts
from support.world import SYS_PRINCIPAL as SYSTEM_PRINCIPAL
from support.world import UAMI_READER_CLIENT, UAMI_READER_PRINCIPAL, VM

from mi_helpers.constants import CLIENT_REDIRECT_VARIABLES

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]  # executes every notebook (papermill)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_runs_cleanly_without_tracebacks(executed, name):
    nb = executed(name)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells, name
    errors = [o for c in code_cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors[:1]
    text = all_text(nb)
    assert "Traceback (most recent call last)" not in text
    # every code cell ran (papermill records an execution count per executed cell)
    assert all(c.get("execution_count") for c in code_cells), name


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_no_whole_token_in_outputs(executed, name):
    assert whole_jwts(all_text(executed(name))) == []


def test_00_names_the_target_and_checks_the_stack(executed):
    nb = executed("00-start-here.ipynb")
    setup = cell_text(nb, "nb00-setup")
    assert "Target: emulator" in setup
    assert "http://127.0.0.1:" in setup
    stack = cell_text(nb, "nb00-stack")
    assert "✓ The stack is right" in stack
    assert "azure-identity" in stack
    assert SYSTEM_PRINCIPAL in cell_text(nb, "nb00-first-token")


def test_01_claims_and_identity_not_found(executed):
    nb = executed("01-sign-in-with-managed-identity.ipynb")
    claims = cell_text(nb, "nb01-claims")
    assert "https://management.azure.com" in claims
    assert SYSTEM_PRINCIPAL in claims
    missing = cell_text(nb, "nb01-missing")
    assert "Identity not found" in missing  # the raw SDK text
    assert "[identity-not-assigned]" in missing  # then the diagnosis
    assert "expected the diagnosis" not in missing


def test_02_principal_cross_check_and_errors(executed):
    nb = executed("02-query-arm-for-the-vm-identity.ipynb")
    assert f"service principal ID is {SYSTEM_PRINCIPAL}" in cell_text(nb, "nb02-principal")
    assert "matches=True" in cell_text(nb, "nb02-cross-check")
    assert f"✓ principalId of {VM}: {SYSTEM_PRINCIPAL}" in cell_text(nb, "nb02-widget-press")
    not_found = cell_text(nb, "nb02-not-found")
    assert "(ResourceNotFound)" in not_found
    assert "[arm-resource-not-found]" in not_found
    bad = cell_text(nb, "nb02-bad-name")
    assert "InputError: vm_name:" in bad
    assert "Diagnosis" not in bad  # refused before any request: one line, no card


def test_03_audience_table_token_and_wrong_audience(executed):
    nb = executed("03-tokens-for-azure-services.ipynb")
    assert "https://vault.azure.net" in cell_text(nb, "nb03-table")
    rows = html_table_rows(html_output(nb, "nb03-service-token"))
    assert ["aud", "https://vault.azure.net"] == rows[0][:2]
    assert "aud = https://storage.azure.com" in cell_text(nb, "nb03-widget-press")
    wrong = cell_text(nb, "nb03-wrong-audience")
    assert "InvalidAuthenticationTokenAudience" in wrong
    assert "[arm-wrong-audience]" in wrong


def test_04_selection_rules(executed):
    nb = executed("04-user-assigned-identities.ipynb")
    chosen = cell_text(nb, "nb04-choose")
    assert SYSTEM_PRINCIPAL in chosen and UAMI_READER_PRINCIPAL in chosen
    one = cell_text(nb, "nb04-one-uami")
    assert "no selector" in one and UAMI_READER_PRINCIPAL in one and SYSTEM_PRINCIPAL not in one
    several = cell_text(nb, "nb04-several")
    assert "Multiple user assigned identities exist" in several
    assert "[user-assigned-selector-required]" in several
    assert UAMI_READER_PRINCIPAL in cell_text(nb, "nb04-several-fixed")
    rows = html_table_rows(html_output(nb, "nb04-azure-client-id"))
    by_credential = {r[0]: r for r in rows}
    dac = next(r for k, r in by_credential.items() if k.startswith("DefaultAzureCredential"))
    plain = by_credential["ManagedIdentityCredential()"]
    assert UAMI_READER_CLIENT in dac  # DefaultAzureCredential read AZURE_CLIENT_ID
    assert plain[-1] == "✗ user-assigned-selector-required"  # ManagedIdentityCredential() did not
    assert UAMI_READER_CLIENT in by_credential["ManagedIdentityCredential(client_id=…)"]


def test_05_lab_walks_every_scenario_to_green(executed):
    nb = executed("05-error-handling-lab.ipynb")
    assert "never on the real VM" in cell_text(nb, "nb05-lab")
    unreachable = cell_text(nb, "nb05-unreachable")
    assert "no response from the IMDS endpoint" in unreachable
    assert "[imds-unreachable]" in unreachable
    assert cell_text(nb, "nb05-unreachable-fixed").startswith("✓")
    legacy = cell_text(nb, "nb05-legacy")
    assert "50342" in legacy and "[legacy-extension-endpoint]" in legacy
    assert cell_text(nb, "nb05-legacy-fixed").startswith("✓")
    assert cell_text(nb, "nb05-view-press").startswith("✓ OK")
    rows = html_table_rows(html_output(nb, "nb05-walk"))
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    listed = ast.literal_eval(ast.parse(params.source).body[0].value)  # the `scenarios = [...]` default
    assert [r[0] for r in rows] == listed  # one row per scenario, in order
    # columns: scenario, error seen, diagnosis, fix, fixed, tries, seconds
    assert all(r[4] == "True" for r in rows), [r[:5] for r in rows if r[4] != "True"]
    assert len({r[2] for r in rows}) == len(rows)  # every scenario has its own diagnosis
    assert f"{len(rows)} of {len(rows)} scenarios fixed" in cell_text(nb, "nb05-walk-summary")


def test_06_doctor_checklist_and_report(executed):
    nb = executed("06-troubleshooting-your-vm.ipynb")
    assert "✓" in cell_text(nb, "nb06-doctor")
    assert "all checks passed" in cell_text(nb, "nb06-widget-press")
    assert "['arm-authorization-failed']" in cell_text(nb, "nb06-broken")
    report = json.loads(cell_text(nb, "nb06-report"))
    assert report["ok"] is True
    assert report["target"] == "emulator"
    assert {c["status"] for c in report["checks"]} == {"pass"}


def test_kernels_inherit_the_network_guard():
    env = kernel_env()
    guard_dir = str(Path(__file__).resolve().parents[1] / "guard")
    assert guard_dir in env["PYTHONPATH"].split(os.pathsep)  # sitecustomize installs the guard in the kernel
    assert Path(env["MI_HELPERS_GUARD_LOG"]).exists()  # where a kernel would record an escape
    assert env["MI_HELPERS_TARGET"] == "emulator"
    assert set(env) & set(CLIENT_REDIRECT_VARIABLES) == set()  # each kernel starts its own emulator
