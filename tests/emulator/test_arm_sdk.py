"""Real management SDKs against the emulator's ARM (docs/protocol.md#azure-resource-manager, #azure-core)."""

from __future__ import annotations

import time

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from support.emulator import (
    ARM_SCOPE,
    READER_ROLE_ID,
    compute_client,
    mgmt_kwargs,
    mi_credential,
    unverified_claims,
)
from support.world import (
    RG,
    RG_SCOPE,
    SUB,
    SYS_ASSIGNMENT_SCOPES,
    SYS_PRINCIPAL,
    TENANT,
    UAMI_READER,
    UAMI_READER_CLIENT,
    UAMI_READER_PRINCIPAL,
    VM,
    VM_ID,
    VM_RESOURCE_ID,
    uami_resource_id,
)

pytestmark = pytest.mark.timeout(30)


class StaticCredential:
    """A credential that hands out a fixed (possibly bogus) token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes, **kwargs):
        return AccessToken(self._token, int(time.time()) + 3600)


def _sdk_error(exc, code, message=None):
    assert exc.error is not None, str(exc)
    assert exc.error.code == code, str(exc)
    if message is not None:
        assert exc.error.message == message
        assert str(exc).startswith(f"({code}) {message}\nCode: {code}\nMessage: {message}")


# --- azure-mgmt-compute --------------------------------------------------------------------------------


def test_vm_principal_id_equals_token_oid(emu):
    cred = mi_credential()
    vm = compute_client(emu, cred).virtual_machines.get(RG, VM)
    oid = unverified_claims(cred.get_token(ARM_SCOPE).token)["oid"]
    assert vm.identity.principal_id == oid == SYS_PRINCIPAL
    assert vm.identity.tenant_id == TENANT
    assert vm.name == VM
    assert vm.id.lower() == VM_RESOURCE_ID.lower()
    assert vm.properties.vm_id == VM_ID


def test_vm_user_assigned_identities_block(emu):
    vm = compute_client(emu).virtual_machines.get(RG, VM)
    assert str(vm.identity.type).lower().replace(" ", "") in (
        "systemassigned,userassigned",
        "resourceidentitytype.system_assigned_user_assigned",
    )
    uamis = {k.lower(): v for k, v in vm.identity.user_assigned_identities.items()}
    entry = uamis[uami_resource_id(UAMI_READER).lower()]
    assert entry.client_id == UAMI_READER_CLIENT
    assert entry.principal_id == UAMI_READER_PRINCIPAL


def test_vm_list_in_resource_group(emu):
    names = {vm.name for vm in compute_client(emu).virtual_machines.list(RG)}
    assert {VM, "vm-build-agent"} <= names


def test_vm_without_identity_has_no_principal(emu):
    vm = compute_client(emu).virtual_machines.get(RG, "vm-build-agent")
    assert vm.identity is None or vm.identity.principal_id is None


def test_vm_list_all_with_subscription_reader(emu):
    emu.apply_fix(
        "add-role-assignment", principal_id=SYS_PRINCIPAL, role="Reader", scope=f"/subscriptions/{SUB}"
    )
    vms = {vm.name: vm for vm in compute_client(emu).virtual_machines.list_all()}
    assert VM in vms
    assert vms[VM].identity.principal_id == SYS_PRINCIPAL


def test_vm_not_found(emu):
    with pytest.raises(ResourceNotFoundError) as info:
        compute_client(emu).virtual_machines.get(RG, "vm-nope")
    assert info.value.status_code == 404
    _sdk_error(
        info.value,
        "ResourceNotFound",
        f"The Resource 'Microsoft.Compute/virtualMachines/vm-nope' under resource group "
        f"'{RG}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def test_vm_in_unreadable_group_is_403(emu):
    with pytest.raises(HttpResponseError) as info:
        compute_client(emu).virtual_machines.get("rg-other", "vm-x")
    assert info.value.status_code == 403
    assert not isinstance(info.value, ClientAuthenticationError)
    _sdk_error(info.value, "AuthorizationFailed")
    msg = info.value.error.message
    assert msg.startswith(
        f"The client '{SYS_PRINCIPAL}' with object id '{SYS_PRINCIPAL}' does not have "
        "authorization to perform "
        "action 'Microsoft.Compute/virtualMachines/read' over scope '"
    )
    assert f"/subscriptions/{SUB}/resourcegroups/rg-other/" in msg.lower()
    assert msg.endswith(
        "' or the scope is invalid. If access was recently granted, please refresh your credentials."
    )


@pytest.mark.parametrize(
    ("token", "code"),
    [("not-a-jwt", "InvalidAuthenticationToken"), ("x.y.z", "InvalidAuthenticationToken")],
)
def test_bad_token_is_client_authentication_error(emu, token, code):
    with pytest.raises(ClientAuthenticationError) as info:
        compute_client(emu, StaticCredential(token)).virtual_machines.get(RG, VM)
    assert info.value.status_code == 401
    _sdk_error(info.value, code, "The access token is invalid.")


def test_wrong_audience_is_client_authentication_error(emu):
    client = compute_client(emu, credential_scopes=["https://vault.azure.net/.default"])
    with pytest.raises(ClientAuthenticationError) as info:
        client.virtual_machines.get(RG, VM)
    assert info.value.status_code == 401
    _sdk_error(info.value, "InvalidAuthenticationTokenAudience")
    assert "'https://vault.azure.net'" in info.value.error.message


def test_cli_audience_through_the_sdk(emu):
    client = compute_client(emu, credential_scopes=["https://management.core.windows.net//.default"])
    assert client.virtual_machines.get(RG, VM).identity.principal_id == SYS_PRINCIPAL


def test_untrusted_ca_fails_tls(emu, monkeypatch):
    from azure.mgmt.compute import ComputeManagementClient

    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    client = ComputeManagementClient(mi_credential(), SUB, base_url=emu.arm_url, retry_total=0)
    with pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED"):
        client.virtual_machines.get(RG, VM)


def test_ca_bundle_env_is_enough(emu):
    """REQUESTS_CA_BUNDLE from emu.environment() (set by the fixture) trusts the emulator's ARM."""
    from azure.mgmt.compute import ComputeManagementClient

    client = ComputeManagementClient(mi_credential(), SUB, base_url=emu.arm_url, retry_total=0)
    assert client.virtual_machines.get(RG, VM).identity.principal_id == SYS_PRINCIPAL


