"""Use the token: read a Key Vault secret and a blob with the VM's managed identity, through the real SDKs.

:func:`read_secret` builds ``azure.keyvault.secrets.SecretClient``, :func:`read_blob` builds
``azure.storage.blob.BlobClient``, both with the helpers' managed-identity credential, for either target.
Where the vault or account URL is not given, it is discovered the way code on Azure discovers it: ARM's GET of
the vault (``properties.vaultUri``) or of the storage account (``properties.primaryEndpoints.blob``) in the
VM's subscription and resource group (from instance metadata).

The one emulator-only adjustment: the emulated vault's URL is ``https://127.0.0.1:PORT/``, which cannot end
in ``.vault.azure.net``, so ``SecretClient`` is built with ``verify_challenge_resource=False`` on the
emulator target only (the Azure CLI always passes it; docs/protocol.md, "Key Vault"). On a VM the same call
builds the client without it. Failures are the SDK's own exceptions, for :func:`mi_helpers.diagnose`.
A secret comes back as a :class:`SecretValue` whose repr and str never show the value whole.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.constants import KeyVault, Storage
from mi_helpers.redaction import redact_secret
from mi_helpers.validate import InputError

__all__ = [
    "BlobContent",
    "SecretValue",
    "blob_endpoint",
    "read_blob",
    "read_data_url",
    "read_secret",
    "secret_client",
    "vault_url",
]

_VAULT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$")
_SECRET_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
_VERSION = re.compile(r"^[0-9a-fA-F]{32}$")
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_CONTAINER = re.compile(r"^(\$root|[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62})$")
_CLIENT_KWARGS: dict[str, Any] = {"retry_total": 2, "connection_timeout": 5, "read_timeout": 10}
#: api-versions of ARM's generic GET of a vault and of a storage account (azure-mgmt-keyvault /-storage).
_VAULT_API = "2023-07-01"
_STORAGE_API = "2023-05-01"


def _check(value: object, pattern: re.Pattern[str], field_name: str, allowed: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise InputError(field_name, allowed, value)
    return value


# ------------------------------------------------------------------------------------------- values
@dataclass(frozen=True, repr=False)
class SecretValue:
    """A secret read from Key Vault: ``value`` holds it, but repr/str show only ``abc…(N chars)``."""

    name: str
    version: str
    vault_url: str
    content_type: str | None
    value: str = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"SecretValue(name={self.name!r}, version={self.version[:8]}…, vault_url={self.vault_url!r}, "
            f"value={redact_secret(self.value)})"
        )

    __str__ = __repr__

    def _repr_html_(self) -> str:
        import html

        return f"<code>{html.escape(repr(self))}</code>"


@dataclass(frozen=True)
class BlobContent:
    """A blob read from Storage: its bytes, type, size and ETag (blob data is not secret; repr is short)."""

    url: str
    container: str
    name: str
    content_type: str | None
    etag: str
    data: bytes = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def text(self) -> str:
        """The content as UTF-8 text (undecodable bytes replaced)."""
        return self.data.decode("utf-8", "replace")

    def __repr__(self) -> str:
        preview = self.text[:60].replace("\n", "\\n")
        return (
            f"BlobContent({self.container}/{self.name}, {self.size} bytes, {self.content_type}: {preview!r})"
        )


# ------------------------------------------------------------------------------------------- discovery
def _coordinates(subscription_id: str | None, resource_group: str | None) -> tuple[str, str]:
    if subscription_id and resource_group:
        return subscription_id, resource_group
    from mi_helpers.arm import instance_metadata

    md = instance_metadata()
    return subscription_id or md.subscription_id, resource_group or md.resource_group


def _arm_properties(resource_id: str, api_version: str, credential: Any) -> dict[str, Any]:
    from mi_helpers.arm import resource_client

    sub = resource_id.split("/")[2]
    found = resource_client(sub, credential=credential).resources.get_by_id(
        resource_id, api_version=api_version
    )
    return dict(found.properties or {})


def vault_url(
    name: str,
    *,
    subscription_id: str | None = None,
    resource_group: str | None = None,
    credential: Any = None,
) -> str:
    """The vault's URL as ARM reports it (``properties.vaultUri``): what code on a VM should use.

    ``subscription_id``/``resource_group`` default to the VM's own (instance metadata).
    """
    _check(name, _VAULT_NAME, "name", "a key vault name: 3-24 letters, digits and hyphens")
    sub, rg = _coordinates(subscription_id, resource_group)
    rid = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}"
    return str(_arm_properties(rid, _VAULT_API, credential)["vaultUri"])


def blob_endpoint(
    account: str,
    *,
    subscription_id: str | None = None,
    resource_group: str | None = None,
    credential: Any = None,
) -> str:
    """The account's blob endpoint as ARM reports it (``properties.primaryEndpoints.blob``)."""
    _check(account, _ACCOUNT, "account", "a storage account name: 3-24 lower-case letters and digits")
    sub, rg = _coordinates(subscription_id, resource_group)
    rid = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{account}"
    return str(_arm_properties(rid, _STORAGE_API, credential)["primaryEndpoints"]["blob"])


