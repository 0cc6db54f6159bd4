"""ARM helpers against the embedded emulator: real SDK clients over HTTPS with the emulator's CA."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from support.world import (
    RG,
    SUB,
    SYS_PRINCIPAL,
    TENANT,
    UAMI_READER_CLIENT,
    UAMI_READER_PRINCIPAL,
    UAMI_READER_RESOURCE_ID,
    VM,
)

import mi_helpers as mi
from mi_helpers.constants import Roles
from mi_helpers.identity import TokenInfo
from mi_helpers.validate import InputError

from .conftest import stub_token

RG_SCOPE = f"/subscriptions/{SUB}/resourceGroups/{RG}"


def arm_requests(emu: Any) -> list[dict[str, Any]]:
    return [r for r in emu.request_log() if r.get("listener") == "arm"]


def test_instance_metadata(emu: Any) -> None:
    md = mi.instance_metadata()
    assert (md.subscription_id, md.resource_group, md.name) == (SUB, RG, VM)
    assert md.vm_id == "7d4a9c1e-3b6f-4e2a-8c5d-0f9b2e7a6c13"
    assert md.location == "westeurope"
    assert md.az_environment.lower() == "azurepubliccloud"
    assert md.resource_id.lower().endswith(f"/virtualmachines/{VM}")


def test_vm_principal_id_defaults_from_instance_metadata(emu: Any) -> None:
    assert mi.vm_principal_id() == SYS_PRINCIPAL
    assert mi.vm_principal_id(SUB, RG, VM) == SYS_PRINCIPAL
    vm_gets = [r for r in arm_requests(emu) if r["path"].lower().endswith(f"/virtualmachines/{VM}")]
    assert len(vm_gets) == 2


def test_vm_without_system_identity(emu: Any) -> None:
    mi.use_emulator("user-assigned-only")
    assert mi.vm_principal_id(credential=mi.credential(client_id=UAMI_READER_CLIENT)) is None


def test_vm_identity_table(emu: Any) -> None:
    df = mi.vm_identity()
    assert list(df.columns) == ["kind", "name", "principal_id", "client_id", "resource_id"]
    rows = {r.kind: r for r in df.itertuples()}
    assert rows["system-assigned"].principal_id == SYS_PRINCIPAL
    assert rows["user-assigned"].name == "uami-reader"
    assert rows["user-assigned"].client_id == UAMI_READER_CLIENT
    assert rows["user-assigned"].principal_id == UAMI_READER_PRINCIPAL
    assert rows["user-assigned"].resource_id.lower() == UAMI_READER_RESOURCE_ID.lower()


def test_resources_by_name(emu: Any) -> None:
    df = mi.resources_by_name(VM)
    assert len(df) == 1
    row = df.iloc[0]
    assert row["type"] == "Microsoft.Compute/virtualMachines"
    assert row["principal_id"] == SYS_PRINCIPAL  # az resource list -n VM --query [*].identity.principalId
    assert row["resource_group"].lower() == RG
    assert mi.resources_by_name("stmitutorial").iloc[0]["type"] == "Microsoft.Storage/storageAccounts"
    assert mi.resources_by_name("does-not-exist").empty


def test_role_assignments(emu: Any) -> None:
    df = mi.role_assignments(principal_id=SYS_PRINCIPAL)
    assert len(df) >= 1
    assert set(df["principal_id"]) == {SYS_PRINCIPAL}
    reader = df[df["role"] == "Reader"]
    assert not reader.empty
    assert reader.iloc[0]["scope"].lower() == RG_SCOPE.lower()
    assert reader.iloc[0]["role_definition_id"].lower().endswith(Roles.READER)
    everyone = mi.role_assignments(scope=RG_SCOPE)
    assert {SYS_PRINCIPAL, UAMI_READER_PRINCIPAL} <= set(everyone["principal_id"])


def test_cross_check_system_and_user_assigned(emu: Any) -> None:
    vm = mi.get_vm()
    system = mi.cross_check(mi.get_token(progress=False), vm)
    assert system.matches and system.identity == "system-assigned"
    assert system.expected_principal_id == SYS_PRINCIPAL
    uami = mi.cross_check(mi.get_token(client_id=UAMI_READER_CLIENT, progress=False), vm)
    assert uami.matches and uami.identity == "user-assigned uami-reader"
    assert uami.expected_principal_id == UAMI_READER_PRINCIPAL


def test_cross_check_explains_a_mismatch(emu: Any) -> None:
    vm = mi.get_vm()
    stranger = "0f0f0f0f-0000-4000-8000-000000000001"
    tok = TokenInfo(stub_token({"oid": stranger, "tid": TENANT}), 4102444800)
    result = mi.cross_check(tok, vm)
    assert not result.matches
    assert stranger in result.explanation and SYS_PRINCIPAL in result.explanation
    # a token of the UAMI presented as if it were the system identity: names the other identity
    tok = TokenInfo(stub_token({"oid": UAMI_READER_PRINCIPAL}), 4102444800)
    assert "another identity of this VM" in mi.cross_check(tok, vm).explanation


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: mi.vm_principal_id("abc", RG, VM), "subscription_id"),
        (lambda: mi.vm_principal_id(SUB, "rg" * 100, VM), "resource_group"),
        (lambda: mi.vm_principal_id(SUB, RG, ""), "vm_name"),
        (lambda: mi.resources_by_name(""), "name"),
        (lambda: mi.resources_by_name("x' or name eq 'y"), "name"),
        (lambda: mi.role_assignments(principal_id="abc"), "principal_id"),
        (lambda: mi.role_assignments(scope="subscriptions/abc"), "scope"),
    ],
)
def test_bad_input_never_reaches_arm(emu: Any, call: Any, field: str) -> None:
    with pytest.raises(InputError) as exc:
        call()
    assert str(exc.value).startswith(f"{field}")
    assert "\n" not in str(exc.value)
    assert arm_requests(emu) == []


def test_arm_errors_propagate_as_sdk_exceptions(emu: Any) -> None:
    mi.use_emulator("no-role-assignment")
    with pytest.raises(HttpResponseError) as exc:
        mi.vm_principal_id()
    assert exc.value.status_code == 403
    assert exc.value.error is not None and exc.value.error.code == "AuthorizationFailed"
    mi.use_emulator("healthy")
    with pytest.raises(HttpResponseError) as exc:
        mi.vm_principal_id(SUB, RG, "vm-nope")
    assert exc.value.status_code == 404


def test_clients_aim_at_the_target(emu: Any) -> None:
    t = mi.target()
    client = mi.compute_client(SUB)
    try:
        assert client._config.credential_scopes == [t.arm_scope]
        assert client._config.base_url.rstrip("/") == t.arm_url
        assert client._config.retry_policy.total_retries <= 3  # a broken ARM fails in seconds
    finally:
        client.close()


# --------------------------------------------------------------------------- CLI: mi-helpers whoami
