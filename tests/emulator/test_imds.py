"""The IMDS layer without a socket: werkzeug test requests against a Backend on a manual clock."""

from __future__ import annotations

import threading

import pytest
from support.emulator import (
    ARM_RESOURCE,
    IDENTITY_NOT_FOUND_BODY,
    ManualClock,
    imds_token_request,
    json_of,
    unverified_claims,
    wsgi_request,
)
from support.world import SYS_CLIENT, SYS_PRINCIPAL, TENANT, UAMI_READER_CLIENT, VM, VM_ID

from mi_helpers.constants import Imds
from mi_helpers.emulator.backend import Backend
from mi_helpers.emulator.errors import DropConnection
from mi_helpers.emulator.imds import ImdsLayer

WALL = 1_750_000_000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(wall=WALL)


@pytest.fixture
def backend(clock: ManualClock) -> Backend:
    return Backend("healthy", clock=clock)


@pytest.fixture
def layer(backend: Backend) -> ImdsLayer:
    return ImdsLayer(backend)


def test_token_times_come_from_the_backend_clock(layer: ImdsLayer) -> None:
    r = layer.handle(imds_token_request())
    assert r.status_code == 200 and r.content_type == "application/json; charset=utf-8"
    body = json_of(r)
    assert all(isinstance(v, str) for v in body.values())
    assert body["client_id"] == SYS_CLIENT and body["resource"] == ARM_RESOURCE
    claims = unverified_claims(body["access_token"])
    assert claims["iat"] == claims["nbf"] == int(WALL) == int(body["not_before"])
    assert int(body["expires_on"]) == claims["exp"] == int(WALL) + 86399
    assert claims["oid"] == SYS_PRINCIPAL and claims["tid"] == TENANT


def test_cached_token_counts_down(layer: ImdsLayer, clock: ManualClock) -> None:
    first = json_of(layer.handle(imds_token_request("https://storage.azure.com/")))
    clock.advance(1.2)
    second = json_of(layer.handle(imds_token_request("https://storage.azure.com/")))
    # same identity + resource: IMDS serves its cached token, so expires_on stays and expires_in shrinks
    assert second["access_token"] == first["access_token"]
    assert second["expires_on"] == first["expires_on"]
    assert (
        int(second["expires_in"]) == int(int(first["expires_on"]) - (WALL + 1.2)) < int(first["expires_in"])
    )


def test_the_metadata_header_is_checked_before_anything_else(layer: ImdsLayer) -> None:
    r = layer.handle(wsgi_request(Imds.TOKEN_PATH, method="POST", headers={"X-Forwarded-For": "10.0.0.1"}))
    assert r.status_code == 400
    assert json_of(r) == {
        "error": "invalid_request",
        "error_description": "Required metadata header not specified",
    }
    plain = layer.handle(wsgi_request(Imds.INSTANCE_PATH))
    assert json_of(plain) == {"error": "Bad request. Required metadata header not specified"}


@pytest.mark.parametrize(
    ("path", "method", "query", "status"),
    [
        (Imds.TOKEN_PATH, "POST", {"api-version": "2018-02-01", "resource": ARM_RESOURCE}, 405),
        (Imds.TOKEN_PATH + "/extra", "GET", {"api-version": "2018-02-01", "resource": ARM_RESOURCE}, 404),
        (Imds.TOKEN_PATH, "GET", {"api-version": "2017-12-01", "resource": ARM_RESOURCE}, 400),
        (Imds.TOKEN_PATH, "GET", [("api-version", "2018-02-01"), ("resource", "a"), ("resource", "a")], 400),
        (Imds.TOKEN_PATH, "GET", {"api-version": "2018-02-01"}, 400),
    ],
    ids=["method", "path", "old-api-version", "duplicate", "no-resource"],
)
def test_request_checks(layer: ImdsLayer, path: str, method: str, query: object, status: int) -> None:
    r = layer.handle(wsgi_request(path, method=method, query=query, headers={"Metadata": "true"}))
    assert r.status_code == status
    assert "access_token" not in r.get_data(as_text=True)


