"""get_token: bounded retries, classification, progress, TokenInfo and redaction.

The first half runs the real azure-identity against a scripted loopback IMDS (``imds_stub``: the azure
target aimed at 127.0.0.1), so every status and failure shape is exact; the second half runs against the
embedded emulator's scenarios.
"""

from __future__ import annotations

import html
import json
import logging
import os
import socket
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError
from support.timing import SLACK
from support.world import (
    SYS_CLIENT,
    SYS_PRINCIPAL,
    TENANT,
    UAMI_READER_CLIENT,
    UAMI_READER_PRINCIPAL,
    UAMI_READER_RESOURCE_ID,
)

import mi_helpers as mi
from mi_helpers.constants import Imds
from mi_helpers.identity import SignInError
from mi_helpers.validate import InputError

from .conftest import Reply, Stub, ok_reply

FAST = {"progress": False, "backoff": 0.05, "connect_timeout": 1, "read_timeout": 1}


def error_reply(status: int, error: str = "", description: str = "", **headers: str) -> Reply:
    body = {"error": error, "error_description": description} if error else {}
    return Reply(status, body, dict(headers))


def assert_no_whole_token(token: str, *texts: str) -> None:
    for text in texts:
        assert token not in text
        assert token[len(token) // 2 :] not in text  # not even its second half


# --------------------------------------------------------------------------- scripted IMDS


def test_token_info_claims_and_redaction(imds_stub: Stub) -> None:
    imds_stub.set(ok_reply({"appid": SYS_CLIENT, "xms_mirid": "/subscriptions/x/vm", "iat": 1764921928}))
    tok = mi.get_token("arm", **FAST)
    raw = tok.secret()
    assert raw.count(".") == 2
    assert tok.principal_id == SYS_PRINCIPAL and tok.tenant_id == TENANT
    assert tok.client_id == SYS_CLIENT and tok.mi_resource_id == "/subscriptions/x/vm"
    assert tok.audience == "https://management.azure.com"
    assert 86000 < tok.expires_in <= 86399  # MSAL uses expires_in, not expires_on
    assert tok.redacted == f"{raw[:8]}…({len(raw)} chars)"
    table = tok.claims_table()
    assert list(table.columns) == ["claim", "value", "meaning"]
    row = table.set_index("claim").loc["iat"]
    assert "2025-12-05" in row["value"]
    assert "principal" in table.set_index("claim").loc["oid", "meaning"]
    assert_no_whole_token(
        raw, repr(tok), str(tok), tok._repr_html_(), json.dumps(tok.summary()), table.to_string()
    )
    assert tok.redacted in repr(tok)
    assert html.escape(tok.redacted) in tok._repr_html_()
    (req,) = imds_stub.requests
    assert req["path"] == "/metadata/identity/oauth2/token"
    assert req["args"]["resource"] == "https://management.azure.com"
    assert req["headers"]["Metadata"] == "true"


@pytest.mark.parametrize(
    ("resource", "sent"),
    [
        ("key vault", "https://vault.azure.net"),
        ("https://storage.azure.com/", "https://storage.azure.com/"),
        ("https://management.core.windows.net/", "https://management.core.windows.net/"),
        ("api://1b3d5f7a-9c1e-4b3d-8f5a-7c9e1b3d5f7a/.default", "api://1b3d5f7a-9c1e-4b3d-8f5a-7c9e1b3d5f7a"),
    ],
)
def test_resource_forms(imds_stub: Stub, resource: str, sent: str) -> None:
    tok = mi.get_token(resource, **FAST)
    assert imds_stub.requests[-1]["args"]["resource"] == sent
    assert tok.scope.endswith("/.default")


def test_selectors_on_the_wire(imds_stub: Stub) -> None:
    mi.get_token(client_id=UAMI_READER_CLIENT, **FAST)
    mi.get_token(object_id=UAMI_READER_PRINCIPAL, **FAST)
    mi.get_token(resource_id=UAMI_READER_RESOURCE_ID, **FAST)
    args = [r["args"] for r in imds_stub.requests]
    assert args[0]["client_id"] == UAMI_READER_CLIENT
    assert args[1]["object_id"] == UAMI_READER_PRINCIPAL
    assert args[2]["msi_res_id"] == UAMI_READER_RESOURCE_ID


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"client_id": "abc"}, "client_id"),
        ({"resource": "management.azure.com"}, "resource"),
        ({"resource": ["https://a.example/.default", "https://b.example/.default"]}, "resource"),
        ({"client_id": UAMI_READER_CLIENT, "object_id": UAMI_READER_PRINCIPAL}, "identity"),
        ({"budget": 0}, "budget"),
        ({"read_timeout": -1}, "read_timeout"),
    ],
)
def test_bad_input_sends_nothing(imds_stub: Stub, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as exc:
        mi.get_token(**{"progress": False, **kwargs})
    assert str(exc.value).startswith(f"{field}: ")
    assert "\n" not in str(exc.value)
    assert imds_stub.requests == []


def test_second_call_served_from_token_cache(imds_stub: Stub) -> None:
    first = mi.get_token(**FAST)
    second = mi.get_token(**FAST)
    assert first.secret() == second.secret()
    assert len(imds_stub.requests) == 1


def test_410_retried_until_recovered(imds_stub: Stub, events: tuple[list[Any], Any]) -> None:
    seen, callback = events
    imds_stub.set(error_reply(410), error_reply(410), ok_reply())
    tok = mi.get_token(**{**FAST, "progress": callback, "budget": 10})
    assert [a.status for a in tok.attempts] == [410, 410, 200]
    assert [a.outcome for a in tok.attempts] == ["retry", "retry", "ok"]
    assert [a.kind for a in tok.attempts] == ["imds-updating", "imds-updating", "ok"]
    assert tok.attempts[1].wait == pytest.approx(0.05)  # back-off delta·(2¹−1)
    assert len(imds_stub.requests) == 3
    kinds = [e.kind for e in seen]
    assert kinds[0] == "attempt" and kinds[-1] == "done" and "result" in kinds


@pytest.mark.parametrize("status", [404, 500, 503])
def test_404_and_5xx_retried(imds_stub: Stub, status: int) -> None:
    imds_stub.set(error_reply(status, "unknown", "Failed to retrieve token"), ok_reply())
    tok = mi.get_token(**{**FAST, "budget": 10})
    assert [a.status for a in tok.attempts] == [status, 200]
    if status >= 500:
        assert tok.attempts[0].wait >= 1.0  # "retry after waiting for at least 1 second"


def test_429_honours_retry_after(imds_stub: Stub) -> None:
    imds_stub.set(Reply(429, {}, {"Retry-After": "1"}), ok_reply())
    tok = mi.get_token(**{**FAST, "budget": 10})
    first = tok.attempts[0]
    assert (first.status, first.kind, first.retry_after, first.wait) == (429, "throttled", 1.0, 1.0)


def test_retry_after_beyond_budget_gives_up_at_once(imds_stub: Stub) -> None:
    imds_stub.set(Reply(429, {}, {"Retry-After": "30"}))
    with pytest.raises(SignInError) as exc:
        mi.get_token(**{**FAST, "budget": 3})
    err = exc.value
    assert err.reason == "budget-exhausted" and err.kind == "throttled"
    assert len(err.attempts) == 1 and err.elapsed < 3
    assert "budget" in str(err)


def test_identity_not_found_stops_at_once(imds_stub: Stub) -> None:
    imds_stub.set(error_reply(400, "invalid_request", "Identity not found"))
    with pytest.raises(SignInError) as exc:
        mi.get_token(client_id=UAMI_READER_CLIENT, **FAST)
    err = exc.value
    assert isinstance(err, ClientAuthenticationError)
    assert len(imds_stub.requests) == 1
    assert (err.kind, err.reason, err.status, err.error_code) == (
        "identity-not-found",
        "not-retryable",
        400,
        "invalid_request",
    )
    assert err.description == "Identity not found"
    assert err.selector == ("client_id", UAMI_READER_CLIENT)
    assert err.url.startswith(imds_stub.url + "/metadata/identity/oauth2/token?")
    assert "client_id=" + UAMI_READER_CLIENT in err.url
    assert "Token request error: (invalid_request) Identity not found" in str(err.original)
    assert "\n" not in str(err)
    assert "retrying cannot fix this" in str(err)
    assert [a.outcome for a in err.attempts] == ["fatal"]


def test_multiple_user_assigned_identities(imds_stub: Stub) -> None:
    imds_stub.set(
        error_reply(
            400,
            "invalid_request",
            "Multiple user assigned identities exist, please specify the clientId / resourceId "
            "of the identity in the token request",
        )
    )
    with pytest.raises(SignInError) as exc:
        mi.get_token(**FAST)
    assert exc.value.kind == "multiple-identities"
    assert len(imds_stub.requests) == 1


def test_non_json_answer_is_not_retried(imds_stub: Stub) -> None:
    imds_stub.set(Reply(200, "<html><body>Welcome to nginx</body></html>"))
    with pytest.raises(SignInError) as exc:
        mi.get_token(**FAST)
    assert exc.value.kind == "non-json"
    assert len(imds_stub.requests) == 1


def test_proxy_answer_is_not_retried(imds_stub: Stub, monkeypatch: pytest.MonkeyPatch) -> None:
    """A corporate proxy (the stub) answers for an IMDS host that NO_PROXY does not cover."""
    monkeypatch.setenv("HTTP_PROXY", imds_stub.url)
    monkeypatch.setenv("NO_PROXY", "localhost")
    monkeypatch.setenv("no_proxy", "localhost")
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://imds.invalid")
    imds_stub.set(Reply(502, "<html><body>Bad Gateway (proxy)</body></html>", {"Via": "1.1 corp-proxy"}))
    with pytest.raises(SignInError) as exc:
        mi.get_token(**FAST)
    assert exc.value.kind == "proxy"
    assert len(imds_stub.requests) == 1


def test_connection_refused_stops_at_once(imds_stub: Stub, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", f"http://127.0.0.1:{port}")
    with pytest.raises(SignInError) as exc:
        mi.get_token(**FAST)
    err = exc.value
    assert (err.kind, err.reason, err.status) == ("connection-refused", "not-retryable", None)
    assert len(err.attempts) == 1
    assert f"127.0.0.1:{port}" in err.url


def test_hanging_imds_gives_up_within_budget(imds_stub: Stub, events: tuple[list[Any], Any]) -> None:
    seen, callback = events
    imds_stub.set(Reply(200, {}, hang=30))
    with pytest.raises(SignInError) as exc:
        mi.get_token(**{**FAST, "read_timeout": 0.5, "budget": 2.0, "progress": callback})
    err = exc.value
    assert err.kind == "timeout"
    assert err.reason in ("budget-exhausted", "retries-exhausted")
    assert len(err.attempts) >= 2
    assert all(a.kind == "timeout" and a.status is None for a in err.attempts)
    assert err.elapsed <= err.budget + SLACK  # the bound itself, with slack for a loaded machine
    assert seen[-1].kind == "failed"


def test_no_whole_token_in_logs(imds_stub: Stub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="azure")
    caplog.set_level(logging.DEBUG, logger="msal")
    tok = mi.get_token(**FAST)
    assert any(r.name.startswith(("azure", "msal")) for r in caplog.records)  # the SDK did log
    assert_no_whole_token(tok.secret(), caplog.text)


# --------------------------------------------------------------------------- embedded emulator


def now_iso() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def token_requests(emu: Any, since: str = "") -> list[dict[str, Any]]:
    """Answered token requests in the emulator's log, from ``since`` on (a request left hanging by an
    earlier ``imds-hang`` test is logged, unanswered with status 0, when that scenario is switched away)."""
    return [
        r
        for r in emu.request_log()
        if "/oauth2/token" in str(r.get("path", "")) and str(r.get("time", "")) >= since and r.get("status")
    ]


def test_emulator_healthy_claims(emu: Any) -> None:
    tok = mi.get_token("arm", progress=False)
    assert tok.principal_id == SYS_PRINCIPAL
    assert tok.client_id == SYS_CLIENT
    assert tok.tenant_id == TENANT
    assert tok.audience.rstrip("/") == "https://management.azure.com"
    assert (
        (tok.mi_resource_id or "")
        .lower()
        .endswith("/providers/microsoft.compute/virtualmachines/vm-mi-tutorial")
    )
    assert tok.attempts[-1].status == 200 and len(tok.attempts) == 1
    assert_no_whole_token(tok.secret(), repr(tok), tok._repr_html_(), tok.claims_table().to_string())
    assert_no_whole_token(tok.secret(), json.dumps(emu.request_log(), default=str))


@pytest.mark.parametrize(
    "selector",
    [
        {"client_id": UAMI_READER_CLIENT},
        {"object_id": UAMI_READER_PRINCIPAL},
        {"resource_id": UAMI_READER_RESOURCE_ID},
        {"resource_id": UAMI_READER_RESOURCE_ID.lower()},
    ],
)
def test_emulator_user_assigned(emu: Any, selector: dict[str, str]) -> None:
    tok = mi.get_token("arm", progress=False, **selector)
    assert tok.principal_id == UAMI_READER_PRINCIPAL
    assert tok.client_id == UAMI_READER_CLIENT
    assert (tok.mi_resource_id or "").lower() == UAMI_READER_RESOURCE_ID.lower()
    assert tok.selector is not None and tok.selector[0] == next(iter(selector))


def test_emulator_imds_updating_recovers_within_budget(emu: Any, events: tuple[list[Any], Any]) -> None:
    seen, callback = events
    mi.use_emulator("imds-updating", t=1.0)
    since = now_iso()
    tok = mi.get_token("arm", budget=10, backoff=0.3, progress=callback)
    statuses = [a.status for a in tok.attempts]
    assert statuses[0] == 410 and statuses[-1] == 200
    assert set(statuses[:-1]) == {410}
    assert all(a.kind == "imds-updating" and a.outcome == "retry" for a in tok.attempts[:-1])
    assert len(token_requests(emu, since)) == len(tok.attempts)
    assert tok.elapsed < 10
    # a 1 s outage outlasts the back-off's 0 s first step, so get_token must have waited, and said so
    assert any(a.wait > 0 for a in tok.attempts)
    assert any(e.kind == "wait" for e in seen)


def test_emulator_server_error_recovers(emu: Any) -> None:
    mi.use_emulator("imds-server-error", n=2)
    tok = mi.get_token("arm", budget=10, backoff=0.05, progress=False)
    assert [a.status for a in tok.attempts][-1] == 200
    assert [a.kind for a in tok.attempts[:-1]] == ["server-error", "server-error"]


def test_emulator_imds_hang_gives_up_within_budget(emu: Any) -> None:
    mi.use_emulator("imds-hang")
    with pytest.raises(SignInError) as exc:
        mi.get_token("arm", budget=2.0, read_timeout=0.5, backoff=0.05, progress=False)
    err = exc.value
    assert err.kind == "timeout" and err.reason in ("budget-exhausted", "retries-exhausted")
    assert len(err.attempts) >= 2
    assert err.elapsed <= err.budget + SLACK


def test_emulator_no_identity_stops_at_once(emu: Any) -> None:
    mi.use_emulator("no-identity")
    since = now_iso()
    with pytest.raises(SignInError) as exc:
        mi.get_token("arm", budget=20, progress=False)
    err = exc.value
    assert (err.kind, err.reason, err.status) == ("identity-not-found", "not-retryable", 400)
    assert len(err.attempts) == 1
    assert len(token_requests(emu, since)) == 1
    assert err.elapsed < 5  # stopped at once instead of spending the 20 s budget


@pytest.mark.parametrize(
    ("scenario", "kind"),
    [
        ("multiple-user-assigned", "multiple-identities"),
        ("imds-unreachable", "connection-refused"),
        ("proxy-intercept", "proxy"),
        ("foreign-metadata-server", "non-json"),
    ],
)
def test_emulator_unfixable_by_retrying(emu: Any, scenario: str, kind: str) -> None:
    mi.use_emulator(scenario)
    with pytest.raises(SignInError) as exc:
        mi.get_token("arm", budget=20, progress=False)
    assert exc.value.kind == kind
    assert exc.value.reason == "not-retryable"
    assert len(exc.value.attempts) == 1


def test_emulator_throttled_honours_retry_after(emu: Any) -> None:
    mi.use_emulator("imds-throttled", burst=1, rate=2.0, retry_after=1)
    mi.get_token("arm", progress=False)
    tok = mi.get_token("key vault", budget=10, progress=False)  # another resource: not in the token cache
    throttled = [a for a in tok.attempts if a.status == 429]
    assert throttled and throttled[0].retry_after == 1.0 and throttled[0].wait >= 1.0
    assert tok.attempts[-1].status == 200


def test_credential_factory_is_the_real_sdk_credential(emu: Any) -> None:
    from azure.identity import ManagedIdentityCredential

    cred = mi.credential(client_id=UAMI_READER_CLIENT)
    assert isinstance(cred, ManagedIdentityCredential)
    tok = mi.get_token("arm", credential=cred, progress=False)
    assert tok.client_id == UAMI_READER_CLIENT
    with pytest.raises(InputError):
        mi.credential(client_id="abc")
    with pytest.raises(InputError):
        mi.credential(client_id=UAMI_READER_CLIENT, resource_id=UAMI_READER_RESOURCE_ID)


def test_budget_shorter_than_read_timeout_bounds_the_first_try(imds_stub: Stub) -> None:
    imds_stub.set(Reply(200, {}, hang=30))
    with pytest.raises(SignInError) as exc:
        mi.get_token(progress=False, budget=0.6, read_timeout=3, connect_timeout=1)
    assert exc.value.kind == "timeout"
    # the default 3 s read timeout was cut to the budget: well under 3 s (a tight bound, on purpose)
    assert exc.value.elapsed <= 0.6 + 1.0


def test_azure_target_against_a_standalone_emulator(
    isolated_target: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `azure` target honours the redirection variables, so it can be exercised against an emulator."""
    from mi_helpers.emulator import Emulator

    with Emulator(scenario="healthy") as other:
        for key, value in other.environment().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("MI_HELPERS_TARGET", "azure")
        monkeypatch.delenv("MI_HELPERS_CLOUD", raising=False)
        t = mi.target()
        assert (t.name, t.cloud) == ("azure", "public")
        assert t.imds_url == other.imds_url.rstrip("/") and t.arm_url == other.arm_url.rstrip("/")
        assert t.ca_bundle == other.ca_bundle
        assert f"{Imds.ADDRESS}" in os.environ["NO_PROXY"].split(",")
        assert mi.get_token(progress=False).principal_id == SYS_PRINCIPAL
        assert mi.vm_principal_id() == SYS_PRINCIPAL
        assert any(r.get("listener") == "arm" for r in other.request_log())


def test_token_in_an_error_body_is_redacted_everywhere(imds_stub: Stub) -> None:
    leaked = ".".join(
        ["eyJ0eXAiOiJKV1QifQ", "eyJvaWQiOiJsZWFrZWQtdG9rZW4tcGF5bG9hZCJ9", "c2lnbmF0dXJlLXBhcnQ"]
    )
    imds_stub.set(error_reply(400, "invalid_request", f"bad token {leaked} supplied"))
    with pytest.raises(SignInError) as exc:
        mi.get_token(**FAST)
    err = exc.value
    shown = [str(err), repr(err), err.message, str(err.description), repr(err.attempts), err.args[0]]
    assert_no_whole_token(leaked, *shown)
    assert "eyJ0eXAi…(" in str(err)


def test_progress_bar_is_shown_while_retrying(imds_stub: Stub, capsys: pytest.CaptureFixture[str]) -> None:
    imds_stub.set(error_reply(410), error_reply(410), ok_reply())
    mi.get_token(progress=True, backoff=0.3, budget=10, read_timeout=1)
    err = capsys.readouterr().err
    assert "token for https://management.azure.com" in err
    assert "410 Gone" in err and "got a token after 3 attempt(s)" in err


def test_a_credential_with_cut_timeouts_is_not_kept_for_later_calls(emu: Any) -> None:
    """A tiny budget cuts the first try's timeouts; that credential must not become the shared one that
    later calls (and every ARM helper) use with their full timeouts. Seen from IMDS: the next default call
    asks again (nothing was cached for it), the one after is served from the kept credential's cache."""
    since = now_iso()
    tok = mi.get_token("arm", budget=0.5, progress=False)
    assert tok.attempts[-1].kind == "ok"
    assert len(token_requests(emu, since)) == 1
    mi.get_token("arm", progress=False)  # default budget: a credential with full timeouts asks IMDS …
    assert len(token_requests(emu, since)) == 2
    mi.get_token("arm", progress=False)  # … and is kept: its token cache answers
    assert len(token_requests(emu, since)) == 2