# --- azure-mgmt-resource -------------------------------------------------------------------------------


def _resource_client(emu):
    from azure.mgmt.resource.resources import ResourceManagementClient

    return ResourceManagementClient(mi_credential(), SUB, **mgmt_kwargs(emu))


def test_resources_list_by_name(emu):
    items = list(_resource_client(emu).resources.list(filter=f"name eq '{VM}'"))
    assert [i.name for i in items] == [VM]
    assert items[0].identity.principal_id == SYS_PRINCIPAL
    assert items[0].type == "Microsoft.Compute/virtualMachines"


def test_resource_group_get(emu):
    rg = _resource_client(emu).resource_groups.get(RG)
    assert rg.name == RG
    assert rg.location == "westeurope"
    assert rg.id.lower() == RG_SCOPE.lower()


def test_resource_group_not_found(emu):
    emu.apply_fix(
        "add-role-assignment", principal_id=SYS_PRINCIPAL, role="Reader", scope=f"/subscriptions/{SUB}"
    )
    with pytest.raises(ResourceNotFoundError) as info:
        _resource_client(emu).resource_groups.get("rg-nope")
    _sdk_error(info.value, "ResourceGroupNotFound", "Resource group 'rg-nope' could not be found.")


def test_resource_group_without_rights_is_403(emu):
    with pytest.raises(HttpResponseError) as info:
        _resource_client(emu).resource_groups.get("rg-nope")
    assert info.value.status_code == 403
    _sdk_error(info.value, "AuthorizationFailed")


# --- azure-mgmt-msi ------------------------------------------------------------------------------------


