"""TokenInfo: what a token says, safe to print (the token itself only redacted, never pickled)."""

from __future__ import annotations

import json
import pickle

import jwt
import pytest

from mi_helpers.attempts import Attempt
from mi_helpers.token_info import TokenInfo, decode_claims, selector_label


def _token(**claims: object) -> str:
    return jwt.encode({"aud": "https://vault.azure.net", "oid": "o", "exp": 4102444800, **claims}, "k" * 32)


def test_decode_claims_of_non_jwt() -> None:
    assert decode_claims("not-a-jwt") == {}


def test_token_info_cannot_be_pickled() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(TokenInfo(_token(), 4102444800))


def test_every_rendering_shows_the_token_redacted_only() -> None:
    raw = _token(appid="a", tid="t", xms_mirid="/sub/x/vm", iat=1764921928)
    attempts = [Attempt(1, 0.0, 0.01, 200, "ok")]
    tok = TokenInfo(
        raw,
        4102444800,
        scope="https://vault.azure.net/.default",
        selector=("client_id", "c"),
        attempts=attempts,
    )
    assert tok.secret() == raw
    assert (tok.audience, tok.principal_id, tok.client_id, tok.tenant_id) == (
        "https://vault.azure.net",
        "o",
        "a",
        "t",
    )
    shown = [
        repr(tok),
        str(tok),
        tok._repr_html_(),
        json.dumps(tok.summary()),
        tok.claims_table().to_string(),
    ]
    for text in shown:
        assert raw not in text and raw[len(raw) // 2 :] not in text
    assert tok.summary()["identity"] == "client_id=c" and tok.summary()["attempts"] == 1


def test_the_audience_falls_back_to_the_scope_for_opaque_tokens() -> None:
    tok = TokenInfo("opaque-token-value", 4102444800, scope="https://storage.azure.com/.default")
    assert tok.claims == {} and tok.audience == "https://storage.azure.com"
    assert tok.claims_table().empty


def test_selector_label() -> None:
    assert selector_label(None) == "system-assigned identity"
    assert selector_label(("object_id", "x")) == "object_id=x"
