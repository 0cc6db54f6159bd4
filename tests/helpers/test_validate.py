"""Validators: hand-written bad inputs from issue #3 give one line naming the field and what is allowed."""

from __future__ import annotations

import pytest
from support.world import SUB, UAMI_READER_RESOURCE_ID

from mi_helpers.validate import (
    InputError,
    validate_arm_scope,
    validate_guid,
    validate_one_selector,
    validate_resource,
    validate_resource_group,
    validate_scenario,
    validate_uami_resource_id,
    validate_vm_name,
)

# Joined at run time: a whole JWT must never appear in a committed file.
TOKENISH = ".".join(
    ["eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9", "eyJvaWQiOiJ4eHh4eHh4eHh4In0", "c2lnbmF0dXJlc2lnbmF0dXJl"]
)


def one_line(exc: pytest.ExceptionInfo[InputError]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    assert isinstance(exc.value, ValueError)
    return text


def test_not_a_guid_names_field_and_format() -> None:
    with pytest.raises(InputError) as exc:
        validate_guid("abc", "client_id")
    text = one_line(exc)
    assert text.startswith("client_id: 'abc' is not a GUID")
    assert "8-4-4-4-12" in text
    assert exc.value.field == "client_id"


@pytest.mark.parametrize(
    "value", ["1b3d5f7a-9c1e-4b3d-8f5a-7c9e1b3d5f7a", " 1B3D5F7A-9C1E-4B3D-8F5A-7C9E1B3D5F7A "]
)
def test_guid_accepted_and_stripped(value: str) -> None:
    assert validate_guid(value, "object_id") == value.strip()


@pytest.mark.parametrize("value", [None, "", "   "])
def test_guid_missing_or_empty(value: object) -> None:
    with pytest.raises(InputError) as exc:
        validate_guid(value, "principal_id")
    assert one_line(exc).startswith("principal_id: is ")


def test_guid_wrong_type() -> None:
    with pytest.raises(InputError) as exc:
        validate_guid(12345, "subscription_id")
    assert "not text" in one_line(exc)


def test_resource_without_scheme() -> None:
    with pytest.raises(InputError) as exc:
        validate_resource("management.azure.com")
    text = one_line(exc)
    assert text.startswith("resource: 'management.azure.com' has no scheme")
    assert "https://" in text


def test_resource_with_other_scheme() -> None:
    with pytest.raises(InputError) as exc:
        validate_resource("ftp://example/")
    assert "scheme 'ftp' is not allowed" in one_line(exc)


@pytest.mark.parametrize(
    "value",
    [
        ["https://management.azure.com/.default", "https://vault.azure.net/.default"],
        ("https://a.example/.default", "https://b.example/.default"),
        "https://management.azure.com/.default https://vault.azure.net/.default",
        "https://management.azure.com/.default,https://vault.azure.net/.default",
    ],
)
def test_scope_list_rejected(value: object) -> None:
    with pytest.raises(InputError) as exc:
        validate_resource(value)
    assert "one scope per token request" in one_line(exc)


@pytest.mark.parametrize(
    "value", ["https://management.azure.com/", "https://vault.azure.net/.default", "api://1b3d5f7a-9c1e-4b3d"]
)
def test_resource_accepted(value: str) -> None:
    assert validate_resource(value) == value


def test_single_element_list_is_one_scope() -> None:
    assert validate_resource(["https://storage.azure.com/"]) == "https://storage.azure.com/"


def test_empty_vm_name() -> None:
    with pytest.raises(InputError) as exc:
        validate_vm_name("")
    text = one_line(exc)
    assert text.startswith("vm_name: is empty")
    assert "1-64" in text


@pytest.mark.parametrize("bad", ["vm-", "vm.", "-vm", "vm name", "vm#1", "v" * 65, "_vm"])
def test_bad_vm_names(bad: str) -> None:
    with pytest.raises(InputError) as exc:
        validate_vm_name(bad)
    assert one_line(exc).startswith("vm_name: ")


@pytest.mark.parametrize("good", ["vm-mi-tutorial", "a", "vm_1", "web.01", "vm_", "v" * 64])
def test_good_vm_names(good: str) -> None:
    assert validate_vm_name(good) == good


def test_200_char_resource_group() -> None:
    name = "rg" * 100
    with pytest.raises(InputError) as exc:
        validate_resource_group(name)
    text = one_line(exc)
    assert text.startswith("resource_group: ")
    assert "200 characters" in text and "1-90" in text
    assert name not in text  # the long value is shortened in the message


@pytest.mark.parametrize("bad", ["rg.", "rg/x", "rg x", "rg*", ""])
def test_bad_resource_groups(bad: str) -> None:
    with pytest.raises(InputError):
        validate_resource_group(bad)


@pytest.mark.parametrize("good", ["rg-mi-tutorial", "RG_(prod).1", "grüppe", "r" * 90])
def test_good_resource_groups(good: str) -> None:
    assert validate_resource_group(good) == good


def test_uami_resource_id_case_insensitive() -> None:
    assert validate_uami_resource_id(UAMI_READER_RESOURCE_ID.lower()) == UAMI_READER_RESOURCE_ID.lower()
    assert validate_uami_resource_id(UAMI_READER_RESOURCE_ID + "/") == UAMI_READER_RESOURCE_ID


@pytest.mark.parametrize(
    "bad",
    [
        "uami-reader",
        f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
        "/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u1x",
        f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/a",
    ],
)
def test_bad_uami_resource_ids(bad: str) -> None:
    with pytest.raises(InputError) as exc:
        validate_uami_resource_id(bad)
    assert one_line(exc).startswith("resource_id")


def test_arm_scopes() -> None:
    assert validate_arm_scope(f"/subscriptions/{SUB}/") == f"/subscriptions/{SUB}"
    rg_scope = f"/subscriptions/{SUB}/resourceGroups/rg-mi-tutorial"
    assert validate_arm_scope(rg_scope) == rg_scope
    vm_scope = rg_scope + "/providers/Microsoft.Compute/virtualMachines/vm-mi-tutorial"
    assert validate_arm_scope(vm_scope) == vm_scope
    for bad in (
        "subscriptions/x",
        "/subscriptions/abc",
        f"/subscriptions/{SUB}/resourceGroups",
        "/foo",
    ):
        with pytest.raises(InputError) as exc:
            validate_arm_scope(bad)
        assert one_line(exc).startswith("scope")


def test_scenario_names() -> None:
    assert validate_scenario("imds-updating") == "imds-updating"
    with pytest.raises(InputError) as exc:
        validate_scenario("Healthy!")
    assert one_line(exc).startswith("scenario: ")
    with pytest.raises(InputError) as exc:
        validate_scenario("nope", known=["healthy", "no-identity"])
    assert "one of: healthy, no-identity" in one_line(exc)


def test_selectors() -> None:
    assert validate_one_selector() is None
    assert validate_one_selector(client_id="1b3d5f7a-9c1e-4b3d-8f5a-7c9e1b3d5f7a") == (
        "client_id",
        "1b3d5f7a-9c1e-4b3d-8f5a-7c9e1b3d5f7a",
    )
    assert validate_one_selector(resource_id=UAMI_READER_RESOURCE_ID) == (
        "resource_id",
        UAMI_READER_RESOURCE_ID,
    )
    with pytest.raises(InputError) as exc:
        validate_one_selector(client_id="abc", object_id="def")
    assert "at most one of" in one_line(exc)
    with pytest.raises(InputError) as exc:
        validate_one_selector(object_id="abc")
    assert one_line(exc).startswith("object_id: 'abc' is not a GUID")


def test_token_pasted_into_a_field_is_redacted() -> None:
    with pytest.raises(InputError) as exc:
        validate_resource(TOKENISH)
    assert TOKENISH not in str(exc.value)
    with pytest.raises(InputError) as exc:
        validate_guid(TOKENISH, "client_id")
    assert TOKENISH[:40] not in str(exc.value) or "…" in str(exc.value)
    assert TOKENISH not in str(exc.value)
