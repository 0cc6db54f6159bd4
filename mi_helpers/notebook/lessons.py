"""Small helpers the lessons of notebooks 02–04 call, so that their cells stay a line or two long."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.environ import patched_environ
from mi_helpers.logs import quiet_sdk_logs
from mi_helpers.notebook.display import DiagnosisCard, display, explain
from mi_helpers.validate import InputError, validate_guid
from mi_helpers.world_view import IDENTITY_COLUMNS, WorldView

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FixedScopeCredential",
    "as_table",
    "compare_azure_client_id",
    "cross_check_vm",
    "no_identity_card",
    "pick_user_assigned",
    "read_vm_with_token_for",
    "report_principal",
    "vm_identities",
    "vm_principal",
    "whoami",
]


def whoami(client_id: str | None = None, *, credential: Any = None, label: str = "") -> dict[str, Any]:
    """Sign in (ARM token) and say who the token is for: identity asked, oid, appid, xms_mirid.

    Raises what :func:`mi_helpers.get_token` raises, so a cell wrapped in ``show_errors`` shows it.
    """
    from mi_helpers.identity import credential as make_credential
    from mi_helpers.identity import get_token

    if credential is None:
        # a fresh credential: "who am I now", not a token cached before the world changed
        credential = make_credential(client_id=client_id or None)
    with quiet_sdk_logs():
        tok = get_token("arm", credential=credential, progress=False)
    asked = label or (f"client_id={client_id}" if client_id else "no selector")
    return {
        "asked for": asked,
        "oid (principal)": tok.principal_id,
        "appid (client)": tok.client_id,
        "xms_mirid (identity resource)": tok.mi_resource_id,
    }


def as_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A list of dicts as a DataFrame (one row each)."""
    import pandas as pd

    return pd.DataFrame(list(rows))


def pick_user_assigned(identities: pd.DataFrame, client_id: str = "") -> dict[str, Any] | None:
    """The user-assigned row of ``mi.vm_identity()`` to use: the one with ``client_id``, else the first."""
    records = identities.to_dict("records")
    rows = [{str(k): v for k, v in r.items()} for r in records if r.get("kind") == "user-assigned"]
    if not client_id:
        return rows[0] if rows else None
    wanted = validate_guid(client_id, "client_id").lower()
    match = [r for r in rows if str(r.get("client_id", "")).lower() == wanted]
    if not match:
        raise InputError(
            "client_id", f"{client_id!r} is not the client ID of an identity on this VM", client_id
        )
    return match[0]


def _credentials_to_compare() -> list[tuple[str, Callable[[], Any]]]:
    from azure.identity import DefaultAzureCredential

    from mi_helpers.identity import credential

    def default_managed_identity_only() -> Any:
        return DefaultAzureCredential(
            exclude_environment_credential=True,
            exclude_workload_identity_credential=True,
            exclude_shared_token_cache_credential=True,
            exclude_visual_studio_code_credential=True,
            exclude_cli_credential=True,
            exclude_powershell_credential=True,
            exclude_developer_cli_credential=True,
            exclude_interactive_browser_credential=True,
            exclude_broker_credential=True,
            retry_total=0,
            read_timeout=3,
        )

    return [
        ("DefaultAzureCredential()", default_managed_identity_only),
        ("ManagedIdentityCredential()", lambda: credential()),
        (
            "ManagedIdentityCredential(client_id=…)",
            lambda: credential(client_id=os.environ[Env.AZURE_CLIENT_ID]),
        ),
    ]


def compare_azure_client_id(client_id: str) -> list[dict[str, Any]]:
    """Sign in three ways with ``AZURE_CLIENT_ID=client_id`` set for the duration of the call.

    ``DefaultAzureCredential()`` (managed identity step only), ``ManagedIdentityCredential()`` and
    ``ManagedIdentityCredential(client_id=os.environ["AZURE_CLIENT_ID"])``: one row each, with the identity
    the token is for, or the diagnosis id of the error.
    """
    from mi_helpers.diagnosis import diagnose

    cid = validate_guid(client_id, "client_id")
    rows = []
    with patched_environ({Env.AZURE_CLIENT_ID: cid}), quiet_sdk_logs():
        for label, make in _credentials_to_compare():
            try:
                row = whoami(credential=make(), label=label)
                row["result"] = "✓ token"
            except Exception as exc:  # shown as a row: the comparison is the lesson
                row = {"asked for": label, "result": "✗ " + diagnose(exc).id}
            rows.append(row)
    return rows


