"""notebook 07's helpers: the data role granted through ARM as the operator, and the bounded retry."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from support.world import HELLO_BLOB, STORAGE_ACCOUNT

import mi_helpers as mi
from mi_helpers import notebook as nb

pytestmark = pytest.mark.timeout(60)


def _read() -> Any:
    return mi.read_blob("data", "hello.txt")


def test_a_grant_through_arm_then_the_retry_reads(emu: Any) -> None:
    with nb.lesson_scenario("storage-data-role-missing") as lesson:
        with pytest.raises(HttpResponseError, match="AuthorizationPermissionMismatch"):
            _read()
        done = nb.grant_data_role(lesson, "Storage Blob Data Reader")
        assert done.startswith("As the operator, through ARM: granted Storage Blob Data Reader")
        assert f"/storageAccounts/{STORAGE_ACCOUNT}" in done
        assert nb.retry_while_propagating(_read, first=0.01, quiet=True).text == HELLO_BLOB


def test_the_retry_is_bounded_and_other_errors_are_final(
    emu: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with nb.lesson_scenario("storage-data-role-missing"):
        with pytest.raises(HttpResponseError, match="AuthorizationPermissionMismatch"):
            nb.retry_while_propagating(_read, tries=2, first=0.01)  # never granted: 2 tries, then raised
        assert capsys.readouterr().out.count("try 1: 403") == 1
    calls = []

    def missing() -> Any:
        calls.append(1)
        return mi.read_blob("data", "nope.txt")

    with pytest.raises(ResourceNotFoundError):
        nb.retry_while_propagating(missing, first=0.01)
    assert len(calls) == 1  # a 404 is not propagation: no retry


def test_bad_input_and_a_real_vm_are_one_line(emu: Any) -> None:
    with pytest.raises(
        mi.InputError, match=r"^role: allowed: Storage Blob Data Reader, Key Vault Secrets User"
    ):
        nb.grant_data_role(None, "Owner")
    with pytest.raises(mi.InputError, match=r"^tries:"):
        nb.retry_while_propagating(_read, tries=0)
    on_azure = nb.grant_data_role(None, "Key Vault Secrets User")  # no emulator behind the block: no change
    assert (
        on_azure.startswith("On Azure nothing was changed") and '--role "Key Vault Secrets User"' in on_azure
    )
