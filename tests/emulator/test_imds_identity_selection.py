"""Which identity IMDS answers for (docs/protocol.md#identity-selection)."""

from __future__ import annotations

import json

import pytest
from support.emulator import ARM_RESOURCE, IDENTITY_NOT_FOUND_BODY, MULTIPLE_UAMI_TEXT, unverified_claims
from support.world import (
    SYS_PRINCIPAL,
    UAMI_DEPLOY,
    UAMI_DEPLOY_CLIENT,
    UAMI_DEPLOY_PRINCIPAL,
    UAMI_READER,
    UAMI_READER_CLIENT,
    UAMI_READER_PRINCIPAL,
    uami_resource_id,
)

pytestmark = pytest.mark.timeout(30)


def _oid(imds, **selectors):
    r = imds.token(ARM_RESOURCE, **selectors)
    assert r.status_code == 200, r.text
    return unverified_claims(r.json()["access_token"])["oid"]


def test_no_selector_uses_the_system_identity_first(imds):
    assert _oid(imds) == SYS_PRINCIPAL


def test_one_user_assigned_alone_is_used_without_selector(imds, emu):
    emu.apply_fix("disable-system-identity")
    r = imds.token(ARM_RESOURCE)
    assert r.status_code == 200, r.text
    assert r.json()["client_id"] == UAMI_READER_CLIENT
    assert unverified_claims(r.json()["access_token"])["oid"] == UAMI_READER_PRINCIPAL


def test_no_identity_at_all_is_identity_not_found(imds, emu):
    emu.apply_fix("disable-system-identity")
    emu.apply_fix("detach-user-identity", name=UAMI_READER)
    r = imds.token(ARM_RESOURCE)
    assert r.status_code == 400
    assert r.content == IDENTITY_NOT_FOUND_BODY


def test_several_user_assigned_need_a_selector(imds, use_scenario):
    use_scenario("multiple-user-assigned")
    r = imds.token(ARM_RESOURCE)
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_request", "error_description": MULTIPLE_UAMI_TEXT}
    assert "Retry-After" not in r.headers
    # with a selector each identity is reachable
    assert _oid(imds, client_id=UAMI_DEPLOY_CLIENT) == UAMI_DEPLOY_PRINCIPAL
    assert _oid(imds, client_id=UAMI_READER_CLIENT) == UAMI_READER_PRINCIPAL
    assert _oid(imds, msi_res_id=uami_resource_id(UAMI_DEPLOY)) == UAMI_DEPLOY_PRINCIPAL


def test_world_tells_which_client_ids_exist(emu, use_scenario):
    use_scenario("multiple-user-assigned")
    text = json.dumps(emu.world_dict())
    for value in (
        UAMI_DEPLOY_CLIENT,
        UAMI_READER_CLIENT,
        UAMI_DEPLOY_PRINCIPAL,
        uami_resource_id(UAMI_DEPLOY),
    ):
        assert value.lower() in text.lower(), value


def test_attaching_a_user_assigned_identity_makes_it_selectable(imds, emu):
    r = imds.token(ARM_RESOURCE, client_id=UAMI_DEPLOY_CLIENT)
    assert r.status_code == 400
    emu.apply_fix("attach-user-identity", name=UAMI_DEPLOY)
    assert _oid(imds, client_id=UAMI_DEPLOY_CLIENT) == UAMI_DEPLOY_PRINCIPAL
    # the system identity still wins when no selector is given
    assert _oid(imds) == SYS_PRINCIPAL


def test_enable_system_identity_fix(imds, use_scenario):
    emu = use_scenario("multiple-user-assigned")
    emu.apply_fix("enable-system-identity")
    assert _oid(imds) == SYS_PRINCIPAL
