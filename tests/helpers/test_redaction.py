"""Redaction: no whole JWT (nor bearer value, nor token field) survives in any text the helpers show."""

from __future__ import annotations

from mi_helpers.redaction import JWT_PATTERN, redact, redact_text, redact_token


def test_redact_replaces_every_jwt() -> None:
    token = ".".join(
        ["eyJhbGciOiJIUzI1NiJ9", "eyJvaWQiOiIxMjM0NTY3ODkwIn0", "abcdefghijklmnop"]
    )  # built here:
    # a whole JWT must not appear in committed files
    text = f"Authorization: Bearer {token} and again {token}; host management.azure.com v1.2.3"
    out = redact(text)
    assert token not in out
    assert out.count("eyJhbGci…(") == 2
    assert "management.azure.com v1.2.3" in out


def test_redact_text_shortens_bearer_values_and_token_fields_too() -> None:
    opaque = "0123456789abcdefghijklmnop"  # not a JWT: redact() alone keeps it
    text = f'Authorization: Bearer {opaque}\n{{"access_token": "{opaque}", "client_secret": "{opaque}"}}'
    assert opaque in redact(text)
    out = redact_text(text)
    assert opaque not in out and out.count(redact_token(opaque)) == 3
    assert redact_text("x" * 700, limit=50) == "x" * 49 + "…"


def test_host_names_and_versions_are_not_mistaken_for_tokens() -> None:
    for text in ("management.azure.com", "mi_helpers.emulator.scenarios", "v1.2.3", "eyJ.short.x"):
        assert not JWT_PATTERN.search(text), text
