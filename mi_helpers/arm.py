"""Azure Resource Manager through the real SDK clients: instance metadata, the VM's identity, resources by
name, role assignments, and a cross-check of a token against the VM.

Every client is built for the current target (``base_url``, ``credential_scopes``, CA bundle) with explicit
timeouts (5 s to connect, 10 s to read) and two retries, so a broken endpoint fails within about half a
minute instead of the SDK's minutes. Inputs are validated before any request;
ARM errors propagate as the SDK's own exceptions (``HttpResponseError`` and subclasses), which
``mi_helpers.diagnosis`` explains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mi_helpers.constants import Imds, Roles
from mi_helpers.validate import (
    InputError,
    validate_arm_scope,
    validate_guid,
    validate_resource_group,
    validate_vm_name,
)

if TYPE_CHECKING:
    import pandas as pd

    from mi_helpers.identity import TokenInfo

__all__ = [
    "CrossCheck",
    "InstanceMetadata",
    "authorization_client",
    "compute_client",
    "cross_check",
    "get_vm",
    "instance_metadata",
    "resource_client",
    "resources_by_name",
    "role_assignments",
    "role_name",
    "vm_identity",
    "vm_principal_id",
]

_CLIENT_KWARGS: dict[str, Any] = {"retry_total": 2, "connection_timeout": 5, "read_timeout": 10}


# --------------------------------------------------------------------------------------------- IMDS


@dataclass(frozen=True)
class InstanceMetadata:
    """The facts of ``/metadata/instance`` this tutorial needs (all strings, as IMDS sends them)."""

    subscription_id: str
    resource_group: str
    name: str
    location: str
    vm_id: str
    resource_id: str
    az_environment: str
    os_type: str = ""
    vm_size: str = ""


def instance_metadata(*, timeout: tuple[float, float] = (2.0, 5.0)) -> InstanceMetadata:
    """Read the VM's instance metadata from IMDS (``Metadata: true``, proxies bypassed, explicit timeouts).

    Raises ``requests`` exceptions (connection, timeout) or ``requests.HTTPError`` for a non-200 answer.
    """
    import requests

    from mi_helpers.targeting import target

    url = f"{target().imds_url}{Imds.INSTANCE_PATH}"
    with requests.Session() as session:
        session.trust_env = False  # "IMDS is not intended to be used behind a proxy"
        resp = session.get(
            url,
            params={"api-version": Imds.INSTANCE_API_VERSION},
            headers={"Metadata": "true"},
            timeout=timeout,
        )
    resp.raise_for_status()
    compute = resp.json().get("compute", {})
    return InstanceMetadata(
        subscription_id=compute.get("subscriptionId", ""),
        resource_group=compute.get("resourceGroupName", ""),
        name=compute.get("name", ""),
        location=compute.get("location", ""),
        vm_id=compute.get("vmId", ""),
        resource_id=compute.get("resourceId", ""),
        az_environment=compute.get("azEnvironment", ""),
        os_type=compute.get("osType", ""),
        vm_size=compute.get("vmSize", ""),
    )


# --------------------------------------------------------------------------------------------- clients


def _client_kwargs(**overrides: Any) -> dict[str, Any]:
    from mi_helpers.targeting import target

    tgt = target()
    kwargs: dict[str, Any] = {
        "base_url": tgt.arm_url,
        "credential_scopes": [tgt.arm_scope],
        **_CLIENT_KWARGS,
    }
    if tgt.ca_bundle:
        kwargs["connection_verify"] = tgt.ca_bundle
    kwargs.update(overrides)
    return kwargs


def _credential(credential: Any) -> Any:
    if credential is not None:
        return credential
    from mi_helpers.identity import shared_credential

    return shared_credential()


def compute_client(subscription_id: str, *, credential: Any = None, **kwargs: Any) -> Any:
    """``ComputeManagementClient`` aimed at the current target's ARM."""
    from azure.mgmt.compute import ComputeManagementClient

    sub = validate_guid(subscription_id, "subscription_id")
    return ComputeManagementClient(_credential(credential), sub, **_client_kwargs(**kwargs))


def resource_client(subscription_id: str, *, credential: Any = None, **kwargs: Any) -> Any:
    """``ResourceManagementClient`` (azure-mgmt-resource's ``resources`` package) for the current target."""
    from azure.mgmt.resource.resources import ResourceManagementClient

    sub = validate_guid(subscription_id, "subscription_id")
    return ResourceManagementClient(_credential(credential), sub, **_client_kwargs(**kwargs))


def authorization_client(subscription_id: str, *, credential: Any = None, **kwargs: Any) -> Any:
    """``AuthorizationManagementClient`` for role assignments on the current target."""
    from azure.mgmt.authorization import AuthorizationManagementClient

    sub = validate_guid(subscription_id, "subscription_id")
    return AuthorizationManagementClient(_credential(credential), sub, **_client_kwargs(**kwargs))


# --------------------------------------------------------------------------------------------- VM


