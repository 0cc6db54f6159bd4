"""mi_helpers: sign in with an Azure VM managed identity, call ARM, and diagnose what goes wrong.

The public API is loaded lazily (module ``__getattr__``): ``import mi_helpers`` imports neither pandas nor
the Azure SDK, so the CLI and notebooks start fast; the first use of a name imports its module.

    import mi_helpers as mi
    mi.target()                  # where requests go (Azure or the local emulator), and why
    tok = mi.get_token("arm")    # TokenInfo (redacted repr), bounded retries with progress
    mi.vm_principal_id()         # the VM's system-assigned principal ID via azure-mgmt-compute
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mi_helpers import _moved

__version__ = "0.2.0.dev0"  # the one place the version is written (pyproject reads it)

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # targeting
    "Target": "targeting",
    "target": "targeting",
    "use_emulator": "targeting",
    "reset_target": "targeting",
    "current_emulator": "targeting",
    "detect": "targeting",
    # validate, and its one-line display in notebooks
    "InputError": "validate",
    "install_notebook_error_display": "notebook",
    # redaction
    "redact": "redaction",
    # identity
    "credential": "identity",
    "get_token": "identity",
    "TokenInfo": "token_info",
    "SignInError": "identity",
    "Attempt": "attempts",
    "ProgressEvent": "progress",
    "decode_claims": "token_info",
    # arm
    "InstanceMetadata": "arm",
    "instance_metadata": "arm",
    "get_vm": "arm",
    "vm_principal_id": "arm",
    "vm_identity": "arm",
    "resources_by_name": "arm",
    "role_assignments": "arm",
    "cross_check": "arm",
    "CrossCheck": "arm",
    "compute_client": "arm",
    "resource_client": "arm",
    "authorization_client": "arm",
    # clouds
    "audiences": "clouds",
    "scope_for": "clouds",
    "resource_for": "clouds",
    # the data planes: Key Vault secrets and blobs
    "read_secret": "dataplane",
    "read_blob": "dataplane",
    "vault_url": "dataplane",
    "blob_endpoint": "dataplane",
    "SecretValue": "dataplane",
    "BlobContent": "dataplane",
    # diagnosis and the checklist
    "diagnose": "diagnosis",
    "Diagnosis": "diagnosis",
    "doctor": "checklist",
}

__all__ = [
    "Attempt",
    "BlobContent",
    "CrossCheck",
    "Diagnosis",
    "InputError",
    "InstanceMetadata",
    "ProgressEvent",
    "SecretValue",
    "SignInError",
    "Target",
    "TokenInfo",
    "audiences",
    "authorization_client",
    "blob_endpoint",
    "compute_client",
    "credential",
    "cross_check",
    "current_emulator",
    "decode_claims",
    "detect",
    "diagnose",
    "doctor",
    "get_token",
    "get_vm",
    "install_notebook_error_display",
    "instance_metadata",
    "read_blob",
    "read_secret",
    "redact",
    "reset_target",
    "resource_client",
    "resource_for",
    "resources_by_name",
    "role_assignments",
    "scope_for",
    "target",
    "use_emulator",
    "vault_url",
    "vm_identity",
    "vm_principal_id",
]

if TYPE_CHECKING:  # for type checkers and IDEs only; nothing is imported at run time
    from mi_helpers.arm import (
        CrossCheck,
        InstanceMetadata,
        authorization_client,
        compute_client,
        cross_check,
        get_vm,
        instance_metadata,
        resource_client,
        resources_by_name,
        role_assignments,
        vm_identity,
        vm_principal_id,
    )
    from mi_helpers.attempts import Attempt
    from mi_helpers.clouds import audiences, resource_for, scope_for
    from mi_helpers.dataplane import (
        BlobContent,
        SecretValue,
        blob_endpoint,
        read_blob,
        read_secret,
        vault_url,
    )
    from mi_helpers.identity import SignInError, credential, get_token
    from mi_helpers.notebook.startup import install_notebook_error_display
    from mi_helpers.progress import ProgressEvent
    from mi_helpers.redaction import redact
    from mi_helpers.targeting import Target, current_emulator, detect, reset_target, target, use_emulator
    from mi_helpers.token_info import TokenInfo, decode_claims
    from mi_helpers.validate import InputError


_moved.install()  # 0.1 module paths (mi_helpers.widgets, …) keep working, with a DeprecationWarning


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mi_helpers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mi_helpers.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