class FixedScopeCredential:
    """Hands out a token for ``scope`` whatever scope the caller asks for (to show a wrong audience)."""

    def __init__(self, inner: Any, scope: str) -> None:
        self._inner = inner
        self._scope = scope

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        return self._inner.get_token(self._scope, **kwargs)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        return self._inner.get_token_info(self._scope, options=options)


def read_vm_with_token_for(service: str) -> Any:
    """Read this VM from ARM with a token meant for ``service`` (e.g. "storage"): ARM answers 401."""
    from mi_helpers.arm import get_vm
    from mi_helpers.clouds import scope_for
    from mi_helpers.identity import credential
    from mi_helpers.targeting import target

    wrong = FixedScopeCredential(credential(), scope_for(service, target().cloud))
    return get_vm(credential=wrong)


def vm_identities() -> pd.DataFrame:
    """The identities of this VM as a DataFrame (kind, name, principal_id, client_id, resource_id).

    Asks ARM (:func:`mi_helpers.vm_identity`). When signing in for that fails (several user-assigned
    identities and no selector: the very lesson of notebook 04), the emulator's world is shown instead, the
    way a person sees the VM's Identity page in the portal, without a word: the cell that follows shows the
    error itself. On Azure the error and its diagnosis are shown and the table is empty.
    """
    import pandas as pd

    from mi_helpers.arm import vm_identity
    from mi_helpers.targeting import target

    try:
        with quiet_sdk_logs():
            return vm_identity()
    except InputError:
        raise
    except Exception as exc:  # the lesson goes on with what the portal would show
        control = target().emulator
        if control is not None:
            rows = WorldView(control.world_dict()).identity_rows()
            return pd.DataFrame(rows, columns=list(IDENTITY_COLUMNS))
        for item in explain(exc):
            display(item)
        return pd.DataFrame([], columns=list(IDENTITY_COLUMNS))


def _vm_context(vm: Any) -> dict[str, Any]:
    """Subscription, group and name of an ARM VM object (from its resource ID)."""
    parts = str(getattr(vm, "id", "") or "").split("/")
    lower = [p.lower() for p in parts]

    def after(key: str) -> str | None:
        return parts[lower.index(key) + 1] if key in lower and lower.index(key) + 1 < len(parts) else None

    return {
        "vm_name": getattr(vm, "name", None),
        "resource_group": after("resourcegroups"),
        "subscription_id": after("subscriptions"),
    }


def vm_principal(vm: Any) -> str | None:
    """The system-assigned principal ID of an ARM VM object (None: it has no system-assigned identity)."""
    identity = getattr(vm, "identity", None)
    return getattr(identity, "principal_id", None) if identity is not None else None


def no_identity_card(vm_name: str, resource_group: str = "", subscription_id: str = "") -> DiagnosisCard:
    """The card for a VM that ARM shows without a managed identity (``az vm identity assign`` and co.)."""
    from mi_helpers.diagnosis import diagnosis_for

    context = {
        "vm_name": vm_name,
        "resource_group": resource_group or None,
        "subscription_id": subscription_id or None,
    }
    evidence = {"finding": f"ARM answered 200 for VM {vm_name!r}, and its identity block is empty"}
    return DiagnosisCard(diagnosis_for("vm-without-identity", context=context, evidence=evidence))


def report_principal(vm: Any) -> str | None:
    """Print the source article's sentence for an ARM VM object, or show the card of a VM without identity.

    Returns the principal ID (None for a VM without a system-assigned identity).
    """
    principal = vm_principal(vm)
    if principal:
        print(f"The managed identity for Azure resources service principal ID is {principal}")
        return principal
    where = _vm_context(vm)
    print(f"✗ VM {where['vm_name']!r} has no system-assigned managed identity: ARM shows no principalId.")
    display(
        no_identity_card(str(where["vm_name"]), where["resource_group"] or "", where["subscription_id"] or "")
    )
    return None


def cross_check_vm(token: Any, vm: Any) -> Any:
    """Compare the token's ``oid`` with the VM that was looked up (``mi.cross_check``); None if there is none.

    Prints the two IDs first, so the verdict under them reads as a comparison of what is on screen.
    """
    from mi_helpers.arm import cross_check

    print(f"token oid       : {token.principal_id}")
    if vm is None:
        print("VM principalId  : (the look-up above failed: nothing to compare with)")
        return None
    principal = vm_principal(vm)
    name = getattr(vm, "name", "?")
    print(f"VM principalId  : {principal or '(none: ' + str(name) + ' has no system-assigned identity)'}")
    with quiet_sdk_logs():
        return cross_check(token, vm)