def _vm_coordinates(
    subscription_id: str | None, resource_group: str | None, vm_name: str | None
) -> tuple[str, str, str]:
    """Validate what was given; fill the rest from instance metadata (only if something is missing)."""
    sub = validate_guid(subscription_id, "subscription_id") if subscription_id is not None else None
    rg = validate_resource_group(resource_group) if resource_group is not None else None
    name = validate_vm_name(vm_name) if vm_name is not None else None
    if sub is None or rg is None or name is None:
        md = instance_metadata()
        sub = sub or md.subscription_id
        rg = rg or md.resource_group
        name = name or md.name
    return sub, rg, name


def get_vm(
    subscription_id: str | None = None,
    resource_group: str | None = None,
    vm_name: str | None = None,
    *,
    credential: Any = None,
) -> Any:
    """The VM as azure-mgmt-compute returns it (``virtual_machines.get``); defaults from instance metadata."""
    sub, rg, name = _vm_coordinates(subscription_id, resource_group, vm_name)
    with compute_client(sub, credential=credential) as client:
        return client.virtual_machines.get(rg, name)


def vm_principal_id(
    subscription_id: str | None = None,
    resource_group: str | None = None,
    vm_name: str | None = None,
    *,
    credential: Any = None,
) -> str | None:
    """The VM's system-assigned principal (object) ID, or None when it has no system-assigned identity.

    Python twin of ``az resource list -n <vm> --query "[*].identity.principalId" -o tsv`` and
    ``(Get-AzVM -ResourceGroupName <rg> -Name <vm>).Identity.PrincipalId``.
    """
    vm = get_vm(subscription_id, resource_group, vm_name, credential=credential)
    identity = getattr(vm, "identity", None)
    return getattr(identity, "principal_id", None) if identity is not None else None


