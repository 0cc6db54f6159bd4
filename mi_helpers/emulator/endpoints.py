"""Where a running emulator can be reached, and the environment that points a client process at it.

:class:`Endpoints` is a value the server facade builds from its listeners whenever a layer asks; the layers
(admin API, proxy) and the backend read URLs from it instead of from the facade, so nothing below
``server.py`` depends on it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from mi_helpers.constants import LOOPBACK_NO_PROXY
from mi_helpers.constants import EnvironmentVariables as Env

__all__ = ["Endpoints", "is_loopback", "url_host"]


def url_host(host: str) -> str:
    """``host`` as it appears in a URL (``[::1]`` for IPv6; a wildcard address becomes loopback)."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def is_loopback(address: str | None) -> bool:
    """True for ``localhost`` and loopback IP addresses (``127.0.0.0/8``, ``::1``, with or without a zone)."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address((address or "").split("%")[0]).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Endpoints:
    """The URLs of one emulator, its CA bundle and admin key, and whether IMDS accepts connections."""

    imds_url: str
    arm_url: str
    admin_url: str
    #: Where the fake corporate proxy listens (or will, once a scenario that uses it is switched on).
    proxy_url: str
    #: The refused port of ``legacy-extension-endpoint`` (the retired extension's port unless it is taken).
    legacy_port: int
    ca_bundle: str
    admin_key: str = field(repr=False)
    imds_listening: bool = True
    #: The Entra ID authority host (``<entra_url>/<tenant>`` is the authority) and Microsoft Graph's base URL.
    entra_url: str = ""
    graph_url: str = ""
    #: The tenant, and the operator principal that stands in for the learner (client ID and its secret).
    tenant_id: str = ""
    operator_client_id: str = ""
    operator_secret: str = field(default="", repr=False)
    #: The data planes: the vault URL (Key Vault's listener) and Blob storage's base URL (path-style).
    keyvault_url: str = ""
    blob_url: str = ""

    def scenario_context(self) -> dict[str, str]:
        """What a scenario's client-environment builder may refer to."""
        return {
            "imds_url": self.imds_url,
            "arm_url": self.arm_url,
            "admin_url": self.admin_url,
            "proxy_url": self.proxy_url,
            "legacy_port": str(self.legacy_port),
        }

    def identity_environment(self) -> dict[str, str]:
        """The sign-in variables: Entra and Graph URLs, the tenant, the operator's client ID and secret.

        On Azure you sign in as yourself with ``az login``; here an operator principal stands in for you:
        ``az login --service-principal -u "$MI_HELPERS_OPERATOR_CLIENT_ID" -p
        "$MI_HELPERS_OPERATOR_CLIENT_SECRET" --tenant "$MI_HELPERS_TENANT_ID"``. The names are the
        project's own on purpose (see ``EnvironmentVariables``): ``AZURE_CLIENT_SECRET`` and friends would
        make azure-identity sign every kernel in as the operator.
        """
        values = {
            Env.MI_HELPERS_ENTRA_URL: self.entra_url,
            Env.MI_HELPERS_GRAPH_URL: self.graph_url,
            Env.MI_HELPERS_TENANT_ID: self.tenant_id,
            Env.MI_HELPERS_OPERATOR_CLIENT_ID: self.operator_client_id,
            Env.MI_HELPERS_OPERATOR_CLIENT_SECRET: self.operator_secret,
        }
        if not self.operator_secret:  # a world without an operator: no half sign-in
            values.pop(Env.MI_HELPERS_OPERATOR_CLIENT_ID)
        return {k: v for k, v in values.items() if v}

    def data_plane_environment(self) -> dict[str, str]:
        """Where the emulated Key Vault and Blob storage listen (helpers find them through ARM too)."""
        return {Env.MI_HELPERS_KEYVAULT_URL: self.keyvault_url, Env.MI_HELPERS_BLOB_URL: self.blob_url}

    def environment(self, extras: dict[str, str] | None = None) -> dict[str, str]:
        """Every variable a client process needs, then ``extras`` (a scenario's client-side changes)."""
        no_proxy = ",".join(LOOPBACK_NO_PROXY)
        env = {
            Env.AZURE_POD_IDENTITY_AUTHORITY_HOST: self.imds_url,
            Env.REQUESTS_CA_BUNDLE: self.ca_bundle,
            Env.MI_HELPERS_TARGET: "emulator",
            Env.MI_HELPERS_ARM_URL: self.arm_url,
            Env.MI_HELPERS_EMULATOR_ADMIN: self.admin_url,
            Env.MI_HELPERS_EMULATOR_KEY: self.admin_key,
            Env.NO_PROXY: no_proxy,
            Env.NO_PROXY.lower(): no_proxy,
        }
        env.update(self.identity_environment())
        env.update({k: v for k, v in self.data_plane_environment().items() if v})
        env.update(extras or {})
        return env
