"""RS256 access tokens as the managed-identity back end issues them, their cache, and ARM's verification.

Claims follow a real VM token (docs/protocol.md#access-tokens): v1 issuer
``https://sts.windows.net/<tid>/``, ``aud`` exactly the requested resource, ``oid`` = ``sub`` = principal ID,
``appid`` = client ID, ``xms_mirid`` = the identity's ARM ID. Like real IMDS, a token is cached per identity
and resource: a repeated request gets the same token with a smaller ``expires_in``. Signing happens once per
cache entry, so a cached request costs microseconds. ``verify`` is what the emulated ARM runs on each request.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from mi_helpers.constants import Arm
from mi_helpers.emulator.model import Principal
from mi_helpers.emulator.tls import SigningMaterial

__all__ = [
    "DEFAULT_LIFETIME",
    "IssuedToken",
    "TokenAudienceError",
    "TokenError",
    "TokenExpiredError",
    "TokenIssuer",
    "TokenNotYetValidError",
]

DEFAULT_LIFETIME = 86399


class TokenError(Exception):
    """The token is not one of ours (not a JWT, bad signature, wrong issuer)."""


class TokenAudienceError(TokenError):
    def __init__(self, aud: str) -> None:
        self.aud = aud
        super().__init__(aud)


class TokenExpiredError(TokenError):
    def __init__(self, exp: float, now: float) -> None:
        self.exp, self.now = exp, now
        super().__init__(f"exp {exp} < now {now}")


class TokenNotYetValidError(TokenError):
    def __init__(self, nbf: float, now: float) -> None:
        self.nbf, self.now = nbf, now
        super().__init__(f"nbf {nbf} > now {now}")


@dataclass(frozen=True)
class IssuedToken:
    """A signed token plus the times IMDS reports; ``from_cache`` tells whether it was reused."""

    access_token: str = field(repr=False)  # never shown whole, not even in a debugger's repr
    iat: int
    nbf: int
    exp: int
    lifetime: int
    from_cache: bool = False


def _b64url_uint(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class TokenIssuer:
    """Issues and verifies the emulator's tokens for one tenant, with a per identity+resource cache."""

    def __init__(self, signing: SigningMaterial, tenant_id: str, lifetime: int = DEFAULT_LIFETIME) -> None:
        self._key: rsa.RSAPrivateKey = signing.private_key
        self._public = signing.private_key.public_key()
        self._signing = signing
        self.kid = signing.thumbprint
        self.tenant_id = tenant_id
        self.lifetime = int(lifetime)
        self._cache: dict[tuple[str, str], IssuedToken] = {}
        self._verified: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    @property
    def issuer(self) -> str:
        return f"https://sts.windows.net/{self.tenant_id}/"

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def issue(
        self,
        principal: Principal,
        resource: str,
        now: float | None = None,
        bypass_cache: bool = False,
        *,
        first_party: bool = True,
    ) -> IssuedToken:
        """A token for ``principal`` and ``resource``: the cached one while it has enough life left.

        ``first_party`` is False for a resource that is an application of the tenant (a custom API): Entra
        puts ``xms_mirid`` only into tokens for Microsoft's own services (docs/protocol.md#access-tokens).
        """
        t = time.time() if now is None else now
        key = (principal.principal_id.lower(), resource)
        with self._lock:
            cached = self._cache.get(key)
            # Reuse while more than min(5 min, half the lifetime) remains: clients treat < 5 min as expired.
            margin = min(300, cached.lifetime // 2) if cached else 0
            if cached and not bypass_cache and cached.exp - t > margin and cached.iat <= t + 1:
                return IssuedToken(
                    cached.access_token, cached.iat, cached.nbf, cached.exp, cached.lifetime, True
                )
        fresh = self._sign(principal, resource, int(t), first_party)
        with self._lock:
            self._cache[key] = fresh
        return fresh

    def _sign(self, p: Principal, resource: str, iat: int, first_party: bool = True) -> IssuedToken:
        exp = iat + self.lifetime
        claims: dict[str, Any] = {
            "aud": resource,
            "iss": self.issuer,
            "iat": iat,
            "nbf": iat,
            "exp": exp,
            "aio": base64.urlsafe_b64encode(secrets.token_bytes(24)).rstrip(b"=").decode(),
            "appid": p.client_id,
            "appidacr": "2",
            "idp": self.issuer,
            "idtyp": "app",
            "oid": p.principal_id,
            "rh": "0.emulated." + secrets.token_urlsafe(12),
            "sub": p.principal_id,
            "tid": p.tenant_id,
            "uti": secrets.token_urlsafe(16)[:22],
            "ver": "1.0",
        }
        if first_party:
            claims["xms_mirid"] = p.mirid
        # Header order as in real tokens: typ, alg, x5t, kid.
        header = {"x5t": self.kid, "kid": self.kid}
        token = jwt.encode(claims, self._key, algorithm="RS256", headers=header, sort_headers=False)
        return IssuedToken(token, iat, iat, exp, self.lifetime, False)

    def verify(self, token: str, now: float) -> dict[str, Any]:
        """Check signature, issuer, audience (one of the four ARM ones), ``nbf`` and ``exp`` at ``now``."""
        digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        with self._lock:
            claims = self._verified.get(digest)
        if claims is None:
            try:
                claims = jwt.decode(
                    token,
                    self._public,
                    algorithms=["RS256"],
                    options={
                        "verify_exp": False,
                        "verify_nbf": False,
                        "verify_iat": False,
                        "verify_aud": False,
                    },
                )
            except jwt.PyJWTError as exc:
                raise TokenError(type(exc).__name__) from exc
            if claims.get("iss") != self.issuer or not isinstance(claims.get("exp"), int):
                raise TokenError("issuer or exp")
            with self._lock:
                if len(self._verified) > 4096:
                    self._verified.clear()
                self._verified[digest] = claims
        aud = claims.get("aud")
        if aud not in Arm.AUDIENCES:
            raise TokenAudienceError(str(aud))
        if claims["exp"] <= now:
            raise TokenExpiredError(claims["exp"], now)
        nbf = claims.get("nbf")
        if isinstance(nbf, int) and nbf > now + 300:  # ARM tolerates a few minutes of clock skew
            raise TokenNotYetValidError(nbf, now)
        return claims

    def jwks(self) -> dict[str, Any]:
        """The public signing key as a JWKS document (what ``/<tenant>/discovery/keys`` serves)."""
        nums = self._public.public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": self.kid,
                    "x5t": self.kid,
                    "n": _b64url_uint(nums.n),
                    "e": _b64url_uint(nums.e),
                    "x5c": [base64.b64encode(self._signing.cert_der).decode()],
                    "issuer": self.issuer,
                }
            ]
        }

    def openid_configuration(self, base_url: str) -> dict[str, Any]:
        """A minimal OpenID metadata document pointing at our JWKS (for readers that verify tokens)."""
        tid = self.tenant_id
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{base_url}/{tid}/discovery/keys",
            "token_endpoint": f"{base_url}/{tid}/oauth2/token",
            "authorization_endpoint": f"{base_url}/{tid}/oauth2/authorize",
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
            "subject_types_supported": ["pairwise"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }

    # ------------------------------------------------------------------ app tokens (client credentials)
    def issue_app_token(
        self,
        *,
        app_id: str,
        object_id: str,
        audience: str,
        roles: Sequence[str] = (),
        lifetime: int | None = None,
        now: float | None = None,
    ) -> IssuedToken:
        """A v1 app-only token as Entra issues it to an application signing in with a client secret.

        Claims as in a real client-credentials token for a v1 resource such as ARM or Graph
        (docs/protocol.md#access-tokens): ``appidacr`` ``"1"`` (a secret), no ``xms_mirid``, ``roles`` only
        when app roles were granted on that resource. Entra signs a new token for every request (MSAL
        caches, not Entra).
        """
        iat = int(time.time() if now is None else now)
        life = self.lifetime if lifetime is None else int(lifetime)
        exp = iat + life
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": self.issuer,
            "iat": iat,
            "nbf": iat,
            "exp": exp,
            "aio": base64.urlsafe_b64encode(secrets.token_bytes(24)).rstrip(b"=").decode(),
            "appid": app_id,
            "appidacr": "1",
            "idp": self.issuer,
            "idtyp": "app",
            "oid": object_id,
            "rh": "0.emulated." + secrets.token_urlsafe(12),
        }
        if roles:
            claims["roles"] = list(roles)
        claims.update(
            {"sub": object_id, "tid": self.tenant_id, "uti": secrets.token_urlsafe(16)[:22], "ver": "1.0"}
        )
        header = {"x5t": self.kid, "kid": self.kid}
        token = jwt.encode(claims, self._key, algorithm="RS256", headers=header, sort_headers=False)
        return IssuedToken(token, iat, iat, exp, life, False)

    def verify_for(self, token: str, now: float, audiences: Collection[str]) -> dict[str, Any]:
        """Like :meth:`verify`, for a service whose accepted audiences are ``audiences`` (e.g. Graph).

        Raises :class:`TokenError` (not ours), :class:`TokenAudienceError`, :class:`TokenExpiredError` or
        :class:`TokenNotYetValidError`, in that order of checks.
        """
        try:
            claims = jwt.decode(
                token,
                self._public,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(type(exc).__name__) from exc
        if claims.get("iss") != self.issuer or not isinstance(claims.get("exp"), int):
            raise TokenError("issuer or exp")
        aud = claims.get("aud")
        if aud not in audiences:
            raise TokenAudienceError(str(aud))
        if claims["exp"] <= now:
            raise TokenExpiredError(claims["exp"], now)
        nbf = claims.get("nbf")
        if isinstance(nbf, int) and nbf > now + 300:
            raise TokenNotYetValidError(nbf, now)
        return dict(claims)
