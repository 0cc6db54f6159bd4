"""The wire errors of the emulator's Key Vault and Blob storage data planes.

Kept beside :mod:`mi_helpers.emulator.errors` (IMDS, ARM) and :mod:`~mi_helpers.emulator.identity_errors`
(Entra, Graph) so each service's texts live in one place (docs/protocol.md, "Key Vault", "Blob storage").

Key Vault's envelope is JSON, ``{"error": {"code", "message"[, "innererror": {"code"}]}}``; every 401 carries
the bearer challenge ``WWW-Authenticate: Bearer authorization="<authority>/<tenant>",
resource="https://vault.azure.net"``, which the SDK follows. Blob storage's is XML, ``<Error><Code/><Message>
text\\nRequestId:…\\nTime:…</Message>[details]</Error>`` with the code also in ``x-ms-error-code``; its 401
carries ``WWW-Authenticate: Bearer authorization_uri=…/oauth2/authorize resource_id=https://storage.azure.com``.
The texts are the real services' as quoted in public issues (sources in docs/protocol.md).
"""

from __future__ import annotations

import datetime as _dt
import uuid
from xml.sax.saxutils import escape

from mi_helpers.constants import KeyVault, Storage
from mi_helpers.emulator.errors import WireError

__all__ = [
    "KEYVAULT_CONTENT_TYPE",
    "BlobError",
    "KeyVaultError",
    "blob_framing_error",
    "keyvault_challenge",
    "keyvault_framing_error",
    "storage_challenge",
]

KEYVAULT_CONTENT_TYPE = "application/json; charset=utf-8"
#: Key Vault's authority in its challenge, as a captured 401 shows it (the SDK reads only the tenant).
KEYVAULT_AUTHORITY = "https://login.windows.net"


def keyvault_challenge(tenant_id: str) -> str:
    """The ``WWW-Authenticate`` value of every Key Vault 401."""
    return f'Bearer authorization="{KEYVAULT_AUTHORITY}/{tenant_id}", resource="{KeyVault.RESOURCE}"'


def storage_challenge(tenant_id: str) -> str:
    """The ``WWW-Authenticate`` value of Blob storage's 401 (space-separated, as the service sends it)."""
    return (
        f"Bearer authorization_uri=https://login.microsoftonline.com/{tenant_id}/oauth2/authorize "
        f"resource_id={Storage.RESOURCE}"
    )


class KeyVaultError(WireError):
    """A Key Vault error: status, ``code``, ``message`` and the optional ``innererror.code``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        inner: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.inner = inner
        body: dict[str, object] = {"code": code, "message": message}
        if inner:
            body["innererror"] = {"code": inner}
        super().__init__(status, {"error": body}, content_type=KEYVAULT_CONTENT_TYPE, headers=headers)


def keyvault_framing_error(status: int, detail: str) -> KeyVaultError:
    """Key Vault's answer to a request the transport refuses (the project's wording: Known differences)."""
    return KeyVaultError(status, "BadParameter", detail)


def _storage_time() -> str:
    """``2026-01-01T00:00:00.1234567Z``: Storage's error time, 7 fraction digits."""
    now = _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}0Z"


class BlobError(WireError):
    """A Blob storage error: status, ``code``, message text and extra XML elements (name → text)."""

    def __init__(
        self,
        status: int,
        code: str,
        text: str,
        details: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.code = code
        self.text = text
        self.details = dict(details or {})
        self.request_id = f"{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:4]}-0000-0000-{'0' * 12}"
        extra = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in self.details.items())
        body = (
            '<?xml version="1.0" encoding="utf-8"?><Error><Code>'
            f"{code}</Code><Message>{escape(text)}\nRequestId:{self.request_id}\nTime:{_storage_time()}"
            f"</Message>{extra}</Error>"
        )
        all_headers = {"x-ms-error-code": code, "x-ms-request-id": self.request_id, **(headers or {})}
        super().__init__(status, body, content_type="application/xml", headers=all_headers)


def blob_framing_error(status: int, detail: str) -> BlobError:
    """Blob storage's answer to a request the transport refuses."""
    code = {413: "RequestBodyTooLarge", 408: "OperationTimedOut", 414: "InvalidUri"}.get(
        status, "InvalidInput"
    )
    return BlobError(status, code, detail or "One of the request inputs is not valid.")
