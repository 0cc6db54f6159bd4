"""An access token and what it says, safe to print: ``TokenInfo`` shows the token only redacted.

``TokenInfo.secret()`` returns the raw token for code that must send it; nothing else exposes it (not the
repr, the HTML, the summary, the claims table, nor pickling). Claims are decoded without verification, for
display: this is what the token *says*, which is what a learner needs to see (``aud``, ``oid``, ``exp``…).
"""

from __future__ import annotations

import functools
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from mi_helpers.redaction import redact, redact_token

if TYPE_CHECKING:
    import pandas as pd

    from mi_helpers.attempts import Attempt

__all__ = ["CLAIM_MEANINGS", "Selector", "TokenInfo", "decode_claims", "selector_label"]

#: An identity selector as validated: None (system-assigned) or ``(kind, value)``, kind one of
#: ``client_id``, ``object_id``, ``resource_id``.
Selector = tuple[str, str] | None


def selector_label(selector: Selector) -> str:
    """Human form of an identity selector: ``system-assigned identity`` or ``client_id=…``."""
    return "system-assigned identity" if selector is None else f"{selector[0]}={selector[1]}"


CLAIM_MEANINGS: dict[str, str] = {
    "aud": "audience: the resource this token is for (must match the service you call)",
    "iss": "issuer: the Entra ID tenant that signed the token",
    "iat": "issued at",
    "nbf": "not valid before",
    "exp": "expires at",
    "appid": "client ID of the identity (application ID)",
    "appidacr": "how the app authenticated (2 = certificate)",
    "idp": "identity provider",
    "idtyp": "identity type: app = an app-only token",
    "oid": "object (principal) ID: what role assignments refer to",
    "sub": "subject: the principal the token is about (= oid for a managed identity)",
    "tid": "tenant ID",
    "ver": "token format version",
    "xms_mirid": "resource ID of the managed identity (the VM for system-assigned, the UAMI otherwise)",
    "xms_az_rid": "resource ID of the hosting resource",
    "uti": "unique token identifier (opaque)",
    "aio": "internal (opaque)",
    "rh": "internal (opaque)",
    "roles": "app roles granted to the identity",
}
_TIME_CLAIMS = ("iat", "nbf", "exp")


def decode_claims(token: str) -> dict[str, Any]:
    """Decode a JWT's payload **without verifying it** (for display); {} when it is not a JWT."""
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return dict(claims) if isinstance(claims, dict) else {}


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


class TokenInfo:
    """An access token and what it says, safe to print: the token itself shows only as ``eyJ0eXAi…(N chars)``.

    ``secret()`` returns the raw token for code that must send it; nothing else exposes it.
    """

    def __init__(
        self,
        token: str,
        expires_on: int,
        *,
        scope: str = "",
        selector: Selector = None,
        attempts: list[Attempt] | None = None,
        elapsed: float = 0.0,
        url: str = "",
    ) -> None:
        self.__token = token
        self.expires_on: datetime = _utc(expires_on)
        self.scope = scope
        self.selector = selector
        self.attempts: list[Attempt] = list(attempts or [])
        self.elapsed = elapsed
        self.url = url

    @functools.cached_property
    def claims(self) -> dict[str, Any]:
        """The token's claims, decoded (not verified) on first use: a cached token costs no decoding."""
        return decode_claims(self.__token)

    def secret(self) -> str:
        """The raw access token. Send it; never print or log it."""
        return self.__token

    @property
    def redacted(self) -> str:
        return redact_token(self.__token)

    @property
    def expires_in(self) -> int:
        """Seconds until expiry (negative once expired)."""
        return int(self.expires_on.timestamp() - time.time())

    @property
    def audience(self) -> str:
        aud = self.claims.get("aud")
        if isinstance(aud, str) and aud:
            return aud
        return self.scope.removesuffix("/.default")

    @property
    def principal_id(self) -> str | None:
        return self.claims.get("oid")

    @property
    def client_id(self) -> str | None:
        return self.claims.get("appid") or self.claims.get("azp")

    @property
    def tenant_id(self) -> str | None:
        return self.claims.get("tid")

    @property
    def mi_resource_id(self) -> str | None:
        return self.claims.get("xms_mirid")

    def claims_table(self) -> pd.DataFrame:
        """The claims as a DataFrame (claim, value, meaning); times shown in UTC next to their epoch value."""
        import pandas as pd

        rows = []
        for name, value in self.claims.items():
            shown = value
            if name in _TIME_CLAIMS and isinstance(value, (int, float)):
                shown = f"{int(value)} ({_utc(value):%Y-%m-%d %H:%M:%S} UTC)"
            rows.append({"claim": name, "value": redact(shown), "meaning": CLAIM_MEANINGS.get(name, "")})
        return pd.DataFrame(rows, columns=["claim", "value", "meaning"])

    def summary(self) -> dict[str, Any]:
        """JSON-able facts about the token (what ``mi-helpers token --json`` prints)."""
        return {
            "token": self.redacted,
            "audience": self.audience,
            "expires_on": self.expires_on.isoformat(),
            "expires_in": self.expires_in,
            "principal_id": self.principal_id,
            "client_id": self.client_id,
            "tenant_id": self.tenant_id,
            "mi_resource_id": self.mi_resource_id,
            "identity": selector_label(self.selector),
            "attempts": len(self.attempts),
            "elapsed": round(self.elapsed, 3),
            "claims": {k: redact(v) if isinstance(v, str) else v for k, v in self.claims.items()},
        }

    def __repr__(self) -> str:
        return (
            f"TokenInfo(token={self.redacted}, audience={self.audience!r}, "
            f"principal_id={self.principal_id!r}, client_id={self.client_id!r}, "
            f"expires_on={self.expires_on.isoformat()!r})"
        )

    __str__ = __repr__

    def _repr_html_(self) -> str:
        import html

        facts = (
            ("token", self.redacted),
            ("audience (aud)", self.audience),
            ("principal id (oid)", self.principal_id),
            ("client id (appid)", self.client_id),
            ("tenant (tid)", self.tenant_id),
            ("identity resource (xms_mirid)", self.mi_resource_id),
            ("expires", f"{self.expires_on:%Y-%m-%d %H:%M:%S} UTC (in {self.expires_in} s)"),
            ("attempts", f"{len(self.attempts)} in {self.elapsed:.2f} s"),
        )
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td><code>{html.escape(redact(v))}</code></td></tr>"
            for k, v in facts
        )
        return f"<table>{rows}</table>"

    def __reduce__(self) -> Any:
        raise TypeError("TokenInfo holds a secret and cannot be pickled")
