"""Every notebook runs top to bottom in emulator mode, shows what its lesson promises, and leaks no token."""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

import pytest
from support.notebooks import NOTEBOOKS, all_text, cell_text, html_output, html_table_rows, kernel_env
from support.tokens import whole_jwts
from support.world import (
    HELLO_BLOB,
    SECRET_VALUES,
    STORAGE_ACCOUNT,
    UAMI_READER_CLIENT,
    UAMI_READER_PRINCIPAL,
    VM,
)
from support.world import SYS_PRINCIPAL as SYSTEM_PRINCIPAL

from mi_helpers.constants import CLIENT_REDIRECT_VARIABLES
from mi_helpers.notebook.error_lab_scenarios import ERROR_LAB_SCENARIOS

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
    assert "Target: emulator (a local emulator in this kernel, scenario healthy)" in setup
    assert "http://127.0.0.1:" in setup  # the IMDS row of the target's table
    assert "/_emulator" not in setup  # never the emulator's admin URL
    stack = cell_text(nb, "nb00-stack")
    assert stack.startswith("✓ The stack is right:") and "packages checked" in stack
    assert "<table" not in stack  # all is well: one line, no 17-row table
    token = cell_text(nb, "nb00-first-token")
    assert SYSTEM_PRINCIPAL in token and "mi-facts" in token  # a small table, not a raw repr


def test_01_claims_and_identity_not_found(executed):
    nb = executed("01-sign-in-with-managed-identity.ipynb")
    claims = cell_text(nb, "nb01-claims")
    assert "https://management.azure.com" in claims
    assert SYSTEM_PRINCIPAL in claims
    missing = cell_text(nb, "nb01-missing")
    assert "Identity not found" in missing  # the raw SDK text
    assert "[identity-not-assigned]" in missing  # then the diagnosis
    assert "expected the diagnosis" not in missing
    assert "ℹ mi-helpers:" not in missing  # two layers: the raw text, then the card
    assert 'curl -s --noproxy "*" -H "Metadata: true"' in missing  # the curl the card promises


def test_02_principal_cross_check_and_errors(executed):
    nb = executed("02-query-arm-for-the-vm-identity.ipynb")
    assert f"service principal ID is {SYSTEM_PRINCIPAL}" in cell_text(nb, "nb02-principal")
    assert "matches=True" in cell_text(nb, "nb02-cross-check")
    assert "mi-facts" in cell_text(nb, "nb02-metadata")  # instance metadata as a small table
    by_name = html_output(nb, "nb02-by-name")
    assert by_name.startswith('<table class="mi-table"') and "<th" not in by_name.split("</thead>")[1]
    wrong = cell_text(nb, "nb02-wrong-group")
    assert "(AuthorizationFailed)" in wrong and "[arm-scope-not-visible]" in wrong
    assert "expected the diagnosis" not in wrong
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
    typo = cell_text(nb, "nb03-typo")
    assert "AADSTS500011: The resource principal named https://managements.azure.com" in typo
    assert "[token-unknown-resource]" in typo and "expected the diagnosis" not in typo


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
    switched = cell_text(nb, "nb04-operator-fix")  # az vm identity assign, as the operator through ARM
    assert "switched the system-assigned identity of" in switched and "az vm identity assign -g" in switched
    assert "Multiple user assigned identities" not in switched and "✗" not in switched
    rows = html_table_rows(html_output(nb, "nb04-azure-client-id"))
    by_credential = {r[1]: r for r in rows}  # the verdict ("result") is the first column
    dac = next(r for k, r in by_credential.items() if k.startswith("DefaultAzureCredential"))
    plain = by_credential["ManagedIdentityCredential()"]
    assert UAMI_READER_CLIENT in dac and dac[0] == "✓ token"  # DefaultAzureCredential read AZURE_CLIENT_ID
    assert plain[0] == "✗ user-assigned-selector-required"  # ManagedIdentityCredential() did not
    assert "NaN" not in plain
    assert UAMI_READER_CLIENT in by_credential["ManagedIdentityCredential(client_id=…)"]
    assert all(not o.get("name") == "stderr" for c in nb.cells for o in c.get("outputs", []))  # no SDK logs


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
    assert ast.literal_eval(ast.parse(params.source).body[0].value) == []  # `scenarios = []`: all of them
    assert [r[1] for r in rows] == [s.name for s in ERROR_LAB_SCENARIOS]  # one row each, in order
    # columns: fixed (the verdict, first), scenario, error seen, diagnosis, fix, tries, seconds
    assert all(r[0] == "✓ yes" for r in rows), [r[:4] for r in rows if r[0] != "✓ yes"]
    assert len({r[3] for r in rows}) == len(rows)  # every scenario has its own diagnosis
    assert f"{len(rows)} of {len(rows)} scenarios fixed" in cell_text(nb, "nb05-walk-summary")