def test_user_assigned_identity_get_matches_its_token(emu):
    from azure.mgmt.msi import ManagedServiceIdentityClient

    client = ManagedServiceIdentityClient(mi_credential(), SUB, **mgmt_kwargs(emu))
    uami = client.user_assigned_identities.get(RG, UAMI_READER)
    claims = unverified_claims(mi_credential(client_id=uami.client_id).get_token(ARM_SCOPE).token)
    assert uami.client_id == claims["appid"] == UAMI_READER_CLIENT
    assert uami.principal_id == claims["oid"] == UAMI_READER_PRINCIPAL
    assert uami.tenant_id == TENANT
    assert uami.id.lower() == uami_resource_id(UAMI_READER).lower()


def test_user_assigned_identity_not_found(emu):
    from azure.mgmt.msi import ManagedServiceIdentityClient

    client = ManagedServiceIdentityClient(mi_credential(), SUB, **mgmt_kwargs(emu))
    with pytest.raises(ResourceNotFoundError) as info:
        client.user_assigned_identities.get(RG, "uami-nope")
    assert info.value.error.code == "ResourceNotFound"


# --- azure-mgmt-authorization --------------------------------------------------------------------------


def _authz_client(emu):
    from azure.mgmt.authorization import AuthorizationManagementClient

    return AuthorizationManagementClient(mi_credential(), SUB, **mgmt_kwargs(emu))


def test_role_assignments_for_the_vm_identity(emu):
    found = list(
        _authz_client(emu).role_assignments.list_for_scope(
            RG_SCOPE, filter=f"principalId eq '{SYS_PRINCIPAL}'"
        )
    )
    assert found
    ra = found[0]
    assert ra.principal_id == SYS_PRINCIPAL
    assert ra.principal_type == "ServicePrincipal"
    assert ra.role_definition_id.endswith(f"/roleDefinitions/{READER_ROLE_ID}")
    assert ra.scope.lower() == RG_SCOPE.lower()


def test_role_assignments_filter_other_principal(emu):
    other = "12345678-1234-4234-8234-123456789012"
    assert (
        list(_authz_client(emu).role_assignments.list_for_scope(RG_SCOPE, filter=f"principalId eq '{other}'"))
        == []
    )


def test_role_assignment_fix_is_listed(emu):
    emu.apply_fix(
        "add-role-assignment", principal_id=UAMI_READER_PRINCIPAL, role="Reader", scope=VM_RESOURCE_ID
    )
    found = list(
        _authz_client(emu).role_assignments.list_for_scope(
            VM_RESOURCE_ID, filter=f"principalId eq '{UAMI_READER_PRINCIPAL}'"
        )
    )
    assert {ra.scope.lower() for ra in found} >= {VM_RESOURCE_ID.lower()}


def test_resource_group_check_existence(emu):
    client = _resource_client(emu)
    assert client.resource_groups.check_existence(RG) is True
    emu.apply_fix(
        "add-role-assignment", principal_id=SYS_PRINCIPAL, role="Reader", scope=f"/subscriptions/{SUB}"
    )
    assert client.resource_groups.check_existence("rg-nope") is False


def test_more_list_operations(emu):
    from azure.mgmt.msi import ManagedServiceIdentityClient

    res = _resource_client(emu)
    assert {"vm-mi-tutorial", "vm-build-agent", "stmitutorial", "kv-mi-tutorial"} <= {
        r.name for r in res.resources.list_by_resource_group(RG)
    }
    assert RG in {g.name for g in res.resource_groups.list()}
    msi = ManagedServiceIdentityClient(mi_credential(), SUB, **mgmt_kwargs(emu))
    by_name = {u.name: u for u in msi.user_assigned_identities.list_by_resource_group(RG)}
    assert by_name[UAMI_READER].client_id == UAMI_READER_CLIENT
    found = list(
        _authz_client(emu).role_assignments.list_for_subscription(filter=f"principalId eq '{SYS_PRINCIPAL}'")
    )
    assert [ra.scope.lower() for ra in found] == [s.lower() for s in SYS_ASSIGNMENT_SCOPES]
