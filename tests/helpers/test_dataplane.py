"""mi.read_secret / mi.read_blob: the real SDK clients for the current target, redacted values, the SDK's own
exceptions, ARM discovery of the endpoints, and a diagnosis id for every data-plane failure."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from support.world import (
    HELLO_BLOB,
    KEY_VAULT,
    KEY_VAULT_SCOPE,
    SECRET_VALUES,
    STORAGE_ACCOUNT,
    SYS_PRINCIPAL,
)

import mi_helpers as mi
from mi_helpers.diagnosis import DIAGNOSIS_IDS
from mi_helpers.diagnosis.dataplane import DATA_PLANE_IDS

pytestmark = pytest.mark.timeout(60)


def test_read_secret_discovers_the_vault_in_arm_and_never_shows_the_value(emu: Any) -> None:
    url = mi.vault_url(KEY_VAULT)
    assert url == emu.endpoints().keyvault_url + "/"
    got = mi.read_secret("db-password", vault=KEY_VAULT)
    whole = SECRET_VALUES["db-password"][-1]
    assert got.value == whole and got.name == "db-password" and len(got.version) == 32
    for shown in (repr(got), str(got), got._repr_html_(), f"{got}"):
        assert whole not in shown and "Tut…(31 chars)" in shown
    older = mi.read_secret("db-password", url=url, version=mi.read_secret("db-password").version)
    assert older.value == whole


def test_read_blob_discovers_the_endpoint_in_arm(emu: Any) -> None:
    assert mi.blob_endpoint(STORAGE_ACCOUNT) == f"{emu.endpoints().blob_url}/{STORAGE_ACCOUNT}/"
    got = mi.read_blob("data", "hello.txt", account=STORAGE_ACCOUNT)
    assert got.text == HELLO_BLOB and got.size == len(HELLO_BLOB) and got.content_type == "text/plain"
    assert got.etag and "hello.txt" in repr(got)


def test_bad_input_is_a_one_line_input_error(emu: Any) -> None:
    for call, field in (
        (lambda: mi.read_secret("bad name!"), "name"),
        (lambda: mi.read_secret("x", version="nope"), "version"),
        (lambda: mi.read_secret("x", url="http://127.0.0.1:1/"), "url"),
        (lambda: mi.read_blob("Bad_Container", "x"), "container"),
        (lambda: mi.read_blob("data", ""), "blob"),
        (lambda: mi.vault_url("-x"), "name"),
        (lambda: mi.blob_endpoint("UPPER"), "account"),
    ):
        with pytest.raises(mi.InputError) as info:
            call()
        assert info.value.field == field and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("scenario", "call", "exc", "did"),
    [
        ("kv-rbac-missing", "secret", HttpResponseError, "kv-rbac-data-role-missing"),
        ("kv-access-policy-missing", "secret", HttpResponseError, "kv-access-policy-missing"),
        ("storage-data-role-missing", "blob", HttpResponseError, "storage-data-role-missing"),
        ("storage-wrong-audience", "blob", ClientAuthenticationError, "storage-wrong-audience"),
        ("healthy", "missing-secret", ResourceNotFoundError, "kv-secret-not-found"),
        ("healthy", "missing-blob", ResourceNotFoundError, "storage-blob-not-found"),
        ("healthy", "missing-container", ResourceNotFoundError, "storage-container-not-found"),
    ],
)
def test_each_failure_raises_the_sdk_exception_and_is_diagnosed(
    emu: Any, scenario: str, call: str, exc: type[Exception], did: str
) -> None:
    mi.use_emulator(scenario)
    calls = {
        "secret": lambda: mi.read_secret("db-password"),
        "blob": lambda: mi.read_blob("data", "hello.txt"),
        "missing-secret": lambda: mi.read_secret("no-such-secret"),
        "missing-blob": lambda: mi.read_blob("data", "nope.txt"),
        "missing-container": lambda: mi.read_blob("nothing", "x"),
    }
    with pytest.raises(exc) as info:
        calls[call]()
    d = mi.diagnose(info.value, context={"principal_id": SYS_PRINCIPAL})
    assert d.id == did
    assert all(d.commands[k] for k in ("portal", "az", "powershell"))
    assert all(v not in str(d) for values in SECRET_VALUES.values() for v in values)


def test_the_rbac_fix_commands_name_the_role_the_vault_and_the_principal(emu: Any) -> None:
    mi.use_emulator("kv-rbac-missing")
    with pytest.raises(HttpResponseError) as info:
        mi.read_secret("db-password")
    d = mi.diagnose(info.value, context={"principal_id": SYS_PRINCIPAL})
    assert d.commands["az"].startswith(
        f'az role assignment create --role "Key Vault Secrets User" --assignee-object-id {SYS_PRINCIPAL} '
    )
    assert KEY_VAULT_SCOPE.lower() in d.commands["az"].lower()
    mi.use_emulator("kv-access-policy-missing")
    with pytest.raises(HttpResponseError) as info:
        mi.read_secret("db-password")
    policy = mi.diagnose(
        info.value, context={"principal_id": SYS_PRINCIPAL, "resource_group": "rg-mi-tutorial"}
    )
    assert policy.commands["az"].startswith(
        f"az keyvault set-policy --name {KEY_VAULT} --resource-group rg-mi-tutorial "
        f"--object-id {SYS_PRINCIPAL}"
    )


def test_a_403_whose_role_exists_is_propagation(emu: Any) -> None:
    mi.use_emulator("data-role-propagating", n=1)
    with pytest.raises(HttpResponseError) as info:
        mi.read_blob("data", "hello.txt")
    ctx = {
        "principal_id": SYS_PRINCIPAL,
        "scope": f"{KEY_VAULT_SCOPE.rsplit('/providers/', 1)[0]}/providers/Microsoft.Storage/storageAccounts/"
        f"{STORAGE_ACCOUNT}",
        "role_assignments": [
            {"principal_id": SYS_PRINCIPAL, "scope": KEY_VAULT_SCOPE.rsplit("/providers/", 1)[0]}
        ],
    }
    assert mi.diagnose(info.value, context=ctx).id == "data-role-propagating"
    assert mi.read_blob("data", "hello.txt").text == HELLO_BLOB  # the bounded retry's second try


def test_texts_alone_are_diagnosed(emu: Any) -> None:
    assert mi.diagnose("(Forbidden) AKV10022: Invalid audience. Expected https://vault.azure.net").id == (
        "kv-wrong-audience"
    )
    assert mi.diagnose(
        "ValueError: The challenge resource 'vault.azure.net' does not match the requested domain."
    ).id == ("kv-challenge-resource-mismatch")
    assert mi.diagnose("Authentication scheme Bearer is not supported in this version.").id == (
        "storage-version-too-old"
    )


def test_every_data_plane_id_is_in_the_catalogue() -> None:
    assert set(DATA_PLANE_IDS) <= set(DIAGNOSIS_IDS)