# ------------------------------------------------------------------------------------------- clients
def _target_kwargs() -> tuple[dict[str, Any], bool]:
    from mi_helpers.targeting import target

    tgt = target()
    kwargs: dict[str, Any] = dict(_CLIENT_KWARGS)
    if tgt.ca_bundle:
        kwargs["connection_verify"] = tgt.ca_bundle
    return kwargs, tgt.is_emulator


def _credential(credential: Any) -> Any:
    if credential is not None:
        return credential
    from mi_helpers.identity import shared_credential

    return shared_credential()


def secret_client(url: str, *, credential: Any = None, **kwargs: Any) -> Any:
    """A real ``SecretClient`` for ``url`` with the managed identity, built for the current target.

    On the emulator target (only) it passes ``verify_challenge_resource=False``: the emulated vault lives on
    ``127.0.0.1``, whose name cannot end in the ``vault.azure.net`` of Key Vault's challenge. On a VM that
    line is absent and the SDK checks the challenge against the vault's real host name.
    """
    from azure.keyvault.secrets import SecretClient

    base, emulator = _target_kwargs()
    if emulator:
        base["verify_challenge_resource"] = False  # the one emulator-only adjustment
    return SecretClient(url, _credential(credential), **{**base, **kwargs})


def read_secret(
    name: str,
    *,
    vault: str | None = None,
    url: str | None = None,
    version: str | None = None,
    credential: Any = None,
) -> SecretValue:
    """Read secret ``name`` (its current version, or ``version``) from a vault given by ``url`` or by name.

    ``vault`` is looked up in ARM (:func:`vault_url`); on the emulator ``url`` defaults to its vault
    (MI_HELPERS_KEYVAULT_URL). Raises the SDK's exceptions (``HttpResponseError`` 403,
    ``ResourceNotFoundError`` 404, ``ClientAuthenticationError`` 401).
    """
    _check(name, _SECRET_NAME, "name", "a secret name: 1-127 letters, digits and hyphens")
    if version is not None:
        _check(version, _VERSION, "version", "a secret version: 32 hexadecimal characters")
    where = url or (
        vault_url(vault, credential=credential) if vault else os.environ.get(Env.MI_HELPERS_KEYVAULT_URL)
    )
    if not where:
        raise InputError("vault", "give vault= (a key vault name) or url= (https://<name>.vault.azure.net/)")
    if not str(where).startswith("https://"):
        raise InputError("url", "a vault URL starts with https:// (Key Vault needs TLS)", where)
    got = secret_client(str(where), credential=credential).get_secret(name, version)
    return SecretValue(
        got.name or name,
        got.properties.version or "",
        got.properties.vault_url or str(where),
        got.properties.content_type,
        got.value or "",
    )


class _OneToken:
    """A credential that fetches one token for ``resource`` and hands it out for every scope: what code that
    reuses one token for every service does (the storage-wrong-audience lesson)."""

    def __init__(self, credential: Any, resource: str) -> None:
        self._credential, self._resource = credential, resource.rstrip("/") + "/.default"
        self._token: Any = None

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        if self._token is None:
            self._token = self._credential.get_token(self._resource)
        return self._token

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        token = self.get_token()
        return AccessTokenInfo(token.token, token.expires_on)


