"""The operator sign-in with the real Azure CLI: ``az login --service-principal`` against the emulator's Entra
ID, then ARM reads and the Microsoft Graph lookups ``az`` makes, as the operator and as the VM's identity.

The CLI runs in its private configuration (``mi_helpers.launch.azure_cli``: the emulator registered as a
cloud whose active directory and Graph are the emulator's listeners, instance discovery off) under the
suite's network guard; every request it makes is in the emulator's request log, and none goes elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from support.azcli import AzResult, AzSession, debug_requests, new_session
from support.world import (
    OPERATOR_CLIENT,
    RG,
    SUB,
    SYS_CLIENT,
    SYS_PRINCIPAL,
    TENANT,
    UAMI_READER,
    UAMI_READER_CLIENT,
    UAMI_READER_PRINCIPAL,
    VM,
)

from azcli.operator import OPERATOR_LOGIN
from azcli.report import TIMINGS
from mi_helpers.constants import EnvironmentVariables as Env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _run(session: AzSession, script: str) -> AzResult:
    result = session.run(script)
    TIMINGS.append((script, result.seconds))
    return result


def _secret(emulator: Any) -> str:
    return str(emulator.environment()[Env.MI_HELPERS_OPERATOR_CLIENT_SECRET])


def _calls(result: AzResult) -> list[tuple[str, str, str, int]]:
    return [(r["listener"], r["method"], r["path"], r["status"]) for r in result.requests]


def test_az_login_service_principal_signs_in_as_the_operator(
    az: Path, emulator: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    emulator.set_scenario("healthy")
    session = new_session(az, emulator, tmp_path_factory.mktemp("operator-login"))
    login = _run(session, OPERATOR_LOGIN)
    assert login.returncode == 0, login.describe()
    (account,) = json.loads(login.stdout)
    assert account["user"] == {"name": OPERATOR_CLIENT, "type": "servicePrincipal"}
    assert (account["id"], account["tenantId"], account["isDefault"]) == (SUB, TENANT, True)
    assert _calls(login) == [
        ("entra", "GET", f"/{TENANT}/v2.0/.well-known/openid-configuration", 200),
        ("entra", "POST", f"/{TENANT}/oauth2/v2.0/token", 200),
        ("arm", "GET", "/subscriptions", 200),
    ]
    assert {r["client"] for r in login.requests} == {"127.0.0.1"}
    assert login.requests[1]["identity"] is not None
    secret = _secret(emulator)
    assert secret not in login.stdout + login.stderr + json.dumps(login.requests, ensure_ascii=False)

    shown = _run(session, "az account show --query user")
    assert json.loads(shown.stdout) == {"name": OPERATOR_CLIENT, "type": "servicePrincipal"}, shown.describe()
    vm = _run(session, f"az vm show -g {RG} -n {VM} --query identity.principalId -o tsv")
    assert (vm.returncode, vm.stdout.strip()) == (0, SYS_PRINCIPAL), vm.describe()
    assert _calls(vm)[-1][:2] == ("arm", "GET")

    logout = _run(session, "az logout")
    assert logout.returncode == 0, logout.describe()
    assert ("entra", "GET", "/organizations/v2.0/.well-known/openid-configuration", 200) in _calls(logout)


@pytest.mark.parametrize(
    ("user", "password", "wanted"),
    [
        (
            '"$MI_HELPERS_OPERATOR_CLIENT_ID"',
            "abc8Q~not-the-secret-not-the-secret-not-t",
            "ERROR: AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the "
            "request is the client secret value, not the client secret ID, for a secret added to app "
            f"'{OPERATOR_CLIENT}'.",
        ),
        (
            "11111111-2222-4333-8444-555555555555",
            '"$MI_HELPERS_OPERATOR_CLIENT_SECRET"',
            "ERROR: AADSTS700016: Application with identifier '11111111-2222-4333-8444-555555555555' was not "
            f"found in the directory '{TENANT}'.",
        ),
    ],
)
def test_a_wrong_credential_gets_entras_error_text(
    az: Path, emulator: Any, tmp_path_factory: pytest.TempPathFactory, user: str, password: str, wanted: str
) -> None:
    emulator.set_scenario("healthy")
    session = new_session(az, emulator, tmp_path_factory.mktemp("operator-refused"))  # no cached token
    result = _run(
        session, f'az login --service-principal -u {user} -p {password} --tenant "$MI_HELPERS_TENANT_ID"'
    )
    assert result.returncode == 1, result.describe()
    assert wanted in result.stderr, result.describe()
    assert "\nTrace ID: " in result.stderr and "\nCorrelation ID: " in result.stderr
    assert _secret(emulator) not in result.stdout + result.stderr
    assert [c for c in _calls(result) if c[1] == "POST"][-1][3] in (400, 401)


def _graph_calls(result: AzResult) -> list[tuple[str, str, dict[str, list[str]], int]]:
    return [
        (r["method"], r["path"], parse_qs(r["query"]), r["status"])
        for r in result.requests
        if r["listener"] == "graph"
    ]


def _spn_filter(client_id: str) -> dict[str, list[str]]:
    return {"$filter": [f"servicePrincipalNames/any(c:c eq '{client_id}')"]}


def test_ad_sp_show_shows_that_a_managed_identity_is_a_service_principal(
    session_for: Callable[[str], AzSession], emulator: Any, tmp_path: Path
) -> None:
    emulator.set_scenario("healthy")
    session = session_for("operator").clone(tmp_path / "operator")
    result = _run(session, f"az ad sp show --id {UAMI_READER_CLIENT}")
    assert result.returncode == 0, result.describe()
    sp = json.loads(result.stdout)
    assert (sp["id"], sp["appId"], sp["displayName"], sp["servicePrincipalType"]) == (
        UAMI_READER_PRINCIPAL,
        UAMI_READER_CLIENT,
        UAMI_READER,
        "ManagedIdentity",
    )
    assert sp["alternativeNames"][0] == "isExplicit=True" and sp["alternativeNames"][1].endswith(UAMI_READER)
    assert _graph_calls(result) == [
        ("GET", "/v1.0/servicePrincipals", _spn_filter(UAMI_READER_CLIENT), 200),
        ("GET", f"/v1.0/servicePrincipals/{UAMI_READER_PRINCIPAL}", {}, 200),
    ]
    # the Graph token was asked from the emulator's Entra ID for the Graph resource (az: base URL = resource)
    assert ("entra", "POST", f"/{TENANT}/oauth2/v2.0/token", 200) in _calls(result)


def test_the_vm_identity_is_refused_by_graph(
    session_for: Callable[[str], AzSession], emulator: Any, tmp_path: Path
) -> None:
    emulator.set_scenario("healthy")
    session = session_for("system").clone(tmp_path / "system")
    shown = _run(session, f"az ad sp show --id {UAMI_READER_CLIENT}")
    assert shown.returncode == 1, shown.describe()
    assert "ERROR: Insufficient privileges to complete the operation." in shown.stderr
    assert _graph_calls(shown) == [("GET", "/v1.0/servicePrincipals", _spn_filter(UAMI_READER_CLIENT), 403)]
    listed = _run(session, f"az role assignment list --assignee {UAMI_READER_CLIENT} --all")
    assert listed.returncode == 0, listed.describe()
    assert f"WARNING: Failed to query {UAMI_READER_CLIENT} by invoking Graph API." in listed.stderr
    assert f"WARNING: Assuming {UAMI_READER_CLIENT} as an object ID." in listed.stderr


def test_role_assignment_list_names_the_principal_from_graph(
    session_for: Callable[[str], AzSession], emulator: Any, tmp_path: Path
) -> None:
    """``--assignee-object-id``: one getByIds call with exactly the body az sends, answered."""
    emulator.set_scenario("healthy")
    session = session_for("operator").clone(tmp_path / "operator")
    result = _run(session, f"az role assignment list --all --assignee-object-id {SYS_PRINCIPAL} --debug")
    assert result.returncode == 0, result.describe()
    found = [(a["principalName"], a["roleDefinitionName"]) for a in json.loads(result.stdout)]
    # Reader on the group, then the default world's data roles on the vault and the storage account
    assert found == [
        (SYS_CLIENT, r) for r in ("Reader", "Key Vault Secrets User", "Storage Blob Data Reader")
    ]
    assert _graph_calls(result) == [("POST", "/v1.0/directoryObjects/getByIds", {}, 200)]
    (sent,) = [
        r for r in debug_requests(result.stderr) if r["url"].endswith("/v1.0/directoryObjects/getByIds")
    ]
    assert sent["method"] == "POST" and sent["url"].startswith(emulator.graph_url + "/")
    assert sent["body"] == {
        "ids": [SYS_PRINCIPAL],
        "types": ["user", "group", "servicePrincipal", "directoryObjectPartnerReference"],
    }
    assert _secret(emulator) not in result.stdout + result.stderr


def test_an_az_terminal_keeps_the_operator_variables_and_prints_no_secret(
    emulator: Any, tmp_path: Path
) -> None:
    """``eval "$(python -m mi_helpers.launch.azure_cli --config-dir D)"`` in a Lab terminal: the sign-in line
    still finds its variables afterwards, and the lines evaluated never hold the secret's value."""
    from mi_helpers.launch import azure_cli

    environ = {**emulator.environment(), "PATH": "/usr/bin", "HOME": str(tmp_path)}
    lines = azure_cli.shell_lines(environ, tmp_path / "azure", tmp_path / "bin" / "az")
    for name in (
        Env.MI_HELPERS_OPERATOR_CLIENT_ID,
        Env.MI_HELPERS_OPERATOR_CLIENT_SECRET,
        Env.MI_HELPERS_TENANT_ID,
    ):
        assert f"unset {name}\n" not in lines
    assert _secret(emulator) not in lines
    env = azure_cli.cli_environment(emulator.environment(), tmp_path / "azure")
    assert env[Env.MI_HELPERS_OPERATOR_CLIENT_SECRET] == _secret(emulator)
    cloud = azure_cli.endpoints_from_environment(emulator.environment()).cloud_section()
    assert cloud["endpoint_active_directory"] == emulator.entra_url
    assert cloud["endpoint_microsoft_graph_resource_id"] == emulator.graph_url + "/"
