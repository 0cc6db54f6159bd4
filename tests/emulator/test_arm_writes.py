"""ARM writes through the real clients: the SDKs' pollers as the operator, the VM's identity refused.

The operator signs in with azure-identity's ``ClientSecretCredential`` against the emulator's Entra ID; the
VM's identities use ``ManagedIdentityCredential`` over IMDS. Every write goes over loopback HTTPS to the
emulated ARM, and its effect is read back the way a program on the VM would see it: the next IMDS token,
the next ARM read (docs/protocol.md#arm-writes).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.emulator import RawArm, arm_error, mgmt_kwargs, mi_credential
from support.world import (
    OPERATOR_PRINCIPAL,
    RG,
    RG_SCOPE,
    SUB,
    SUB_SCOPE,
    SYS_PRINCIPAL,
    TENANT,
    UAMI_DEPLOY,
    UAMI_DEPLOY_CLIENT,
    UAMI_DEPLOY_PRINCIPAL,
    UAMI_READER_CLIENT,
    UAMI_READER_PRINCIPAL,
    UAMI_READER_RESOURCE_ID,
    VM,
    VM_RESOURCE_ID,
    uami_resource_id,
)

from mi_helpers.constants import Arm, Roles
from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.emulator.world import World

READER_DEFINITION = f"{SUB_SCOPE}/providers/Microsoft.Authorization/roleDefinitions/{Roles.READER}"
CONTRIBUTOR_DEFINITION = f"{SUB_SCOPE}/providers/Microsoft.Authorization/roleDefinitions/{Roles.CONTRIBUTOR}"
UAMI_DEPLOY_ID = uami_resource_id(UAMI_DEPLOY)
VM_PATH = VM_RESOURCE_ID
ASSIGNMENTS = f"{RG_SCOPE}/providers/Microsoft.Authorization/roleAssignments"
SCOPE = f"{Arm.RESOURCE}/.default"


def _operator(emu: Any) -> Any:
    from azure.identity import ClientSecretCredential

    env = emu.environment()
    return ClientSecretCredential(
        env[Env.MI_HELPERS_TENANT_ID],
        env[Env.MI_HELPERS_OPERATOR_CLIENT_ID],
        env[Env.MI_HELPERS_OPERATOR_CLIENT_SECRET],
        authority=env[Env.MI_HELPERS_ENTRA_URL],
        disable_instance_discovery=True,
    )


def _compute(emu: Any, credential: Any) -> Any:
    from azure.mgmt.compute import ComputeManagementClient

    return ComputeManagementClient(credential, SUB, **mgmt_kwargs(emu))


def _msi(emu: Any, credential: Any) -> Any:
    from azure.mgmt.msi import ManagedServiceIdentityClient

    return ManagedServiceIdentityClient(credential, SUB, **mgmt_kwargs(emu))


def _authorization(emu: Any, credential: Any) -> Any:
    from azure.mgmt.authorization import AuthorizationManagementClient

    return AuthorizationManagementClient(credential, SUB, **mgmt_kwargs(emu))


def _identity_update(kind: str, user: dict[str, Any] | None = None) -> Any:
    from azure.mgmt.compute.models import VirtualMachineIdentity, VirtualMachineUpdate

    return VirtualMachineUpdate(identity=VirtualMachineIdentity(type=kind, user_assigned_identities=user))


def _assign(emu: Any, principal: str, scope: str = RG_SCOPE, definition: str = READER_DEFINITION) -> Any:
    from azure.mgmt.authorization.models import RoleAssignmentCreateParameters

    client = _authorization(emu, _operator(emu))
    body = RoleAssignmentCreateParameters(
        role_definition_id=definition, principal_id=principal, principal_type="ServicePrincipal"
    )
    return client.role_assignments.create(scope, str(uuid.uuid4()), body)


def _oid(token: str) -> str:
    import jwt

    return str(jwt.decode(token, options={"verify_signature": False})["oid"])


def _vm_read(arm: RawArm, token: str) -> int:
    return arm.get(VM_PATH, token=token).status_code


def _authorization_failed(oid: str, action: str, scope: str, abac: bool = False) -> str:
    clause = " or an ABAC condition not fulfilled" if abac else ""
    return (
        f"The client '{oid}' with object id '{oid}' does not have authorization{clause} to perform action "
        f"'{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please "
        "refresh your credentials."
    )


# --- the VM's identity block ---


def test_the_operator_switches_the_system_identity_on_through_the_sdk_poller(use_scenario: Any) -> None:
    emu = use_scenario("user-assigned-only")
    poller = _compute(emu, _operator(emu)).virtual_machines.begin_update(
        RG, VM, _identity_update("SystemAssigned, UserAssigned", {UAMI_READER_RESOURCE_ID: {}})
    )
    vm = poller.result()
    assert poller.status() == "Succeeded"
    assert vm.identity.type == "SystemAssigned, UserAssigned"
    new_principal = vm.identity.principal_id
    assert new_principal and new_principal != SYS_PRINCIPAL  # a new service principal, not the old one
    assert vm.identity.tenant_id == TENANT
    calls = [
        (e["method"], e["path"].split("/providers/")[-1]) for e in emu.request_log() if e["listener"] == "arm"
    ]
    assert calls == [
        ("PATCH", f"Microsoft.Compute/virtualMachines/{VM}"),
        ("GET", f"Microsoft.Compute/locations/westeurope/operations/{calls[1][1].rsplit('/', 1)[-1]}"),
        ("GET", f"Microsoft.Compute/virtualMachines/{VM}"),
    ]
    # The next token without a selector is the new system identity's.
    assert _oid(mi_credential().get_token(SCOPE).token) == new_principal


def test_the_patch_reply_is_a_long_running_operation_on_compute_s_operations_url(
    use_scenario: Any, arm: RawArm
) -> None:
    emu = use_scenario("no-identity")
    token = _operator(emu).get_token(SCOPE).token
    r = arm.session.patch(
        f"{emu.arm_url}{VM_PATH}",
        params={"api-version": "2024-11-01"},
        json={"identity": {"type": "SystemAssigned"}},
        headers={"Authorization": f"Bearer {token}"},
        verify=emu.ca_bundle,
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["provisioningState"] == "Updating"
    assert r.json()["identity"]["type"] == "SystemAssigned"
    url = r.headers["Azure-AsyncOperation"]
    prefix = (
        f"{emu.arm_url.rstrip('/')}/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westeurope"
        "/operations/"
    )
    assert url.startswith(prefix) and url.endswith("&api-version=2024-11-01"), url
    status = arm.session.get(
        url, headers={"Authorization": f"Bearer {token}"}, verify=emu.ca_bundle, timeout=10
    )
    body = status.json()
    assert status.status_code == 200 and body["status"] == "Succeeded"
    assert set(body) == {"startTime", "endTime", "status", "name"} and body["name"] in url
    unknown = arm.get(
        f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westeurope/operations/{uuid.uuid4()}",
        token=token,
        api_version="2024-11-01",
    )
    assert unknown.status_code == 404


def test_off_then_on_gives_a_new_principal_whose_old_assignment_no_longer_applies(
    emu: Any, arm: RawArm
) -> None:
    compute = _compute(emu, _operator(emu)).virtual_machines
    assert _vm_read(arm, mi_credential().get_token(SCOPE).token) == 200
    off = compute.begin_update(
        RG, VM, _identity_update("UserAssigned", {UAMI_READER_RESOURCE_ID: {}})
    ).result()
    assert off.identity.type == "UserAssigned" and off.identity.principal_id is None
    on = compute.begin_update(RG, VM, _identity_update("SystemAssigned, UserAssigned")).result()
    new_principal = on.identity.principal_id
    assert new_principal != SYS_PRINCIPAL
    token = mi_credential(client_id=None).get_token(SCOPE).token
    assert _oid(token) == new_principal
    # The Reader assignment still names the old principal: the VM's identity is refused now...
    r = arm.get(VM_PATH, token=token)
    assert r.status_code == 403
    assert arm_error(r) == (
        "AuthorizationFailed",
        _authorization_failed(new_principal, "Microsoft.Compute/virtualMachines/read", VM_PATH),
    )
    old = [a for a in emu.world_dict()["role_assignments"] if a["principal_id"] == SYS_PRINCIPAL]
    assert old, "the old assignment stays, pointing at a principal that no longer exists"
    # ...until the operator assigns the role again, to the new principal.
    _assign(emu, new_principal)
    assert _vm_read(arm, token) == 200


def test_attach_a_user_assigned_identity_with_a_put_and_get_its_token_right_after(emu: Any) -> None:
    compute = _compute(emu, _operator(emu)).virtual_machines
    vm = compute.get(RG, VM)
    vm.identity.type = "SystemAssigned,UserAssigned"  # the CLI's spelling, without the space
    vm.identity.user_assigned_identities[UAMI_DEPLOY_ID] = {}
    done = compute.begin_create_or_update(RG, VM, vm).result()
    assert done.identity.type == "SystemAssigned, UserAssigned"  # answered with the space, always
    assert done.identity.principal_id == SYS_PRINCIPAL  # already on: unchanged
    assert set(done.identity.user_assigned_identities) == {UAMI_READER_RESOURCE_ID, UAMI_DEPLOY_ID}
    assert done.identity.user_assigned_identities[UAMI_DEPLOY_ID].client_id == UAMI_DEPLOY_CLIENT
    token = mi_credential(client_id=UAMI_DEPLOY_CLIENT).get_token(SCOPE).token
    assert _oid(token) == UAMI_DEPLOY_PRINCIPAL


def test_detach_with_null_and_the_identity_is_gone_from_imds(emu: Any, arm: RawArm) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    compute = _compute(emu, _operator(emu)).virtual_machines
    done = compute.begin_update(
        RG, VM, _identity_update("SystemAssigned", {UAMI_READER_RESOURCE_ID: None})
    ).result()
    assert done.identity.type == "SystemAssigned" and not done.identity.user_assigned_identities
    with pytest.raises(ClientAuthenticationError, match="Identity not found"):
        mi_credential(client_id=UAMI_READER_CLIENT).get_token(SCOPE)
    # "userAssignedIdentities": null drops them all, as `az vm identity remove` sends it.
    compute.begin_update(
        RG, VM, _identity_update("SystemAssigned, UserAssigned", {UAMI_DEPLOY_ID: {}})
    ).result()
    token = _operator(emu).get_token(SCOPE).token
    r = arm.session.patch(
        f"{emu.arm_url}{VM_PATH}",
        params={"api-version": "2024-11-01"},
        json={"identity": {"type": "SystemAssigned", "userAssignedIdentities": None}},
        headers={"Authorization": f"Bearer {token}"},
        verify=emu.ca_bundle,
        timeout=10,
    )
    assert r.status_code == 200 and "userAssignedIdentities" not in r.json()["identity"]


def test_the_vm_identity_a_reader_cannot_write_the_vm(emu: Any) -> None:
    with pytest.raises(HttpResponseError) as info:
        _compute(emu, mi_credential()).virtual_machines.begin_update(RG, VM, _identity_update("None"))
    assert info.value.status_code == 403 and info.value.error is not None
    assert info.value.error.code == "AuthorizationFailed"
    assert info.value.error.message == _authorization_failed(
        SYS_PRINCIPAL, "Microsoft.Compute/virtualMachines/write", VM_PATH
    )
    assert emu.world_dict()["virtual_machines"][0]["system_identity"]["principal_id"] == SYS_PRINCIPAL


def test_attaching_needs_assign_action_on_the_identity(emu: Any) -> None:
    """Contributor on the VM alone allows the VM write, not assigning an identity of the resource group."""
    _assign(emu, UAMI_READER_PRINCIPAL, scope=VM_RESOURCE_ID, definition=CONTRIBUTOR_DEFINITION)
    compute = _compute(emu, mi_credential(client_id=UAMI_READER_CLIENT)).virtual_machines
    with pytest.raises(HttpResponseError) as info:
        compute.begin_update(RG, VM, _identity_update("SystemAssigned, UserAssigned", {UAMI_DEPLOY_ID: {}}))
    assert info.value.status_code == 403 and info.value.error is not None
    assert info.value.error.code == "LinkedAuthorizationFailed"
    linked = UAMI_DEPLOY_ID.replace("/resourceGroups/", "/resourcegroups/")
    assert info.value.error.message == (
        f"The client '{UAMI_READER_PRINCIPAL}' with object id '{UAMI_READER_PRINCIPAL}' has permission to "
        f"perform action 'Microsoft.Compute/virtualMachines/write' on scope '{VM_PATH}'; however, it does "
        "not have permission to perform action "
        "'Microsoft.ManagedIdentity/userAssignedIdentities/assign/action' on "
        f"the linked scope(s) '{linked}' or the linked scope(s) are invalid."
    )
    # The same caller may still change what links nothing (tags), so the 403 was about the link.
    from azure.mgmt.compute.models import VirtualMachineUpdate

    tagged = compute.begin_update(RG, VM, VirtualMachineUpdate(tags={"owner": "me"})).result()
    assert tagged.tags == {"owner": "me"}


# --- user-assigned identities ---


def test_create_update_and_delete_a_user_assigned_identity(emu: Any, arm: RawArm) -> None:
    client = _msi(emu, _operator(emu)).user_assigned_identities
    made = client.create_or_update(RG, "uami-new", {"location": "westeurope", "tags": {"k": "v"}})
    assert (
        made.id == f"/subscriptions/{SUB}/resourcegroups/{RG}/providers/Microsoft.ManagedIdentity/"
        "userAssignedIdentities/uami-new"
    )
    assert made.tenant_id == TENANT and made.client_id and made.principal_id
    token = _operator(emu).get_token(SCOPE).token
    again = arm.session.put(
        f"{emu.arm_url}{RG_SCOPE}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami-new",
        params={"api-version": "2024-11-30"},
        json={"location": "westeurope"},
        headers={"Authorization": f"Bearer {token}"},
        verify=emu.ca_bundle,
        timeout=10,
    )
    assert again.status_code == 200  # 201 the first time, 200 for an existing identity
    assert again.json()["properties"]["clientId"] == made.client_id
    assert list(again.json()) == ["location", "tags", "id", "name", "type", "properties"]
    moved = arm.session.put(
        again.url,
        json={"location": "eastus"},
        headers={"Authorization": f"Bearer {token}"},
        verify=emu.ca_bundle,
        timeout=10,
    )
    assert moved.status_code == 400 and arm_error(moved)[0] == "InvalidResourceLocation"
    client.delete(RG, "uami-new")
    gone = arm.session.delete(
        again.url, headers={"Authorization": f"Bearer {token}"}, verify=emu.ca_bundle, timeout=10
    )
    assert gone.status_code == 204
    assert not any(u["name"] == "uami-new" for u in emu.world_dict()["user_assigned_identities"])


def test_the_vm_identity_cannot_create_an_identity(emu: Any) -> None:
    with pytest.raises(HttpResponseError) as info:
        _msi(emu, mi_credential()).user_assigned_identities.create_or_update(
            RG, "uami-x", {"location": "westeurope"}
        )
    assert info.value.status_code == 403 and info.value.error is not None
    assert info.value.error.message == _authorization_failed(
        SYS_PRINCIPAL,
        "Microsoft.ManagedIdentity/userAssignedIdentities/write",
        f"{RG_SCOPE}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami-x",
    )


def test_a_new_identity_attached_and_granted_gets_a_token_and_reads(emu: Any, arm: RawArm) -> None:
    operator = _operator(emu)
    made = _msi(emu, operator).user_assigned_identities.create_or_update(
        RG, "uami-new", {"location": "westeurope"}
    )
    rid = f"{RG_SCOPE}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami-new"
    _compute(emu, operator).virtual_machines.begin_update(
        RG, VM, _identity_update("SystemAssigned, UserAssigned", {rid: {}})
    ).result()
    token = mi_credential(client_id=made.client_id).get_token(SCOPE).token
    assert _oid(token) == made.principal_id
    assert _vm_read(arm, token) == 403  # no role yet
    _assign(emu, made.principal_id)
    assert _vm_read(arm, token) == 200


# --- role assignments ---


def test_a_role_assignment_fixes_no_role_assignment(use_scenario: Any, arm: RawArm) -> None:
    emu = use_scenario("no-role-assignment")
    token = mi_credential().get_token(SCOPE).token
    assert _vm_read(arm, token) == 403
    made = _assign(emu, SYS_PRINCIPAL)
    assert (made.principal_id, made.scope, made.role_definition_id) == (
        SYS_PRINCIPAL,
        RG_SCOPE,
        READER_DEFINITION,
    )
    assert made.principal_type == "ServicePrincipal"
    assert _vm_read(arm, token) == 200
    # ARM reports who made it.
    listed = _authorization(emu, _operator(emu)).role_assignments.get_by_id(made.id)
    assert listed.id == made.id
    raw = arm.get(made.id, token=_operator(emu).get_token(SCOPE).token)
    assert raw.json()["properties"]["createdBy"] == OPERATOR_PRINCIPAL


def test_the_same_role_twice_is_409_role_assignment_exists(emu: Any) -> None:
    from azure.core.exceptions import ResourceExistsError

    existing = next(a for a in emu.world_dict()["role_assignments"] if a["principal_id"] == SYS_PRINCIPAL)
    with pytest.raises(ResourceExistsError) as info:
        _assign(emu, SYS_PRINCIPAL)
    assert info.value.status_code == 409 and info.value.error is not None
    assert info.value.error.code == "RoleAssignmentExists"
    assert info.value.error.message == (
        "The role assignment already exists. The ID of the existing role assignment is "
        f"{existing['id'].replace('-', '')}."
    )


@pytest.mark.parametrize(
    "scope",
    [SUB_SCOPE, RG_SCOPE, VM_RESOURCE_ID],
    ids=["subscription", "resource-group", "resource"],
)
def test_create_and_delete_at_every_scope(emu: Any, arm: RawArm, scope: str) -> None:
    client = _authorization(emu, _operator(emu)).role_assignments
    made = _assign(emu, UAMI_DEPLOY_PRINCIPAL, scope=scope, definition=CONTRIBUTOR_DEFINITION)
    assert made.scope == scope
    token = mi_credential(client_id=UAMI_READER_CLIENT).get_token(SCOPE).token  # another principal
    deploy = RawArm(emu.arm_url, emu.ca_bundle)
    try:
        assert [a.name for a in client.list_for_scope(scope, filter="atScope()") if a.name == made.name]
        deleted = client.delete(scope, made.name)
        assert deleted is not None and deleted.name == made.name
        again = arm.get(
            f"{scope}/providers/Microsoft.Authorization/roleAssignments/{made.name}",
            token=_operator(emu).get_token(SCOPE).token,
            method="DELETE",
        )
        assert again.status_code == 204
        assert _vm_read(deploy, token) == 200
    finally:
        deploy.close()


def test_the_vm_identity_cannot_assign_roles(emu: Any) -> None:
    from azure.mgmt.authorization.models import RoleAssignmentCreateParameters

    name = str(uuid.uuid4())
    body = RoleAssignmentCreateParameters(role_definition_id=READER_DEFINITION, principal_id=SYS_PRINCIPAL)
    with pytest.raises(HttpResponseError) as info:
        _authorization(emu, mi_credential()).role_assignments.create(SUB_SCOPE, name, body)
    assert info.value.status_code == 403 and info.value.error is not None
    assert info.value.error.message == _authorization_failed(
        SYS_PRINCIPAL,
        "Microsoft.Authorization/roleAssignments/write",
        f"{SUB_SCOPE}/providers/Microsoft.Authorization/roleAssignments/{name}",
        abac=True,
    )


def _put_assignment(emu: Any, arm: RawArm, principal: str, principal_type: str | None) -> Any:
    properties = {"principalId": principal, "roleDefinitionId": READER_DEFINITION}
    if principal_type is not None:
        properties["principalType"] = principal_type
    body = json.dumps({"properties": properties}).encode()
    return _send(emu, arm, "PUT", f"{ASSIGNMENTS}/{uuid.uuid4()}", body, "2022-04-01")


def test_principal_not_found_only_without_a_principal_type(emu: Any, arm: RawArm) -> None:
    """What ``az role assignment create --assignee <id>`` sends when Graph would not say who ``<id>`` is."""
    stranger = "0f0f0f0f-1111-4222-8333-444455556666"
    r = _put_assignment(emu, arm, stranger, None)
    code, message = arm_error(r)
    assert (r.status_code, code) == (400, "PrincipalNotFound")
    assert message == (
        f"Principal {stranger.replace('-', '')} does not exist in the directory {TENANT}. Check that you "
        "have the correct principal ID. If you are creating this principal and then immediately assigning a "
        "role, this error might be related to a replication delay. In this case, set the role assignment "
        "principalType property to a value, such as ServicePrincipal, User, or Group.  See "
        "https://aka.ms/docs-principaltype"
    )
    # With principalType ARM skips the lookup: the typo is assigned (and grants nobody anything).
    made = _put_assignment(emu, arm, stranger, "ServicePrincipal")
    assert made.status_code == 201 and made.json()["properties"]["principalId"] == stranger
    known = _put_assignment(emu, arm, UAMI_DEPLOY_PRINCIPAL.upper(), None)
    assert known.status_code == 409  # found in the directory (IDs compare case-insensitively), already Reader


def test_the_sdk_s_default_principal_type_user_is_refused_for_a_service_principal(emu: Any) -> None:
    from azure.mgmt.authorization.models import RoleAssignmentCreateParameters

    client = _authorization(emu, _operator(emu)).role_assignments
    body = RoleAssignmentCreateParameters(
        role_definition_id=CONTRIBUTOR_DEFINITION, principal_id=SYS_PRINCIPAL
    )
    assert body.principal_type == "User"
    with pytest.raises(HttpResponseError) as info:
        client.create(RG_SCOPE, str(uuid.uuid4()), body)
    assert info.value.status_code == 400 and info.value.error is not None
    assert (info.value.error.code, info.value.error.message) == (
        "UnmatchedPrincipalType",
        f"The PrincipalId '{SYS_PRINCIPAL.replace('-', '')}' has type 'ServicePrincipal' , which is "
        "different from specified PrinciaplType 'User'.",
    )


def test_a_new_assignment_is_subject_to_role_propagating(use_scenario: Any, arm: RawArm) -> None:
    """In ``role-propagating`` the new assignment's principal is refused for the scenario's window."""
    emu = use_scenario("role-propagating", n=1)
    operator_token = _operator(emu).get_token(SCOPE).token
    assert _vm_read(arm, operator_token) == 403  # the scenario's own window (anyone's first request)
    assert _vm_read(arm, operator_token) == 200
    deploy = mi_credential(client_id=UAMI_READER_CLIENT)  # attached, Reader on the group already
    made = _msi(emu, _operator(emu)).user_assigned_identities.create_or_update(
        RG, "uami-new", {"location": "westeurope"}
    )
    _compute(emu, _operator(emu)).virtual_machines.begin_update(
        RG,
        VM,
        _identity_update(
            "SystemAssigned, UserAssigned",
            {f"{RG_SCOPE}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami-new": {}},
        ),
    ).result()
    _assign(emu, made.principal_id)
    token = mi_credential(client_id=made.client_id).get_token(SCOPE).token
    assert [_vm_read(arm, token) for _ in range(2)] == [403, 200]
    assert _vm_read(arm, deploy.get_token(SCOPE).token) == 200  # other principals are not held back


def test_after_clear_faults_a_new_assignment_applies_at_once(use_scenario: Any, arm: RawArm) -> None:
    emu = use_scenario("role-propagating", n=5)
    emu.apply_fix("clear-faults")
    emu.apply_fix("remove-role-assignment", principal_id=UAMI_READER_PRINCIPAL)
    token = mi_credential(client_id=UAMI_READER_CLIENT).get_token(SCOPE).token
    assert _vm_read(arm, token) == 403
    _assign(emu, UAMI_READER_PRINCIPAL)
    assert _vm_read(arm, token) == 200


# --- resource groups ---


def test_create_a_resource_group_201_then_200(emu: Any) -> None:
    from azure.mgmt.resource.resources import ResourceManagementClient

    groups = ResourceManagementClient(_operator(emu), SUB, **mgmt_kwargs(emu)).resource_groups
    made = groups.create_or_update("rg-new", {"location": "West Europe", "tags": {"a": "b"}})
    assert (made.name, made.location, made.tags) == ("rg-new", "westeurope", {"a": "b"})
    assert made.properties.provisioning_state == "Succeeded"
    assert groups.check_existence("rg-new")
    again = groups.create_or_update("rg-new", {"location": "westeurope"})
    assert again.id == made.id
    with pytest.raises(HttpResponseError) as info:
        groups.create_or_update("rg-new", {"location": "eastus"})
    assert info.value.error is not None and info.value.error.message == (
        "Invalid resource group location 'eastus'. The Resource group already exists in location "
        "'westeurope'."
    )


# --- bodies ARM refuses with 4xx ---


def _send(
    emu: Any, arm: RawArm, method: str, path: str, data: bytes, api: str, ctype: str = "application/json"
) -> Any:
    token = _operator(emu).get_token(SCOPE).token
    return arm.session.request(
        method,
        f"{emu.arm_url}{path}",
        params={"api-version": api},
        data=data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": ctype},
        verify=emu.ca_bundle,
        timeout=10,
    )


_RA = f"{ASSIGNMENTS}/6a1f0c9e-0000-4000-8000-00000000000a"
_UAMI = f"{RG_SCOPE}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami-new"


@pytest.mark.parametrize(
    ("method", "path", "api", "body", "status", "code"),
    [
        ("PATCH", VM_PATH, "2024-11-01", b"{not json", 400, "InvalidRequestContent"),
        ("PATCH", VM_PATH, "2024-11-01", b"", 400, "InvalidRequestContent"),
        ("PATCH", VM_PATH, "2024-11-01", b"[1, 2]", 400, "InvalidRequestContent"),
        ("PATCH", VM_PATH, "2024-11-01", b'{"identity": "SystemAssigned"}', 400, "InvalidRequestContent"),
        ("PATCH", VM_PATH, "2024-11-01", b'{"identity": {"type": "Both"}}', 400, "InvalidRequestContent"),
        ("PATCH", VM_PATH, "2024-11-01", b'{"identity": {}}', 400, "InvalidParameter"),
        (
            "PATCH",
            VM_PATH,
            "2024-11-01",
            b'{"identity": {"type": "UserAssigned", "userAssignedIdentities": null}}',
            400,
            "InvalidParameter",
        ),
        (
            "PATCH",
            VM_PATH,
            "2024-11-01",
            json.dumps(
                {"identity": {"type": "SystemAssigned", "userAssignedIdentities": {UAMI_DEPLOY_ID: {}}}}
            ).encode(),
            400,
            "InvalidParameter",
        ),
        (
            "PATCH",
            VM_PATH,
            "2024-11-01",
            json.dumps(
                {"identity": {"type": "UserAssigned", "userAssignedIdentities": {_UAMI: {}}}}
            ).encode(),
            400,
            "FailedIdentityOperation",
        ),
        (
            "PATCH",
            VM_PATH,
            "2024-11-01",
            b'{"identity": {"type": "UserAssigned", "userAssignedIdentities": []}}',
            400,
            "InvalidRequestContent",
        ),
        ("PATCH", VM_PATH, "2024-11-01", b'{"tags": {"a": {"b": 1}}}', 400, "InvalidRequestContent"),
        (
            "PATCH",
            f"{RG_SCOPE}/providers/Microsoft.Compute/virtualMachines/vm-nope",
            "2024-11-01",
            b"{}",
            404,
            "ResourceNotFound",
        ),
        (
            "PUT",
            f"{RG_SCOPE}/providers/Microsoft.Compute/virtualMachines/vm-nope",
            "2024-11-01",
            b"{}",
            405,
            "MethodNotAllowed",
        ),
        ("PUT", _UAMI, "2024-11-30", b"{}", 400, "LocationRequired"),
        ("PUT", _UAMI, "2024-11-30", b'{"location": 5}', 400, "InvalidRequestContent"),
        (
            "PUT",
            f"{RG_SCOPE}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/-x",
            "2024-11-30",
            b'{"location": "westeurope"}',
            400,
            "InvalidResourceName",
        ),
        ("PUT", _RA, "2022-04-01", b"{}", 400, "InvalidRequestContent"),
        (
            "PUT",
            _RA,
            "2022-04-01",
            b'{"properties": {"principalId": "x", "roleDefinitionId": "'
            + READER_DEFINITION.encode()
            + b'"}}',
            400,
            "InvalidPrincipalId",
        ),
        (
            "PUT",
            _RA,
            "2022-04-01",
            b'{"properties": {"principalId": "'
            + SYS_PRINCIPAL.encode()
            + b'", "roleDefinitionId": "/x/6a1f0c9e-0000-4000-8000-000000000000"}}',
            400,
            "RoleDefinitionDoesNotExist",
        ),
        (
            "PUT",
            _RA,
            "2022-04-01",
            b'{"properties": {"principalId": "'
            + SYS_PRINCIPAL.encode()
            + b'", "principalType": "Robot", "roleDefinitionId": "'
            + READER_DEFINITION.encode()
            + b'"}}',
            400,
            "InvalidRequestContent",
        ),
        (
            "PUT",
            f"{ASSIGNMENTS}/not-a-guid",
            "2022-04-01",
            b'{"properties": {}}',
            400,
            "InvalidRoleAssignmentId",
        ),
        ("PUT", f"{SUB_SCOPE}/resourcegroups/rg-new", "2024-11-01", b"{}", 400, "LocationRequired"),
        ("PUT", f"{SUB_SCOPE}/resourcegroups/rg-new", "2024-11-01", b"null", 400, "InvalidRequestContent"),
        (
            "PUT",
            f"{SUB_SCOPE}/resourcegroups/rg-new",
            "2024-11-01",
            b"\xff\xfe",
            400,
            "InvalidRequestContent",
        ),
    ],
)
def test_malformed_write_bodies_get_arm_s_400s(
    emu: Any, arm: RawArm, method: str, path: str, api: str, body: bytes, status: int, code: str
) -> None:
    r = _send(emu, arm, method, path, body, api)
    assert (r.status_code, arm_error(r)[0]) == (status, code), r.text


def test_a_body_that_is_not_json_is_415(emu: Any, arm: RawArm) -> None:
    r = _send(emu, arm, "PATCH", VM_PATH, b"identity=SystemAssigned", "2024-11-01", "text/plain")
    assert r.status_code == 415 and arm_error(r) == (
        "UnsupportedMediaType",
        "The content media type 'text/plain' is not supported. Only 'application/json' is supported.",
    )


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_KEYS = st.sampled_from(
    [
        "identity",
        "type",
        "userAssignedIdentities",
        "tags",
        "location",
        "properties",
        "principalId",
        "principalType",
        "roleDefinitionId",
        UAMI_DEPLOY_ID,
        "SystemAssigned",
    ]
)
_BODIES = st.recursive(_JSON, lambda inner: st.dictionaries(_KEYS, inner, max_size=4), max_leaves=10)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=_BODIES,
    target=st.sampled_from(
        [
            ("PATCH", VM_PATH, "2024-11-01"),
            ("PUT", _UAMI, "2024-11-30"),
            ("PUT", _RA, "2022-04-01"),
            ("PUT", f"{SUB_SCOPE}/resourcegroups/rg-f", "2024-11-01"),
        ]
    ),
)
def test_no_write_body_makes_arm_answer_5xx(
    emu: Any, arm: RawArm, body: Any, target: tuple[str, str, str]
) -> None:
    method, path, api = target
    r = _send(emu, arm, method, path, json.dumps(body).encode(), api)
    assert r.status_code < 500, r.text


# --- one world per emulator ---


def test_writes_stay_in_this_emulator_and_a_scenario_switch_resets_them(emu: Any) -> None:
    from mi_helpers.emulator import Emulator

    _msi(emu, _operator(emu)).user_assigned_identities.create_or_update(
        RG, "uami-new", {"location": "westeurope"}
    )
    assert any(u["name"] == "uami-new" for u in emu.world_dict()["user_assigned_identities"])
    other = Emulator(scenario="healthy")
    try:
        assert not any(u["name"] == "uami-new" for u in other.world_dict()["user_assigned_identities"])
    finally:
        other.stop()
    assert not any(u.name == "uami-new" for u in World.default().identities)
    emu.set_scenario("healthy")
    assert not any(u["name"] == "uami-new" for u in emu.world_dict()["user_assigned_identities"])


# --- diagnose() explains a stale assignment ---


def test_off_then_on_is_diagnosed_as_a_stale_principal_assignment(emu: Any) -> None:
    """The issue's "Done means": new principalId, the old assignment no longer grants, diagnose() says why."""
    import mi_helpers as mi
    from mi_helpers.diagnosis import deleted_principal_ids

    compute = _compute(emu, _operator(emu)).virtual_machines
    compute.begin_update(RG, VM, _identity_update("UserAssigned", {UAMI_READER_RESOURCE_ID: {}})).result()
    on = compute.begin_update(RG, VM, _identity_update("SystemAssigned, UserAssigned")).result()
    new_principal = on.identity.principal_id
    with pytest.raises(HttpResponseError) as info:
        _compute(emu, mi_credential()).virtual_machines.get(RG, VM)
    world = emu.world_dict()
    assert deleted_principal_ids(world) == (SYS_PRINCIPAL,)
    context = {
        "subscription_id": SUB,
        "resource_group": RG,
        "vm_name": VM,
        "principal_id": new_principal,
        "scope": VM_RESOURCE_ID,
        "role_assignments": world["role_assignments"],
        "deleted_principal_ids": deleted_principal_ids(world),
    }
    found = mi.diagnose(info.value, context=context)
    assert found.id == "stale-principal-assignment"
    assert f"--assignee-object-id {new_principal}" in found.commands["az"]
    # Without the deleted principals, the same 403 is the plain "no role" diagnosis.
    del context["deleted_principal_ids"]
    assert mi.diagnose(info.value, context=context).id == "arm-authorization-failed"
