"""The ARM HTTP layer (read-only subset): auth → subscription → RBAC → resource group → resource.

Paths are case-insensitive and ``//`` collapses (the az CLI asks for ``//metadata/endpoints``). Every check
and its order follow DESIGN §8 and the protocol reference §5: a missing ``api-version`` is refused first,
then the bearer token (signature, issuer, one of the four ARM audiences, ``exp`` against ARM's clock, which a
scenario may skew), then subscription existence, RBAC (403 ``AuthorizationFailed`` at the requested scope),
resource-group existence and finally the resource. Subscription-wide lists are RBAC-filtered: a principal
with Reader on one resource group sees that group's resources; one without any role in the subscription
gets 403.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from mi_helpers.emulator import errors as E
from mi_helpers.emulator.scenarios import TokenBucket
from mi_helpers.emulator.tokens import (
    TokenAudienceError,
    TokenError,
    TokenExpiredError,
    TokenNotYetValidError,
)
from mi_helpers.emulator.world import (
    BUILTIN_ROLES,
    GenericResource,
    UserAssignedIdentity,
    VirtualMachine,
    World,
    scope_within,
)

if TYPE_CHECKING:
    from mi_helpers.emulator.server import Emulator

__all__ = ["ArmLayer", "canonical_path"]

_KEYWORDS = {
    k.lower(): k.lower()
    for k in (
        "subscriptions",
        "resourceGroups",
        "providers",
        "resources",
        "Microsoft.Compute",
        "virtualMachines",
        "Microsoft.ManagedIdentity",
        "userAssignedIdentities",
        "Microsoft.Authorization",
        "roleAssignments",
        "roleDefinitions",
        "metadata",
        "endpoints",
    )
}

_URLS = Map(
    [
        Rule("/metadata/endpoints", endpoint="endpoints"),
        Rule("/subscriptions", endpoint="subs_list"),
        Rule("/subscriptions/<sub>", endpoint="sub_get"),
        Rule("/subscriptions/<sub>/resourcegroups", endpoint="rg_list"),
        Rule("/subscriptions/<sub>/resourcegroups/<rg>", endpoint="rg_get"),
        Rule("/subscriptions/<sub>/resources", endpoint="res_list_sub"),
        Rule("/subscriptions/<sub>/resourcegroups/<rg>/resources", endpoint="res_list_rg"),
        Rule(
            "/subscriptions/<sub>/providers/microsoft.compute/virtualmachines",
            endpoint="typed_list_sub",
            defaults={"kind": "vm"},
        ),
        Rule(
            "/subscriptions/<sub>/resourcegroups/<rg>/providers/microsoft.compute/virtualmachines",
            endpoint="typed_list_rg",
            defaults={"kind": "vm"},
        ),
        Rule(
            "/subscriptions/<sub>/resourcegroups/<rg>/providers/microsoft.compute/virtualmachines/<name>",
            endpoint="typed_get",
            defaults={"kind": "vm"},
        ),
        Rule(
            "/subscriptions/<sub>/resourcegroups/<rg>/providers/microsoft.managedidentity/userassignedidentities",
            endpoint="typed_list_rg",
            defaults={"kind": "uami"},
        ),
        Rule(
            "/subscriptions/<sub>/providers/microsoft.managedidentity/userassignedidentities",
            endpoint="typed_list_sub",
            defaults={"kind": "uami"},
        ),
        Rule(
            "/subscriptions/<sub>/resourcegroups/<rg>/providers/microsoft.managedidentity/userassignedidentities/<name>",
            endpoint="typed_get",
            defaults={"kind": "uami"},
        ),
        Rule(
            "/subscriptions/<sub>/resourcegroups/<rg>/providers/<ns>/<rtype>/<name>", endpoint="generic_get"
        ),
        Rule("/providers/microsoft.authorization/roleassignments", endpoint="ra_list"),
        Rule("/<path:scope>/providers/microsoft.authorization/roleassignments", endpoint="ra_list"),
        Rule("/<path:scope>/providers/microsoft.authorization/roleassignments/<name>", endpoint="ra_get"),
        Rule("/providers/microsoft.authorization/roledefinitions", endpoint="rd_list"),
        Rule("/providers/microsoft.authorization/roledefinitions/<name>", endpoint="rd_get"),
        Rule("/<path:scope>/providers/microsoft.authorization/roledefinitions", endpoint="rd_list"),
        Rule("/<path:scope>/providers/microsoft.authorization/roledefinitions/<name>", endpoint="rd_get"),
    ],
    strict_slashes=False,
    merge_slashes=True,
)
_ADAPTER = _URLS.bind("arm.local")  # paths are canonicalised first; binding once saves per-request work

_TERM = re.compile(r"^\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_RES_FILTER_FIELDS = {
    "name": "name",
    "resourcetype": "type",
    "resourcegroup": "resource_group",
    "location": "location",
}


def canonical_path(path: str) -> str:
    """Collapse empty segments and lower-case the fixed ARM keywords (names keep their case)."""
    parts = [p for p in path.split("/") if p]
    return "/" + "/".join(_KEYWORDS.get(p.lower(), p) for p in parts)


def _in_group(resource: Any, sub: str, rg: str) -> bool:
    """Is ``resource`` in resource group ``rg`` of subscription ``sub``? (ARM names are case-insensitive.)"""
    return resource.subscription_id.lower() == sub.lower() and resource.resource_group.lower() == rg.lower()


def _arm_json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status, content_type=E.ARM_CONTENT_TYPE)


class _Ctx:
    """What the handlers need about the caller."""

    def __init__(self, oid: str, claims: dict[str, Any], rbac_denied: bool) -> None:
        self.oid = oid
        self.claims = claims
        self.rbac_denied = rbac_denied


class ArmLayer:
    """Answers requests on the ARM (HTTPS) listener."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.reads = TokenBucket(250, 25)

    # ------------------------------------------------------------------ entry point
    def handle(self, request: Request) -> Response:
        try:
            resp = self._handle(request)
        except E.WireError as err:
            resp = err.response()
        self._stamp(request, resp)
        return resp

    def _stamp(self, request: Request, resp: Response) -> None:
        rid = str(uuid.uuid4())
        now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        resp.headers["Cache-Control"] = "no-cache"
        resp.headers["x-ms-request-id"] = rid
        resp.headers["x-ms-correlation-request-id"] = request.headers.get(
            "x-ms-correlation-request-id"
        ) or request.headers.get("x-ms-client-request-id", rid)
        resp.headers["x-ms-routing-request-id"] = f"WESTEUROPE:{now}:{rid}"
        resp.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        if request.environ.get("mi.authenticated"):
            reads = self.reads.remaining()
            resp.headers["x-ms-ratelimit-remaining-subscription-reads"] = str(max(reads - 1, 0))
            resp.headers["x-ms-ratelimit-remaining-subscription-global-reads"] = str(max(reads * 15 - 1, 0))

    def _handle(self, request: Request) -> Response:
        emu = self.emu
        path = canonical_path(request.path)
        if path == "/metadata/endpoints":
            return self._endpoints(request)
        if "api-version" not in request.args or not request.args.get("api-version", "").strip():
            raise E.arm_missing_api_version()
        claims = self._authenticate(request)
        oid = str(claims.get("oid", ""))
        request.environ["mi.authenticated"] = True
        request.environ["mi.identity"] = oid
        now = time.time()
        self.reads.take(now)
        fault = emu.engine.check("arm", now)
        if fault is not None:
            request.environ["mi.fault"] = fault.label
            m = re.match(r"^/subscriptions/([^/]+)", path)
            sub = m.group(1) if m else emu.world.default_subscription.id
            if fault.status == 429:
                raise E.arm_throttled(sub, oid, int(fault.headers.get("Retry-After", "1")))
            raise E.WireError(
                fault.status, fault.body, content_type=fault.content_type, headers=fault.headers
            )
        try:
            endpoint, args = _ADAPTER.match(path, method="GET")
        except HTTPException:
            raise E.ArmError(
                404,
                "NotFound",
                f"The requested path '{request.path}' is not served by the emulated Azure Resource Manager.",
            ) from None
        if request.method not in ("GET", "HEAD"):
            raise E.ArmError(
                405,
                "MethodNotAllowed",
                f"The emulated Azure Resource Manager is read-only; '{request.method}' is not supported.",
            )
        ctx = _Ctx(oid, claims, False)
        handler = getattr(self, "_" + endpoint)
        result: Response = handler(request, ctx, **args)
        return result

    # ------------------------------------------------------------------ authentication and authorization
    def _authenticate(self, request: Request) -> dict[str, Any]:
        header = request.headers.get("Authorization")
        if header is None:
            raise E.arm_missing_authorization()
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise E.arm_malformed_authorization()
        now = time.time() + self.emu.arm_clock_skew()
        try:
            return self.emu.issuer.verify(token.strip(), now)
        except TokenAudienceError as exc:
            raise E.arm_invalid_audience(exc.aud) from None
        except TokenExpiredError as exc:
            raise E.arm_expired_token(exc.exp, exc.now) from None
        except TokenNotYetValidError as exc:
            raise E.arm_not_yet_valid(exc.nbf, exc.now) from None
        except TokenError:
            raise E.arm_invalid_token() from None

    def _rbac_denied(self, request: Request, ctx: _Ctx) -> bool:
        """Consult the fault engine once per request (``role-propagating``)."""
        if "mi.rbac_checked" not in request.environ:
            request.environ["mi.rbac_checked"] = True
            fault = self.emu.engine.check("arm-rbac")
            if fault is not None:
                request.environ["mi.fault"] = fault.label
                ctx.rbac_denied = True
        return ctx.rbac_denied

    def _subscription(self, sub: str) -> str:
        s = self.emu.world.subscription(sub)
        if s is None:
            raise E.arm_subscription_not_found(sub)
        return s.id

    def _authorize(self, request: Request, ctx: _Ctx, scope: str, action: str) -> None:
        """403 unless the caller may read ``scope`` (an assignment at it or above it)."""
        if self._rbac_denied(request, ctx) or not self.emu.world.can_read(ctx.oid, scope):
            raise E.arm_authorization_failed(ctx.oid, action, scope)

    def _list_access(self, request: Request, ctx: _Ctx, scope: str, action: str) -> bool:
        """For lists: True = whole scope readable; False = filter per item; 403 if nothing inside is."""
        world = self.emu.world
        if self._rbac_denied(request, ctx):
            raise E.arm_authorization_failed(ctx.oid, action, scope)
        if world.can_read(ctx.oid, scope):
            return True
        if world.has_access_in(ctx.oid, scope):
            return False
        raise E.arm_authorization_failed(ctx.oid, action, scope)

    def _rg(self, sub: str, rg: str) -> str:
        r = self.emu.world.resource_group(sub, rg)
        if r is None:
            raise E.arm_resource_group_not_found(rg)
        return r.name

    # ------------------------------------------------------------------ renderers
    def _sub_json(self, sub_id: str) -> dict[str, Any]:
        s = self.emu.world.subscription(sub_id)
        assert s is not None
        return {
            "id": f"/subscriptions/{s.id}",
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
            "subscriptionId": s.id,
            "tenantId": self.emu.world.tenant.id,
            "displayName": s.name,
            "state": "Enabled",
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "PayAsYouGo_2014-09-01",
                "spendingLimit": "Off",
            },
        }

    def _vm_identity(self, vm: VirtualMachine) -> dict[str, Any] | None:
        world = self.emu.world
        uamis = world.attached_identities(vm)
        system = vm.has_system_identity
        if not system and not uamis:
            return None
        kinds = (["SystemAssigned"] if system else []) + (["UserAssigned"] if uamis else [])
        ident: dict[str, Any] = {"type": ", ".join(kinds)}
        if system:
            assert vm.system_identity is not None
            ident["principalId"] = vm.system_identity.principal_id
            ident["tenantId"] = world.tenant.id
        if uamis:
            ident["userAssignedIdentities"] = {
                u.resource_id: {"principalId": u.principal_id, "clientId": u.client_id} for u in uamis
            }
        return ident

    def _vm_json(self, vm: VirtualMachine) -> dict[str, Any]:
        linux = vm.os_type.lower() == "linux"
        body: dict[str, Any] = {
            "name": vm.name,
            "id": vm.resource_id,
            "type": "Microsoft.Compute/virtualMachines",
            "location": vm.location,
            "tags": dict(vm.tags),
        }
        ident = self._vm_identity(vm)
        if ident is not None:
            body["identity"] = ident
        body["properties"] = {
            "vmId": vm.vm_id,
            "hardwareProfile": {"vmSize": vm.vm_size},
            "storageProfile": {
                "imageReference": {
                    "publisher": "Canonical" if linux else "MicrosoftWindowsServer",
                    "offer": "0001-com-ubuntu-server-jammy" if linux else "WindowsServer",
                    "sku": "22_04-lts-gen2" if linux else "2022-datacenter-g2",
                    "version": "latest",
                },
                "osDisk": {
                    "osType": vm.os_type,
                    "name": f"{vm.name}_OsDisk_1",
                    "createOption": "FromImage",
                    "caching": "ReadWrite",
                    "managedDisk": {"storageAccountType": "Premium_LRS"},
                    "deleteOption": "Delete",
                    "diskSizeGB": 30,
                },
                "dataDisks": [],
            },
            "osProfile": {
                "computerName": vm.name,
                "adminUsername": "azureuser",
                **(
                    {"linuxConfiguration": {"disablePasswordAuthentication": True, "provisionVMAgent": True}}
                    if linux
                    else {"windowsConfiguration": {"provisionVMAgent": True, "enableAutomaticUpdates": True}}
                ),
                "secrets": [],
                "allowExtensionOperations": True,
            },
            "networkProfile": {
                "networkInterfaces": [
                    {
                        "id": f"/subscriptions/{vm.subscription_id}/resourceGroups/{vm.resource_group}"
                        f"/providers/Microsoft.Network/networkInterfaces/{vm.name}-nic"
                    }
                ]
            },
            "provisioningState": "Succeeded",
            "timeCreated": "2026-01-01T00:00:00.0000000+00:00",
        }
        return body

    def _uami_json(self, u: UserAssignedIdentity) -> dict[str, Any]:
        return {
            "id": u.resource_id,
            "name": u.name,
            "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
            "location": u.location,
            "tags": dict(u.tags),
            "properties": {
                "isolationScope": "None",
                "tenantId": self.emu.world.tenant.id,
                "principalId": u.principal_id,
                "clientId": u.client_id,
            },
        }

    def _generic_json(self, r: GenericResource) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": r.resource_id,
            "name": r.name,
            "type": r.type,
            "location": r.location,
            "tags": dict(r.tags),
        }
        if r.kind:
            body["kind"] = r.kind
        if r.sku:
            body["sku"] = {"name": r.sku}
        return body

    def _rg_json(self, sub: str, rg: str) -> dict[str, Any]:
        r = self.emu.world.resource_group(sub, rg)
        assert r is not None
        return {
            "id": r.resource_id,
            "name": r.name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": r.location,
            "tags": dict(r.tags),
            "properties": {"provisioningState": "Succeeded"},
        }

    def _ra_json(self, a: Any) -> dict[str, Any]:
        world = self.emu.world
        sub = world.default_subscription.id
        m = re.match(r"^/subscriptions/([^/]+)", a.scope, re.IGNORECASE)
        if m:
            sub = m.group(1)
        return {
            "id": a.resource_id,
            "name": a.id,
            "type": "Microsoft.Authorization/roleAssignments",
            "properties": {
                "roleDefinitionId": f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/"
                f"{a.role_definition_guid}",
                "principalId": a.principal_id,
                "principalType": a.principal_type,
                "scope": a.scope,
                "condition": None,
                "conditionVersion": None,
                "createdOn": "2026-01-01T00:00:00.0000000Z",
                "updatedOn": "2026-01-01T00:00:00.0000000Z",
                "createdBy": None,
                "updatedBy": "00000000-0000-0000-0000-000000000000",
                "delegatedManagedIdentityResourceId": None,
                "description": None,
            },
        }

    def _rd_json(self, role: str, prefix: str) -> dict[str, Any]:
        d = BUILTIN_ROLES[role]
        return {
            "id": f"{prefix}/providers/Microsoft.Authorization/roleDefinitions/{d['id']}",
            "name": d["id"],
            "type": "Microsoft.Authorization/roleDefinitions",
            "properties": {
                "roleName": role,
                "type": "BuiltInRole",
                "description": d["description"],
                "assignableScopes": ["/"],
                "permissions": [
                    {
                        "actions": list(d["actions"]),
                        "notActions": list(d["not_actions"]),
                        "dataActions": [],
                        "notDataActions": [],
                    }
                ],
                "createdOn": "2015-02-02T21:55:09.8806423Z",
                "updatedOn": "2021-11-11T20:13:47.8628684Z",
                "createdBy": None,
                "updatedBy": None,
            },
        }

    # ------------------------------------------------------------------ handlers
    def _endpoints(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            raise E.ArmError(405, "MethodNotAllowed", "Only GET is supported on /metadata/endpoints.")
        base = f"https://{request.host}/"
        return _arm_json(
            {
                "name": "AzureEmulator",
                "resourceManager": base,
                "portal": base,
                "gallery": "https://gallery.azure.com/",
                "graph": "https://graph.windows.net/",
                "graphAudience": "https://graph.windows.net/",
                "microsoftGraphResourceId": "https://graph.microsoft.com/",
                "batch": "https://batch.core.windows.net/",
                "sqlManagement": "https://management.core.windows.net:8443/",
                "vmImageAliasDoc": "https://raw.githubusercontent.com/Azure/azure-rest-api-specs/master/arm-compute/quickstart-templates/aliases.json",
                "authentication": {
                    "loginEndpoint": "https://login.microsoftonline.com/",
                    "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
                    "tenant": "common",
                    "identityProvider": "AAD",
                },
                "suffixes": {
                    "acrLoginServer": "azurecr.io",
                    "keyVaultDns": "vault.azure.net",
                    "sqlServerHostname": "database.windows.net",
                    "storage": "core.windows.net",
                },
            }
        )

    def _subs_list(self, request: Request, ctx: _Ctx) -> Response:
        world = self.emu.world
        denied = self._rbac_denied(request, ctx)
        subs = (
            []
            if denied
            else [s.id for s in world.subscriptions if world.has_access_in(ctx.oid, f"/subscriptions/{s.id}")]
        )
        return _arm_json(
            {"value": [self._sub_json(s) for s in subs], "count": {"type": "Total", "value": len(subs)}}
        )

    def _sub_get(self, request: Request, ctx: _Ctx, sub: str) -> Response:
        sid = self._subscription(sub)
        self._list_access(request, ctx, f"/subscriptions/{sub}", "Microsoft.Resources/subscriptions/read")
        return _arm_json(self._sub_json(sid))

    def _rg_list(self, request: Request, ctx: _Ctx, sub: str) -> Response:
        world = self.emu.world
        self._subscription(sub)
        scope = f"/subscriptions/{sub}"
        full = self._list_access(request, ctx, scope, "Microsoft.Resources/subscriptions/resourceGroups/read")
        with world.lock:
            rgs = [r for r in world.resource_groups if r.subscription_id.lower() == sub.lower()]
            rgs = [r for r in rgs if full or world.can_read(ctx.oid, r.resource_id)]
            return _arm_json({"value": [self._rg_json(sub, r.name) for r in rgs]})

    def _rg_get(self, request: Request, ctx: _Ctx, sub: str, rg: str) -> Response:
        self._subscription(sub)
        self._authorize(
            request,
            ctx,
            f"/subscriptions/{sub}/resourceGroups/{rg}",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
        )
        if self.emu.world.resource_group(sub, rg) is None:
            if request.method == "HEAD":
                return Response(status=404)
            raise E.arm_resource_group_not_found(rg)
        if request.method == "HEAD":
            return Response(status=204)
        return _arm_json(self._rg_json(sub, rg))

    def _items_in(self, sub: str, rg: str | None) -> list[tuple[str, str, str, str, dict[str, Any]]]:
        """(resource_group, name, type, location, json) of every resource in a subscription or group."""
        world = self.emu.world
        out: list[tuple[str, str, str, str, str, Any]] = []
        with world.lock:
            for vm in world.vms:
                out.append(
                    (
                        vm.subscription_id,
                        vm.resource_group,
                        vm.name,
                        "Microsoft.Compute/virtualMachines",
                        vm.location,
                        vm,
                    )
                )
            for u in world.identities:
                out.append(
                    (
                        u.subscription_id,
                        u.resource_group,
                        u.name,
                        "Microsoft.ManagedIdentity/userAssignedIdentities",
                        u.location,
                        u,
                    )
                )
            for r in world.resources:
                out.append((r.subscription_id, r.resource_group, r.name, r.type, r.location, r))
            items = []
            for s, g, name, rtype, loc, obj in out:
                if s.lower() != sub.lower() or (rg is not None and g.lower() != rg.lower()):
                    continue
                if isinstance(obj, VirtualMachine):
                    body: dict[str, Any] = {
                        "id": obj.resource_id,
                        "name": name,
                        "type": rtype,
                        "location": loc,
                        "tags": dict(obj.tags),
                    }
                    ident = self._vm_identity(obj)
                    if ident is not None:
                        body["identity"] = ident
                elif isinstance(obj, UserAssignedIdentity):
                    body = {
                        "id": obj.resource_id,
                        "name": name,
                        "type": rtype,
                        "location": loc,
                        "tags": dict(obj.tags),
                    }
                else:
                    body = self._generic_json(obj)
                items.append((g, name, rtype, loc, body))
            return items

    def _parse_resource_filter(self, text: str | None) -> dict[str, str]:
        if text is None or not text.strip():
            return {}
        terms: dict[str, str] = {}
        for part in _AND.split(text.strip()):
            m = _TERM.match(part)
            field = _RES_FILTER_FIELDS.get(m.group(1).lower()) if m else None
            if m is None or field is None:
                raise E.ArmError(
                    400,
                    "InvalidFilterInQueryString",
                    f"Invalid $filter '{text}' specified in the query string. The emulator understands "
                    "name eq '…', resourceType eq '…', resourceGroup eq '…' and location eq '…', "
                    "joined by 'and'.",
                )
            terms[field] = m.group(2).replace("''", "'")
        return terms

    def _resources(self, request: Request, ctx: _Ctx, sub: str, rg: str | None) -> Response:
        world = self.emu.world
        self._subscription(sub)
        terms = self._parse_resource_filter(request.args.get("$filter"))
        if rg is None:
            full = self._list_access(
                request, ctx, f"/subscriptions/{sub}", "Microsoft.Resources/subscriptions/resources/read"
            )
        else:
            self._authorize(
                request,
                ctx,
                f"/subscriptions/{sub}/resourceGroups/{rg}",
                "Microsoft.Resources/subscriptions/resourceGroups/resources/read",
            )
            self._rg(sub, rg)
            full = True
        expand = {e.strip().lower() for e in request.args.get("$expand", "").split(",") if e.strip()}
        value = []
        for g, name, rtype, loc, body in self._items_in(sub, rg):
            if not full and not world.can_read(ctx.oid, body["id"]):
                continue
            cand = {"name": name, "type": rtype, "resource_group": g, "location": loc}
            if all(cand[k].lower() == v.lower() for k, v in terms.items()):
                if "createdtime" in expand:
                    body["createdTime"] = "2026-01-01T00:00:00.0000000Z"
                if "changedtime" in expand:
                    body["changedTime"] = "2026-01-01T00:00:00.0000000Z"
                if "provisioningstate" in expand:
                    body["provisioningState"] = "Succeeded"
                value.append(body)
        return _arm_json({"value": value})

    def _res_list_sub(self, request: Request, ctx: _Ctx, sub: str) -> Response:
        return self._resources(request, ctx, sub, None)

    def _res_list_rg(self, request: Request, ctx: _Ctx, sub: str, rg: str) -> Response:
        return self._resources(request, ctx, sub, rg)

    # ------------------------------------------------------------------ typed resources: VMs, UAMIs
    def _typed(self, kind: str) -> tuple[str, Callable[[World], list[Any]], Callable[[Any], dict[str, Any]]]:
        """Resource type, where the world keeps them, and how ARM renders one, for a route's ``kind``."""
        if kind == "vm":
            return "Microsoft.Compute/virtualMachines", lambda w: w.vms, self._vm_json
        return "Microsoft.ManagedIdentity/userAssignedIdentities", lambda w: w.identities, self._uami_json

    def _typed_list_sub(self, request: Request, ctx: _Ctx, sub: str, kind: str) -> Response:
        world = self.emu.world
        rtype, items, render = self._typed(kind)
        self._subscription(sub)
        full = self._list_access(request, ctx, f"/subscriptions/{sub}", f"{rtype}/read")
        with world.lock:
            found = [x for x in items(world) if x.subscription_id.lower() == sub.lower()]
            found = [x for x in found if full or world.can_read(ctx.oid, x.resource_id)]
            return _arm_json({"value": [render(x) for x in found]})

    def _typed_list_rg(self, request: Request, ctx: _Ctx, sub: str, rg: str, kind: str) -> Response:
        world = self.emu.world
        rtype, items, render = self._typed(kind)
        self._subscription(sub)
        self._authorize(request, ctx, f"/subscriptions/{sub}/resourceGroups/{rg}", f"{rtype}/read")
        self._rg(sub, rg)
        with world.lock:
            return _arm_json({"value": [render(x) for x in items(world) if _in_group(x, sub, rg)]})

    def _typed_get(self, request: Request, ctx: _Ctx, sub: str, rg: str, name: str, kind: str) -> Response:
        world = self.emu.world
        rtype, items, render = self._typed(kind)
        self._subscription(sub)
        scope = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{rtype}/{name}"
        self._authorize(request, ctx, scope, f"{rtype}/read")
        rg_name = self._rg(sub, rg)
        with world.lock:
            found = next(
                (x for x in items(world) if _in_group(x, sub, rg) and x.name.lower() == name.lower()), None
            )
            if found is None:
                raise E.arm_resource_not_found(rtype, name, rg_name)
            return _arm_json(render(found))

    def _generic_get(
        self, request: Request, ctx: _Ctx, sub: str, rg: str, ns: str, rtype: str, name: str
    ) -> Response:
        if (
            ns.lower() == "microsoft.authorization"
        ):  # a role assignment/definition read at resource-group scope
            scope = f"/subscriptions/{sub}/resourceGroups/{rg}"
            if rtype.lower() == "roleassignments":
                return self._ra_get(request, ctx, scope, name)
            if rtype.lower() == "roledefinitions":
                return self._rd_get(request, ctx, name, scope)
        rtype_full = f"{ns}/{rtype}"
        self._subscription(sub)
        scope = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{rtype_full}/{name}"
        self._authorize(request, ctx, scope, f"{rtype_full}/read")
        rg_name = self._rg(sub, rg)
        world = self.emu.world
        with world.lock:
            for r in world.resources:
                if (
                    r.subscription_id.lower() == sub.lower()
                    and r.resource_group.lower() == rg.lower()
                    and r.type.lower() == rtype_full.lower()
                    and r.name.lower() == name.lower()
                ):
                    return _arm_json(
                        {**self._generic_json(r), "properties": {"provisioningState": "Succeeded"}}
                    )
        raise E.arm_resource_not_found(rtype_full, name, rg_name)

    # ------------------------------------------------------------------ role assignments and definitions
    def _scope_checks(
        self, request: Request, ctx: _Ctx, scope: str, action: str, *, listing: bool
    ) -> tuple[str, bool]:
        """Subscription → RBAC → resource group checks for an authorization scope; returns (scope, full)."""
        scope = "/" + scope.strip("/")
        m = re.match(r"^/subscriptions/([^/]+)(?:/resourcegroups/([^/]+))?", scope, re.IGNORECASE)
        if m is None:
            if self._rbac_denied(request, ctx) or not self.emu.world.can_read(ctx.oid, "/"):
                raise E.arm_authorization_failed(ctx.oid, action, scope)
            return scope, True
        sub, rg = m.group(1), m.group(2)
        self._subscription(sub)
        if listing:
            full = self._list_access(request, ctx, scope, action)
        else:
            self._authorize(request, ctx, scope, action)
            full = True
        if rg is not None:
            self._rg(sub, rg)
        return scope, full

    def _ra_list(self, request: Request, ctx: _Ctx, scope: str = "") -> Response:
        action = "Microsoft.Authorization/roleAssignments/read"
        scope, full = self._scope_checks(request, ctx, scope, action, listing=True)
        flt = (request.args.get("$filter") or "").strip()
        at_scope, principal = False, None
        for part in _AND.split(flt) if flt else []:
            p = part.strip()
            m1 = re.fullmatch(r"principalId\s+eq\s+'([^']*)'", p, re.IGNORECASE)
            m2 = re.fullmatch(r"assignedTo\('([^']*)'\)", p, re.IGNORECASE)
            if re.fullmatch(r"atScope\(\)", p, re.IGNORECASE):
                at_scope = True
            elif m1 or m2:
                principal = (m1 or m2).group(1)  # type: ignore[union-attr]
                if m1 and "atscope()" in flt.lower():
                    raise E.ArmError(
                        400,
                        "UnsupportedQuery",
                        "The filter 'atScope() and principalId eq' is not supported. "
                        "Use 'atScope() and assignedTo(...)'.",
                    )
            else:
                raise E.ArmError(
                    400,
                    "InvalidFilterInQueryString",
                    f"Invalid $filter '{flt}' specified in the query string. Supported: atScope(), "
                    "principalId eq '…', assignedTo('…').",
                )
        world = self.emu.world
        mine = world.assignments_for(ctx.oid)
        with world.lock:
            out = []
            for a in world.role_assignments:
                above = scope_within(scope, a.scope)
                below = scope_within(a.scope, scope)
                if at_scope and not above:
                    continue
                if not (above or below):
                    continue
                if principal is not None and a.principal_id.lower() != principal.lower():
                    continue
                if not full and not (
                    world.can_read(ctx.oid, a.scope) or any(scope_within(x.scope, a.scope) for x in mine)
                ):
                    continue
                out.append(self._ra_json(a))
        return _arm_json({"value": out})

    def _ra_get(self, request: Request, ctx: _Ctx, scope: str, name: str) -> Response:
        action = "Microsoft.Authorization/roleAssignments/read"
        scope, _ = self._scope_checks(request, ctx, scope, action, listing=False)
        world = self.emu.world
        with world.lock:
            for a in world.role_assignments:
                if (
                    a.id.lower() == name.lower()
                    and scope_within(a.scope, scope)
                    and scope_within(scope, a.scope)
                ):
                    return _arm_json(self._ra_json(a))
        raise E.ArmError(404, "RoleAssignmentNotFound", "The role assignment '" + name + "' is not found.")

    def _role_prefix(self, scope: str) -> str:
        m = re.match(r"^/subscriptions/([^/]+)", "/" + scope.strip("/"), re.IGNORECASE)
        if m:
            self._subscription(m.group(1))
            return f"/subscriptions/{m.group(1)}"
        return ""

    def _rd_list(self, request: Request, ctx: _Ctx, scope: str = "") -> Response:
        # Role definitions are readable by any authenticated principal in the tenant (built-in roles).
        prefix = self._role_prefix(scope)
        flt = (request.args.get("$filter") or "").strip()
        wanted = None
        if flt:
            m = re.fullmatch(r"roleName\s+eq\s+'([^']*)'", flt, re.IGNORECASE)
            if m is None and not re.fullmatch(r"type\s+eq\s+'BuiltInRole'", flt, re.IGNORECASE):
                raise E.ArmError(
                    400,
                    "InvalidFilterInQueryString",
                    f"Invalid $filter '{flt}' specified in the query string.",
                )
            wanted = m.group(1).lower() if m else None
        roles = [r for r in BUILTIN_ROLES if wanted is None or r.lower() == wanted]
        return _arm_json({"value": [self._rd_json(r, prefix) for r in roles]})

    def _rd_get(self, request: Request, ctx: _Ctx, name: str, scope: str = "") -> Response:
        prefix = self._role_prefix(scope)
        role = self.emu.world.role_name(name)
        if role is None:
            raise E.ArmError(
                404,
                "RoleDefinitionDoesNotExist",
                f"The specified role definition with ID '{name}' does not exist.",
            )
        return _arm_json(self._rd_json(role, prefix))