def test_x_forwarded_for_gets_the_xml_refusal(layer: ImdsLayer) -> None:
    r = layer.handle(
        wsgi_request(Imds.TOKEN_PATH, headers={"Metadata": "true", "X-Forwarded-For": "10.1.2.3"})
    )
    assert r.status_code == 400 and r.content_type.startswith("application/xml")
    assert "X-Forwarded-For" in r.get_data(as_text=True)


def test_versions_list_every_documented_api_version(layer: ImdsLayer) -> None:
    r = layer.handle(wsgi_request(Imds.VERSIONS_PATH, headers={"Metadata": "true"}))
    assert json_of(r) == {"apiVersions": list(Imds.API_VERSIONS)}
    bad = json_of(layer.handle(wsgi_request(Imds.INSTANCE_PATH, headers={"Metadata": "true"})))
    assert bad["newest-versions"] == list(Imds.NEWEST_VERSIONS)


def test_identity_window_opens_with_the_first_token_request(backend: Backend, clock: ManualClock) -> None:
    layer = ImdsLayer(backend)
    backend.set_scenario("identity-propagating", t=0.5)
    clock.advance(30)  # long after the switch: the window has not started yet
    first = layer.handle(imds_token_request())
    assert first.status_code == 400 and first.get_data() == IDENTITY_NOT_FOUND_BODY
    clock.advance(0.49)
    assert layer.handle(imds_token_request()).status_code == 400
    clock.advance(0.02)
    assert layer.handle(imds_token_request()).status_code == 200


def test_selection_and_selectors(backend: Backend) -> None:
    layer = ImdsLayer(backend)
    body = json_of(layer.handle(imds_token_request(client_id=UAMI_READER_CLIENT)))
    assert body["client_id"] == UAMI_READER_CLIENT
    two = layer.handle(imds_token_request(client_id=UAMI_READER_CLIENT, object_id=SYS_PRINCIPAL))
    assert two.status_code == 400 and json_of(two)["error"] == "invalid_request"
    backend.set_scenario("multiple-user-assigned")
    many = json_of(layer.handle(imds_token_request()))
    assert many["error_description"].startswith("Multiple user assigned identities exist")


def test_hang_holds_the_request_until_the_scenario_changes(backend: Backend) -> None:
    layer = ImdsLayer(backend)
    backend.set_scenario("imds-hang")
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            layer.handle(imds_token_request())
        except DropConnection as exc:
            outcome.append(exc)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(0.2)
    assert worker.is_alive(), "imds-hang answered instead of holding the request"
    backend.set_scenario("healthy")
    worker.join(5)
    assert len(outcome) == 1  # released without an answer: the transport drops the connection


def test_foreign_server_and_docker_desktop_answer_before_any_check(backend: Backend) -> None:
    layer = ImdsLayer(backend)
    backend.set_scenario("foreign-metadata-server")
    r = layer.handle(wsgi_request("/anything"))  # no header, unknown path: the foreign server answers
    assert r.status_code == 200 and r.content_type.startswith("text/html")
    backend.set_scenario("docker-desktop-unreachable")
    r = layer.handle(imds_token_request())
    assert r.status_code == 403 and "unreachable" in r.status


def test_instance_metadata_from_the_world(layer: ImdsLayer) -> None:
    q = {"api-version": "2021-02-01"}
    doc = json_of(layer.handle(wsgi_request(Imds.INSTANCE_PATH, query=q, headers={"Metadata": "true"})))
    assert doc["compute"]["name"] == VM and doc["compute"]["vmId"] == VM_ID
    leaf = layer.handle(
        wsgi_request(
            Imds.INSTANCE_PATH + "/compute/vmId", query={**q, "format": "text"}, headers={"Metadata": "true"}
        )
    )
    assert leaf.get_data(as_text=True) == VM_ID and leaf.content_type.startswith("text/plain")
    keys = layer.handle(
        wsgi_request(Imds.INSTANCE_PATH, query={**q, "format": "text"}, headers={"Metadata": "true"})
    )
    assert keys.get_data(as_text=True).splitlines() == ["compute/", "network/"]
    info = json_of(layer.handle(wsgi_request(Imds.INFO_PATH, query=q, headers={"Metadata": "true"})))
    assert info == {"tenantId": TENANT}
