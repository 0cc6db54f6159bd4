"""The fake corporate proxy of ``proxy-intercept``: socket-free through the layer, then as a real proxy."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from support.emulator import plain_session, raw_exchange, status_of, wsgi_request
from support.world import SYS_PRINCIPAL

from mi_helpers.emulator.backend import Backend
from mi_helpers.emulator.endpoints import Endpoints
from mi_helpers.emulator.proxy import ProxyLayer
from mi_helpers.emulator.scenarios import GATEWAY_HTML

pytestmark = pytest.mark.timeout(60)

KEY_HEADER = "X-Emulator-Key"


def _endpoints(imds_listening: bool = True) -> Endpoints:
    return Endpoints(
        imds_url="http://127.0.0.1:9",
        arm_url="https://127.0.0.1:10",
        admin_url="http://127.0.0.1:11/_emulator",
        proxy_url="http://127.0.0.1:12",
        legacy_port=50342,
        ca_bundle="/tmp/ca.pem",
        admin_key="k",
        imds_listening=imds_listening,
    )


@pytest.mark.parametrize("mode", ["gateway", "forward"])
def test_anything_but_imds_gets_the_gateway_page(mode: str) -> None:
    backend = Backend("proxy-intercept", params={"mode": mode})
    layer = ProxyLayer(backend, _endpoints)
    request = wsgi_request("/", base_url="http://example.org")
    r = layer.handle(request)
    assert r.status_code == 502 and r.get_data(as_text=True) == GATEWAY_HTML
    assert request.environ["mi.fault"] == "proxy-intercept"


def test_forward_mode_needs_a_listening_imds() -> None:
    backend = Backend("proxy-intercept", params={"mode": "forward"})
    layer = ProxyLayer(backend, lambda: _endpoints(imds_listening=False))
    r = layer.handle(wsgi_request("/metadata/identity/oauth2/token", base_url="http://127.0.0.1:9"))
    assert r.status_code == 502  # nothing to relay to: the proxy's own error page, no connection made
    assert layer.keep_alive is False


@pytest.mark.parametrize("mode", ["gateway", "forward"])
def test_proxy_relays_nothing_but_imds(emu, use_scenario, mode):
    """The fake corporate proxy is no open relay: other hosts, ARM and the admin API get its 502 page.

    (The in-process network guard would also fail this test if the proxy dialled a non-loopback host.)
    """
    emu = use_scenario("proxy-intercept", mode=mode)
    proxy = emu.scenario_environment()["HTTP_PROXY"]
    admin = urlsplit(emu.admin_url)
    targets = [
        "http://example.org/",
        emu.arm_url.replace("https://", "http://") + "/metadata/endpoints",
        f"http://{admin.hostname}:{admin.port}/_emulator/world",
    ]
    with plain_session() as s:
        for url in targets:
            r = s.get(url, proxies={"http": proxy}, headers={KEY_HEADER: emu.admin_key}, timeout=5)
            assert r.status_code == 502, (url, r.status_code)
            assert SYS_PRINCIPAL not in r.text
        raw, _ = raw_exchange(
            proxy, b"CONNECT management.azure.com:443 HTTP/1.1\r\nHost: management.azure.com:443\r\n\r\n"
        )
        assert status_of(raw) == 502, raw[:100]