def test_06_doctor_checklist_and_report(executed):
    nb = executed("06-troubleshooting-your-vm.ipynb")
    assert "✓" in cell_text(nb, "nb06-doctor")
    assert "all checks passed" in cell_text(nb, "nb06-widget-press")
    assert "['arm-authorization-failed']" in cell_text(nb, "nb06-broken")
    fixed = cell_text(nb, "nb06-fix")  # granted through ARM as the operator, then the checklist is green
    assert f"granted Reader for {SYSTEM_PRINCIPAL} at /subscriptions/" in fixed
    assert "az role assignment create --assignee-object-id" in fixed and "✗" not in fixed
    report = json.loads(cell_text(nb, "nb06-report"))
    assert report["ok"] is True
    assert report["target"] == "emulator"
    assert {c["status"] for c in report["checks"]} == {"pass"}


def test_07_reads_fails_on_the_data_plane_fixes_as_the_operator_and_retries(executed):
    nb = executed("07-call-azure-services.ipynb")
    secret = cell_text(nb, "nb07-secret")
    assert "SecretValue(name='db-password'" in secret and "Tut…(31 chars)" in secret
    assert HELLO_BLOB in cell_text(nb, "nb07-blob")
    shown = all_text(nb)
    assert not [v for values in SECRET_VALUES.values() for v in values if v in shown]  # never whole
    storage = cell_text(nb, "nb07-storage")
    before, after = storage.split("As the operator, through ARM: granted Storage Blob Data Reader", 1)
    assert "ErrorCode:AuthorizationPermissionMismatch" in before and "[storage-data-role-missing]" in before
    assert "expected the diagnosis" not in storage and "No error this time" not in storage
    assert f"{STORAGE_ACCOUNT}: az role assignment create" in after  # granted on the account, through ARM
    assert "try 1: 403" in after and "✓ try 3: read" in after and "BlobContent(data/hello.txt" in after
    kv = cell_text(nb, "nb07-kv-rbac")
    before, after = kv.split("As the operator, through ARM: granted Key Vault Secrets User", 1)
    assert "ForbiddenByRbac" in before and "[kv-rbac-data-role-missing]" in before
    assert "try 1: 403" in after and "✓ try 3: read" in after and "Tut…(31 chars)" in after
    policy = cell_text(nb, "nb07-kv-policy")
    assert "does not have secrets get permission on key vault" in policy
    assert "[kv-access-policy-missing]" in policy and "az keyvault set-policy" in policy


def test_kernels_inherit_the_network_guard():
    env = kernel_env()
    guard_dir = str(Path(__file__).resolve().parents[1] / "guard")
    assert guard_dir in env["PYTHONPATH"].split(os.pathsep)  # sitecustomize installs the guard in the kernel
    assert Path(env["MI_HELPERS_GUARD_LOG"]).exists()  # where a kernel would record an escape
    assert env["MI_HELPERS_TARGET"] == "emulator"
    assert set(env) & set(CLIENT_REDIRECT_VARIABLES) == set()  # each kernel starts its own emulator


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_table_puts_its_verdict_first_and_no_sdk_log_reaches_a_cell(executed, name):
    from mi_helpers.notebook.tables import VERDICT_COLUMNS

    nb = executed(name)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.get("name") != "stderr", (cell.get("id"), out.get("text", "")[:200])
            markup = out.get("data", {}).get("text/html", "")
            markup = markup if isinstance(markup, str) else "".join(markup)
            assert 'class="dataframe"' not in markup, cell.get("id")  # every DataFrame in the one style
            if 'class="mi-table"' in markup:
                heads = re.findall(r"<th[^>]*>([^<]*)</th>", markup.split("</thead>")[0])
                verdicts = [h for h in heads if h.lower() in VERDICT_COLUMNS]
                assert not verdicts or heads[0] == verdicts[0], (cell.get("id"), heads)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_no_research_notes_or_admin_urls_a_learner_could_read(executed, name):
    nb = executed(name)
    shown = "\n".join(cell_text(nb, c.id) for c in nb.cells if c.cell_type == "code")
    shown += "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for text in ("UNCONFIRMED", "third-party", "/_emulator", "Traceback"):
        assert text not in shown, (name, text)
