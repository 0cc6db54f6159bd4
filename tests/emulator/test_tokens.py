"""The token issuer without HTTP: claims, the per identity+resource cache, and ARM's verification."""

from __future__ import annotations

import jwt
import pytest
from support.emulator import unverified_claims
from support.world import SYS_PRINCIPAL, TENANT

from mi_helpers.constants import Arm
from mi_helpers.emulator.tls import ensure_signing_key
from mi_helpers.emulator.tokens import (
    TokenAudienceError,
    TokenError,
    TokenExpiredError,
    TokenIssuer,
    TokenNotYetValidError,
)
from mi_helpers.emulator.world import World

NOW = 1_750_000_000.0


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer(ensure_signing_key(), TENANT, lifetime=3600)


@pytest.fixture
def principal():
    return World.default().select_identity()


def test_claims_of_a_managed_identity_token(issuer: TokenIssuer, principal) -> None:
    tok = issuer.issue(principal, Arm.RESOURCE, NOW)
    claims = unverified_claims(tok.access_token)
    assert claims["aud"] == Arm.RESOURCE and claims["iss"] == f"https://sts.windows.net/{TENANT}/"
    assert claims["oid"] == claims["sub"] == SYS_PRINCIPAL and claims["idtyp"] == "app"
    assert (claims["iat"], claims["exp"]) == (int(NOW), int(NOW) + 3600)
    header = jwt.get_unverified_header(tok.access_token)
    assert list(header) == ["typ", "alg", "x5t", "kid"] and header["kid"] == issuer.kid
    assert tok.access_token not in repr(tok)


def test_the_cache_serves_a_token_until_little_life_is_left(issuer: TokenIssuer, principal) -> None:
    first = issuer.issue(principal, Arm.RESOURCE, NOW)
    later = issuer.issue(principal, Arm.RESOURCE, NOW + 3000)  # 600 s left: more than the 300 s margin
    assert later.from_cache and later.access_token == first.access_token
    fresh = issuer.issue(principal, Arm.RESOURCE, NOW + 3301)  # 299 s left: clients treat it as expired
    assert not fresh.from_cache and fresh.iat == int(NOW + 3301)
    other = issuer.issue(principal, "https://vault.azure.net", NOW)
    assert other.access_token != first.access_token  # one cache entry per resource
    assert not issuer.issue(principal, Arm.RESOURCE, NOW + 3301, bypass_cache=True).from_cache


@pytest.mark.parametrize("audience", Arm.AUDIENCES)
def test_arm_accepts_its_four_audiences(issuer: TokenIssuer, principal, audience: str) -> None:
    token = issuer.issue(principal, audience, NOW).access_token
    assert issuer.verify(token, NOW + 1)["aud"] == audience


def test_verification_failures(issuer: TokenIssuer, principal) -> None:
    vault = issuer.issue(principal, "https://vault.azure.net", NOW).access_token
    with pytest.raises(TokenAudienceError) as aud:
        issuer.verify(vault, NOW)
    assert aud.value.aud == "https://vault.azure.net"
    token = issuer.issue(principal, Arm.RESOURCE, NOW).access_token
    with pytest.raises(TokenExpiredError):
        issuer.verify(token, NOW + 3600)
    with pytest.raises(TokenNotYetValidError):
        issuer.verify(token, NOW - 301)  # ARM tolerates five minutes of clock skew, not more
    assert issuer.verify(token, NOW - 299)["oid"] == SYS_PRINCIPAL
    other = TokenIssuer(ensure_signing_key(), "00000000-0000-0000-0000-000000000000")
    with pytest.raises(TokenError):
        issuer.verify(other.issue(principal, Arm.RESOURCE, NOW).access_token, NOW)  # wrong issuer
    with pytest.raises(TokenError):
        issuer.verify("a.b.c", NOW)
