"""The data-plane lessons of notebook 07: grant a data role as the operator, then retry while it propagates.

:func:`grant_data_role` is the fix of the ``storage-data-role-missing`` and ``kv-rbac-data-role-missing``
cards carried out the way a learner carries it out: a role assignment created through ARM with the real
``azure-mgmt-authorization`` client, signed in as the emulator's operator (:class:`OperatorFixes`). On a
real VM (no emulator behind the block) it changes nothing and prints the ``az`` command to run as yourself.

:func:`retry_while_propagating` is the bounded retry a fresh data role needs: role assignments reach Key
Vault and Storage after a while (docs/protocol.md, "Key Vault" and "Blob storage"), so a 403 right after the
grant is retried with a doubling wait (:func:`mi_helpers.retry.exponential`) a bounded number of times, and
any other failure is raised at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from mi_helpers.notebook.arm_fixes import OperatorFixes
from mi_helpers.retry import exponential
from mi_helpers.validate import InputError

__all__ = ["DATA_ROLES", "grant_data_role", "retry_while_propagating"]

T = TypeVar("T")

#: The data roles a lesson grants, and the kind of resource each is granted on (its ``data_plane`` block).
DATA_ROLES = {
    "Storage Blob Data Reader": "storage_accounts",
    "Key Vault Secrets User": "key_vaults",
}
#: The diagnoses a fresh data role shows until it has propagated.
_PROPAGATING = frozenset({"storage-data-role-missing", "kv-rbac-data-role-missing", "data-role-propagating"})


def _scope(lesson: Any, kind: str) -> str:
    """The resource ID of the lesson world's first vault or storage account."""
    found = lesson.world_dict()["data_plane"][kind]
    return str(found[0]["resource_id"])


def grant_data_role(lesson: Any, role: str) -> str:
    """Grant ``role`` to the VM's system identity on the lesson's vault or account; one line on what was done.

    ``lesson`` is what :func:`~mi_helpers.notebook.lesson_scenario` yielded: an emulator (the grant is made
    through ARM as its operator) or None on a real VM (nothing is changed: the line is the command to run,
    signed in as yourself).
    """
    kind = DATA_ROLES.get(role)
    if kind is None:
        raise InputError("role", f"allowed: {', '.join(DATA_ROLES)}", role)
    if lesson is None:
        return (
            "On Azure nothing was changed: sign in as yourself (az login) and run "
            f'az role assignment create --role "{role}" --assignee-object-id <principalId> '
            "--assignee-principal-type ServicePrincipal --scope <the vault's or the account's resource ID>"
        )
    operator = OperatorFixes(lesson)
    principal = (operator.host().get("system_identity") or {}).get("principal_id")
    done = operator.apply(
        "add-role-assignment", principal_id=principal, role=role, scope=_scope(lesson, kind)
    )
    return f"As the operator, through ARM: {done}"


def _propagating(exc: Exception) -> bool:
    from mi_helpers.diagnosis import diagnose

    return getattr(exc, "status_code", None) == 403 and diagnose(exc).id in _PROPAGATING


def retry_while_propagating(
    read: Callable[[], T], *, tries: int = 8, first: float = 0.5, cap: float = 30.0, quiet: bool = False
) -> T:
    """Call ``read`` until it succeeds, retrying a data-role 403 up to ``tries`` times with back-off.

    Waits ``first``, ``2·first`` … (at most ``cap``) seconds between tries; prints one line per refused try
    unless ``quiet``. A failure that is not a data-role 403, or the last refused try, is raised as is.
    """
    if not isinstance(tries, int) or isinstance(tries, bool) or not 1 <= tries <= 50:
        raise InputError("tries", "an integer from 1 to 50", tries)
    from mi_helpers.logs import quiet_sdk_logs

    for attempt in range(1, tries + 1):
        try:
            with quiet_sdk_logs():
                value = read()
        except Exception as exc:
            if attempt == tries or not _propagating(exc):
                raise
            wait = exponential(attempt - 1, first, cap)
            if not quiet:
                print(
                    f"try {attempt}: 403, the role has not reached the service yet; retrying in {wait:.1f} s"
                )
            time.sleep(wait)
        else:
            if not quiet:
                print(f"✓ try {attempt}: read")
            return value
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