def read_blob(
    container: str,
    blob: str,
    *,
    account: str | None = None,
    url: str | None = None,
    credential: Any = None,
    token_resource: str | None = None,
) -> BlobContent:
    """Download blob ``container/blob`` of a storage account given by ``url`` (its blob endpoint) or name.

    ``account`` is looked up in ARM (:func:`blob_endpoint`); on the emulator without either, the emulator's
    ``stmitutorial`` account's endpoint is used. ``token_resource`` (default:
    MI_HELPERS_STORAGE_TOKEN_RESOURCE, unset) makes the client reuse one token for that resource
    instead of Storage's, as code that reuses its ARM token does: Storage answers 401
    InvalidAuthenticationInfo. Raises the SDK's exceptions.
    """
    from azure.storage.blob import BlobClient

    _check(container, _CONTAINER, "container", "a container name: 3-63 lower-case letters, digits, hyphens")
    if not isinstance(blob, str) or not 1 <= len(blob) <= 1024:
        raise InputError("blob", "a blob name of 1-1024 characters", blob)
    endpoint = url
    if endpoint is None and account is not None:
        endpoint = blob_endpoint(account, credential=credential)
    if endpoint is None and os.environ.get(Env.MI_HELPERS_BLOB_URL):
        endpoint = os.environ[Env.MI_HELPERS_BLOB_URL].rstrip("/") + "/stmitutorial/"
    if not endpoint:
        raise InputError("account", "give account= (a storage account name) or url= (its blob endpoint)")
    if not str(endpoint).startswith("https://"):
        raise InputError("url", "a blob endpoint starts with https:// (tokens need TLS)", endpoint)
    cred = _credential(credential)
    resource = token_resource or os.environ.get(Env.MI_HELPERS_STORAGE_TOKEN_RESOURCE)
    if resource and resource.rstrip("/") != Storage.RESOURCE:
        cred = _OneToken(cred, resource)
    kwargs, _ = _target_kwargs()
    client = BlobClient(str(endpoint), container, blob, credential=cred, **kwargs)
    downloaded = client.download_blob()
    props = downloaded.properties
    return BlobContent(
        client.url,
        container,
        blob,
        props.content_settings.content_type if props.content_settings else None,
        str(props.etag or ""),
        downloaded.readall(),
    )


_DATA_URL_HELP = (
    "a secret URL (https://<vault>.vault.azure.net/secrets/<name>[/<version>]) or a blob URL "
    "(https://<account>.blob.core.windows.net/<container>/<blob>)"
)


def _path_style(host: str) -> bool:
    """Storage addresses an IP host or localhost path-style: the account is the first path segment."""
    from mi_helpers.emulator.endpoints import is_loopback

    bare = host.rsplit(":", 1)[0].strip("[]") if host.count(":") <= 1 or host.startswith("[") else host
    if is_loopback(bare):
        return True
    return bool(re.fullmatch(r"[0-9.]+", bare))


def read_data_url(url: str, *, credential: Any = None) -> SecretValue | BlobContent:
    """Read what a data-plane URL names: a Key Vault secret (``…/secrets/<name>[/<version>]``) or a blob.

    The URL is the one a program would use (a vault's ``vaultUri`` + ``secrets/<name>``, a blob's URL); for
    ``mi-helpers doctor --data-url``. Bad URLs are an :class:`InputError` naming ``url``.
    """
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme != "https" or not parts.netloc:
        raise InputError("url", _DATA_URL_HELP, url)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    base = f"https://{parts.netloc}"
    if segments[:1] == ["secrets"] and len(segments) in (2, 3):
        version = segments[2] if len(segments) == 3 else None
        return read_secret(segments[1], url=base + "/", version=version, credential=credential)
    if re.search(r"\.vault\.", parts.netloc.lower()):  # a vault's host, but not one of its secrets
        raise InputError("url", _DATA_URL_HELP, url)
    if _path_style(parts.netloc):
        if len(segments) < 3:
            raise InputError("url", _DATA_URL_HELP, url)
        base, segments = f"{base}/{segments[0]}", segments[1:]
    if len(segments) < 2:
        raise InputError("url", _DATA_URL_HELP, url)
    return read_blob(segments[0], "/".join(segments[1:]), url=base + "/", credential=credential)


#: For the notebooks: the audiences each data plane expects.
AUDIENCES = {"keyvault": KeyVault.RESOURCE, "storage": Storage.RESOURCE}