def _uami_name(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def vm_identity(
    subscription_id: str | None = None,
    resource_group: str | None = None,
    vm_name: str | None = None,
    *,
    credential: Any = None,
    vm: Any = None,
) -> pd.DataFrame:
    """Every identity of the VM as a DataFrame: kind, name, principal_id, client_id, resource_id.

    One ``system-assigned`` row (when enabled; ARM does not report its client ID) and one
    ``user-assigned`` row per attached identity. Pass ``vm`` to reuse a VM already fetched.
    """
    import pandas as pd

    if vm is None:
        vm = get_vm(subscription_id, resource_group, vm_name, credential=credential)
    rows = []
    identity = getattr(vm, "identity", None)
    if identity is not None and getattr(identity, "principal_id", None):
        rows.append(
            {
                "kind": "system-assigned",
                "name": vm.name,
                "principal_id": identity.principal_id,
                "client_id": "",
                "resource_id": vm.id,
            }
        )
    for rid, value in (getattr(identity, "user_assigned_identities", None) or {}).items():
        rows.append(
            {
                "kind": "user-assigned",
                "name": _uami_name(rid),
                "principal_id": getattr(value, "principal_id", "") or "",
                "client_id": getattr(value, "client_id", "") or "",
                "resource_id": rid,
            }
        )
    return pd.DataFrame(rows, columns=["kind", "name", "principal_id", "client_id", "resource_id"])


def _resource_group_of(resource_id: str) -> str:
    parts = resource_id.split("/")
    for i, part in enumerate(parts[:-1]):
        if part.lower() == "resourcegroups":
            return parts[i + 1]
    return ""


def resources_by_name(
    name: str, *, subscription_id: str | None = None, credential: Any = None
) -> pd.DataFrame:
    """Resources called ``name`` in the subscription (``resources.list(filter="name eq '…'")``).

    Python twin of ``az resource list -n <name>``. Columns: name, type, resource_group, location,
    identity_type, principal_id, id. The subscription defaults to the VM's (instance metadata).
    """
    import pandas as pd

    text = name.strip() if isinstance(name, str) else name
    if not isinstance(text, str) or not text:
        raise InputError("name", f"{name!r} is not a resource name (1 or more characters)", name)
    if "'" in text or len(text) > 260:
        raise InputError(
            "name", f"{text[:40]!r} is not a resource name (no quotes, at most 260 characters)", name
        )
    sub = (
        validate_guid(subscription_id, "subscription_id")
        if subscription_id
        else instance_metadata().subscription_id
    )
    rows = []
    with resource_client(sub, credential=credential) as client:
        for res in client.resources.list(filter=f"name eq '{text}'"):
            identity = getattr(res, "identity", None)
            rows.append(
                {
                    "name": res.name,
                    "type": res.type,
                    "resource_group": _resource_group_of(res.id or ""),
                    "location": res.location,
                    "identity_type": _enum_text(getattr(identity, "type", None)),
                    "principal_id": (getattr(identity, "principal_id", "") or "")
                    if identity is not None
                    else "",
                    "id": res.id,
                }
            )
    columns = ["name", "type", "resource_group", "location", "identity_type", "principal_id", "id"]
    return pd.DataFrame(rows, columns=columns)


def role_name(role_definition_id: str) -> str:
    """The built-in role's name for a role definition ID (or its GUID); the GUID itself for other roles."""
    guid = role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()
    return Roles.BY_ID.get(guid, guid)


def role_assignments(
    principal_id: str | None = None,
    scope: str | None = None,
    *,
    subscription_id: str | None = None,
    credential: Any = None,
) -> pd.DataFrame:
    """Role assignments that apply at ``scope`` (default: the subscription), optionally for one principal.

    Uses ``role_assignments.list_for_scope`` (with ``principalId eq '…'`` when a principal is given, which
    ARM answers with assignments at, above and below the scope). Built-in role IDs are shown by name.
    Python twin of ``az role assignment list --assignee-object-id <id> --all``.
    """
    import pandas as pd

    pid = validate_guid(principal_id, "principal_id") if principal_id is not None else None
    if scope is not None:
        scope = validate_arm_scope(scope)
        parts = scope.split("/")
        sub = parts[2] if len(parts) > 2 else None
    else:
        sub = None
    if subscription_id is not None:
        sub = validate_guid(subscription_id, "subscription_id")
    if sub is None:
        sub = instance_metadata().subscription_id
    scope = scope or f"/subscriptions/{sub}"
    flt = f"principalId eq '{pid}'" if pid else None
    rows = []
    with authorization_client(sub, credential=credential) as client:
        for ra in client.role_assignments.list_for_scope(scope, filter=flt):
            role_id = getattr(ra, "role_definition_id", "") or ""
            rows.append(
                {
                    "principal_id": getattr(ra, "principal_id", ""),
                    "role": role_name(role_id),
                    "scope": getattr(ra, "scope", ""),
                    "principal_type": str(getattr(ra, "principal_type", "") or ""),
                    "role_definition_id": role_id,
                    "id": ra.id,
                }
            )
    columns = ["principal_id", "role", "scope", "principal_type", "role_definition_id", "id"]
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------------------------- cross-check


def _enum_text(value: Any) -> str:
    """``ResourceIdentityType.SYSTEM_ASSIGNED`` -> ``SystemAssigned``, the wire value the portal shows."""
    if value is None:
        return ""
    return str(getattr(value, "value", value))


@dataclass(frozen=True)
class CrossCheck:
    """Does the token's ``oid`` belong to this VM's identity? ``explanation`` says why (not)."""

    matches: bool
    token_principal_id: str | None
    expected_principal_id: str | None
    identity: str  # "system-assigned" or "user-assigned <name>"
    explanation: str

    def _repr_html_(self) -> str:
        import html

        verdict = "Match" if self.matches else "Mismatch"
        return f"<p><strong>{verdict}:</strong> {html.escape(self.explanation)}</p>"


def cross_check(token_info: TokenInfo, vm: Any = None) -> CrossCheck:
    """Compare a token's ``oid`` with the VM's principal ID as ARM reports it.

    For a user-assigned identity (token ``xms_mirid`` names a ``userAssignedIdentities`` resource) the
    expected ID is that identity's ``principalId`` on the VM; otherwise the VM's system-assigned one.
    ``vm`` defaults to :func:`get_vm` for this VM.
    """
    if vm is None:
        vm = get_vm()
    oid = token_info.principal_id
    mirid = (token_info.mi_resource_id or "").rstrip("/")
    identity = getattr(vm, "identity", None)
    uamis = getattr(identity, "user_assigned_identities", None) or {}
    if "/microsoft.managedidentity/userassignedidentities/" in mirid.lower():
        name = _uami_name(mirid)
        match = next((v for k, v in uamis.items() if k.rstrip("/").lower() == mirid.lower()), None)
        if match is None:
            return CrossCheck(
                False,
                oid,
                None,
                f"user-assigned {name}",
                f"the token is for user-assigned identity {name!r}, which is not attached to VM {vm.name!r}",
            )
        expected = getattr(match, "principal_id", None)
        label = f"user-assigned {name}"
    else:
        expected = getattr(identity, "principal_id", None) if identity is not None else None
        label = "system-assigned"
        if expected is None:
            return CrossCheck(
                False,
                oid,
                None,
                label,
                f"VM {vm.name!r} has no system-assigned identity, yet the token has oid {oid}",
            )
    if oid and expected and oid.lower() == expected.lower():
        return CrossCheck(
            True, oid, expected, label, f"token oid {oid} is the {label} identity of VM {vm.name!r}"
        )
    others = [getattr(v, "principal_id", None) for v in uamis.values()]
    if identity is not None and getattr(identity, "principal_id", None):
        others.append(identity.principal_id)
    hint = (
        " (it belongs to another identity of this VM: check which identity you asked for)"
        if oid and oid.lower() in {o.lower() for o in others if o}
        else " (a different principal: an identity of another resource, or a stale/foreign token)"
    )
    return CrossCheck(
        False,
        oid,
        expected,
        label,
        f"token oid {oid} is not the {label} principal {expected} of VM {vm.name!r}{hint}",
    )
