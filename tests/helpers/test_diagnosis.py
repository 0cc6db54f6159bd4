"""`mi_helpers.diagnosis.diagnose`: captured real texts, real SDK exceptions, context, rendering,
redaction."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from support.world import RG, SUB, SYS_PRINCIPAL, UAMI_READER_CLIENT, VM
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from mi_helpers.constants import Imds
from mi_helpers.diagnosis import (
    DIAGNOSIS_IDS,
    Diagnosis,
    DiagnosisContext,
    diagnose,
    diagnosis_for,
)
from mi_helpers.validate import InputError

# Verbatim texts from public reports; the IMDS address is kept as a placeholder and filled in here.
_CAPTURED_RAW = (Path(__file__).parent / "captured" / "texts.json").read_text(encoding="utf-8")
CAPTURED = json.loads(_CAPTURED_RAW.replace("{imds_address}", Imds.ADDRESS))
PID = SYS_PRINCIPAL
CID = UAMI_READER_CLIENT
CTX = {
    "subscription_id": SUB,
    "resource_group": RG,
    "vm_name": VM,
    "principal_id": PID,
    "client_id": CID,
}
# A JWT-shaped secret: three base64url segments, the first starting "eyJ".
FAKE_JWT = (
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9."
    + "eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQuYXp1cmUuY29tIn0"
    + ".c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
)

CLEAN_ENV: dict[str, str] = {"NO_PROXY": f"127.0.0.1,localhost,{Imds.ADDRESS}"}


CASES = [(did, text) for did, texts in CAPTURED.items() if not did.startswith("_") for text in texts]


@pytest.mark.parametrize(("expected", "text"), CASES, ids=[f"{d}-{i}" for i, (d, _) in enumerate(CASES)])
def test_captured_texts(expected: str, text: str) -> None:
    d = diagnose(text, context={"environ": CLEAN_ENV})
    assert d.id == expected, (d.id, text)


# --------------------------------------------------------------------------------- real SDK exceptions


class _Server:
    """A tiny loopback HTTP(S) server answering with a scripted (status, body, content type)."""

    def __init__(
        self, status: int, body: Any, ctype: str = "application/json", ssl_context: Any = None
    ) -> None:
        self.status, self.body, self.ctype = status, body, ctype

        @Request.application
        def app(request: Request) -> Response:
            data = self.body if isinstance(self.body, str) else json.dumps(self.body)
            return Response(data, status=self.status, content_type=self.ctype)

        self.server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=ssl_context)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        scheme = "https" if ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def imds(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    servers: list[_Server] = []

    def start(status: int, body: Any, ctype: str = "application/json") -> str:
        srv = _Server(status, body, ctype)
        servers.append(srv)
        monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", srv.url)
        return srv.url

    yield start
    for s in servers:
        s.close()


def _sync_error(**kw: Any) -> BaseException:
    from azure.identity import ManagedIdentityCredential

    cred = ManagedIdentityCredential(retry_total=0, connection_timeout=1, read_timeout=1, **kw)
    with pytest.raises(Exception) as info:
        cred.get_token("https://management.azure.com/.default")
    return info.value


def _async_error(**kw: Any) -> BaseException:
    from azure.identity.aio import ManagedIdentityCredential

    async def run() -> BaseException:
        cred = ManagedIdentityCredential(retry_total=0, connection_timeout=1, read_timeout=1, **kw)
        try:
            await cred.get_token("https://management.azure.com/.default")
        except Exception as exc:
            return exc
        finally:
            await cred.close()
        raise AssertionError("no error")

    return asyncio.run(run())


NOT_FOUND = {"error": "invalid_request", "error_description": "Identity not found"}


def test_sync_identity_not_found(imds: Any) -> None:
    imds(400, NOT_FOUND)
    exc = _sync_error()
    assert "no response from the IMDS endpoint" in str(exc)  # the misleading prefix
    d = diagnose(exc, context=CTX)
    assert d.id == "identity-not-assigned"
    assert d.evidence["error_code"] == "invalid_request"
    assert "Identity not found" in d.evidence["server_text"]
    assert "az vm identity assign -g rg-mi-tutorial -n vm-mi-tutorial" in d.commands["az"]
    assert (
        "Update-AzVM -ResourceGroupName rg-mi-tutorial -VM $vm -IdentityType SystemAssigned"
        in (d.commands["powershell"])
    )


def test_async_identity_not_found(imds: Any) -> None:
    imds(400, NOT_FOUND)
    exc = _async_error(client_id=CID)
    assert "has not been assigned" in str(exc)
    assert diagnose(exc).id == "identity-not-assigned"


def test_identity_propagating_needs_context(imds: Any) -> None:
    imds(400, NOT_FOUND)
    exc = _sync_error()
    assert diagnose(exc).id == "identity-not-assigned"
    assert diagnose(exc, context={"identity_attached": True}).id == "identity-propagating"
    attempts = [{"status": 400}, {"status": 400}, {"status": 200}]
    assert diagnose(exc, context={"attempts": attempts}).id == "identity-propagating"


def test_multiple_user_assigned(imds: Any) -> None:
    imds(
        400,
        {
            "error": "invalid_request",
            "error_description": "Multiple user assigned identities exist, please specify the clientId / "
            "resourceId of the identity in the token request",
        },
    )
    d = diagnose(_sync_error(), context=CTX)
    assert d.id == "user-assigned-selector-required"
    assert f"Connect-AzAccount -Identity -AccountId {CID}" in d.commands["powershell"]
    assert f"az login --identity --client-id {CID}" in d.commands["az"]


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            410,
            {"error": "service_unavailable", "error_description": "IMDS is going through updates"},
            "imds-updating",
        ),
        (
            429,
            {"error": "too_many_requests", "error_description": "IMDS Throttle limit reached"},
            "imds-throttled",
        ),
        (500, {"error": "unknown", "error_description": "Failed to retrieve token"}, "imds-server-error"),
    ],
)
def test_sync_transient_statuses(imds: Any, status: int, body: Any, expected: str) -> None:
    imds(status, body)
    assert diagnose(_sync_error()).id == expected


def test_sync_non_json(imds: Any) -> None:
    imds(200, "<html><body>not IMDS</body></html>", "text/html")
    exc = _sync_error()
    assert str(exc) == "ManagedIdentityCredential authentication unavailable."
    assert diagnose(exc, context={"environ": CLEAN_ENV}).id == "non-imds-response"
    proxied = {"HTTP_PROXY": "http://proxy.example:3128", "NO_PROXY": "localhost"}
    assert diagnose(exc, context={"environ": proxied}).id == "proxy-intercepts-imds"


def test_sync_connection_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", f"http://127.0.0.1:{port}")
    exc = _sync_error()
    chain = [exc.__cause__, exc.__context__]
    assert any(c is not None and type(c).__name__ == "ServiceRequestError" for c in chain)
    assert diagnose(exc).id == "imds-unreachable"
    assert diagnose(exc, context={"target": "azure"}).id == "imds-unreachable"
    assert diagnose(exc, context={"target": "off-azure"}).id == "not-on-azure"


def test_sync_read_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # the kernel completes the handshake; nobody ever answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", f"http://127.0.0.1:{s.getsockname()[1]}")
        from azure.identity import ManagedIdentityCredential

        cred = ManagedIdentityCredential(retry_total=0, connection_timeout=1, read_timeout=0.3)
        with pytest.raises(Exception) as info:
            cred.get_token("https://management.azure.com/.default")
    names = {type(e).__name__ for e in (info.value, info.value.__cause__, info.value.__context__) if e}
    assert "ServiceResponseTimeoutError" in names
    assert diagnose(info.value).id == "imds-timeout"


def _arm_error(status: int, body: Any, **client_kw: Any) -> BaseException:
    """A real azure-mgmt-compute call against a loopback ARM stand-in answering `status`/`body`."""
    from azure.core.credentials import AccessToken
    from azure.mgmt.compute import ComputeManagementClient

    class _Cred:
        def get_token(self, *scopes: str, **kw: Any) -> AccessToken:
            return AccessToken(FAKE_JWT, 4102444800)

    srv = _Server(status, body)
    try:
        client = ComputeManagementClient(_Cred(), SUB, base_url=srv.url, retry_total=0, **client_kw)
        with pytest.raises(Exception) as info:
            client.virtual_machines.get("rg-mi-tutorial", "vm-mi-tutorial", enforce_https=False)
        return info.value
    finally:
        srv.close()


def _arm_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


AUTHZ_MSG = (
    f"The client '{PID}' with object id '{PID}' does not have authorization to perform action "
    f"'Microsoft.Compute/virtualMachines/read' over scope "
    f"'/subscriptions/{SUB}/resourceGroups/rg-mi-tutorial' or the scope is invalid. "
    "If access was recently granted, please refresh your credentials."
)


@pytest.mark.parametrize(
    ("status", "code", "message", "expected", "exc_type"),
    [
        (403, "AuthorizationFailed", AUTHZ_MSG, "arm-authorization-failed", "HttpResponseError"),
        (
            401,
            "InvalidAuthenticationTokenAudience",
            "The access token has been obtained for wrong audience or resource 'https://storage.azure.com'.",
            "arm-wrong-audience",
            "ClientAuthenticationError",
        ),
        (
            401,
            "ExpiredAuthenticationToken",
            "The access token expiry UTC time '3/5/2025 1:40:20 AM' is earlier than current UTC time "
            "'3/17/2025 5:31:31 PM'.",
            "arm-token-expired",
            "ClientAuthenticationError",
        ),
        (
            404,
            "ResourceNotFound",
            "The Resource 'Microsoft.Compute/virtualMachines/vm-mi-tutorial' under resource group "
            "'rg-mi-tutorial' was not found.",
            "arm-resource-not-found",
            "ResourceNotFoundError",
        ),
        (
            404,
            "ResourceGroupNotFound",
            "Resource group 'rg-mi-tutorial' could not be found.",
            "arm-resource-group-not-found",
            "ResourceNotFoundError",
        ),
        (
            404,
            "SubscriptionNotFound",
            f"The subscription '{SUB}' could not be found.",
            "arm-subscription-not-found",
            "ResourceNotFoundError",
        ),
        (
            429,
            "SubscriptionRequestsThrottled",
            f"Number of 'read' requests for subscription '{SUB}' actor '{PID}' exceeded.",
            "arm-throttled",
            "HttpResponseError",
        ),
    ],
)
def test_arm_errors(status: int, code: str, message: str, expected: str, exc_type: str) -> None:
    exc = _arm_error(status, _arm_body(code, message))
    assert type(exc).__name__ == exc_type
    assert exc.error.code == code  # type: ignore[attr-defined]
    d = diagnose(exc, context=CTX)
    assert d.id == expected
    assert d.evidence["status"] == status
    assert d.evidence["error_code"] == code


def test_authorization_failed_vs_role_propagating() -> None:
    exc = _arm_error(403, _arm_body("AuthorizationFailed", AUTHZ_MSG))
    scope = (
        f"/subscriptions/{SUB}/resourceGroups/rg-mi-tutorial/providers/Microsoft.Compute/virtualMachines/vm"
    )
    d = diagnose(exc, context={**CTX, "scope": scope})
    assert d.id == "arm-authorization-failed"
    assert (
        f"az role assignment create --assignee-object-id {PID} --assignee-principal-type ServicePrincipal "
        f"--role Reader --scope {scope}"
    ) in d.commands["az"]
    assert (
        f"New-AzRoleAssignment -ObjectId {PID} -RoleDefinitionName Reader -Scope {scope}"
        in (d.commands["powershell"])
    )
    above = [{"principal_id": PID.upper(), "scope": f"/subscriptions/{SUB}/resourceGroups/RG-MI-TUTORIAL"}]
    assert diagnose(exc, context={**CTX, "scope": scope, "role_assignments": above}).id == "role-propagating"
    other = [{"principal_id": PID, "scope": f"/subscriptions/{SUB}/resourceGroups/other-rg"}]
    assert diagnose(exc, context={**CTX, "scope": scope, "role_assignments": other}).id == (
        "arm-authorization-failed"
    )
    assert diagnose(exc, context={"role_assignment_exists": True}).id == "role-propagating"


def test_tls_untrusted_real_client() -> None:
    import certifi
    import trustme
    from azure.core.credentials import AccessToken
    from azure.mgmt.compute import ComputeManagementClient

    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    srv = _Server(200, {}, ssl_context=ctx)

    class _Cred:
        def get_token(self, *scopes: str, **kw: Any) -> AccessToken:
            return AccessToken(FAKE_JWT, 4102444800)

    try:
        client = ComputeManagementClient(
            _Cred(), SUB, base_url=srv.url, retry_total=0, connection_verify=certifi.where()
        )
        with pytest.raises(Exception) as info:
            client.virtual_machines.get("rg-mi-tutorial", "vm-mi-tutorial")
    finally:
        srv.close()
    assert diagnose(info.value).id == "tls-untrusted"


def test_sign_in_error_like_wrapper() -> None:
    """A SignInError-like wrapper: the original exception, attempts with kinds, elapsed, url, selector."""

    class Wrapped(Exception):
        pass

    orig = Exception(
        "ManagedIdentityCredential authentication unavailable, no response from the IMDS endpoint."
    )
    err = Wrapped("no token for https://management.azure.com: IMDS server error — gave up")
    err.original = orig  # type: ignore[attr-defined]
    err.attempts = [  # type: ignore[attr-defined]
        {"status": 410, "kind": "imds-updating", "retry_after": None},
        {"status": 410, "kind": "imds-updating"},
    ]
    err.elapsed = 3.25  # type: ignore[attr-defined]
    err.url = f"http://{Imds.ADDRESS}/metadata/identity/oauth2/token"  # type: ignore[attr-defined]
    err.selector = ("client_id", CID)  # type: ignore[attr-defined]
    d = diagnose(err)
    assert d.id == "imds-updating"
    assert d.evidence["elapsed_s"] == 3.25
    assert d.evidence["attempts"][0]["status"] == 410
    assert d.evidence["selector"] == f"client_id={CID}"


def test_legacy_endpoint_from_url_and_env() -> None:
    exc = ConnectionRefusedError("[Errno 111] Connection refused")
    assert (
        diagnose(exc, context={"url": "http://localhost:50342/oauth2/token"}).id
        == "legacy-extension-endpoint"
    )
    assert (
        diagnose(exc, context={"url": "http://127.0.0.1:8080/oauth2/token"}).id == "legacy-extension-endpoint"
    )
    env = {"MSI_ENDPOINT": "http://localhost:50342/oauth2/token"}
    assert diagnose(exc, context={"environ": env}).id == "legacy-extension-endpoint"
    assert diagnose(exc, context={"environ": {}}).id == "imds-unreachable"


def _resp(status: int, ctype: str, text: str, url: str) -> Any:
    """A response-like object shaped like ``requests.Response`` (status_code, headers, text, request.url)."""
    return SimpleNamespace(
        status_code=status, headers={"Content-Type": ctype}, text=text, request=SimpleNamespace(url=url)
    )


def test_proxy_gateway_response_object() -> None:
    resp = _resp(
        502,
        "text/html",
        "<html><title>502 Bad Gateway</title><p>upstream down</p></html>",
        f"http://{Imds.ADDRESS}/metadata/identity/oauth2/token",
    )
    assert diagnose(resp).id == "proxy-intercepts-imds"


def test_docker_desktop_403_is_unreachable() -> None:
    resp = _resp(
        403,
        "text/plain",
        f"connecting to {Imds.ADDRESS}:80: dial tcp {Imds.ADDRESS}:80: connect: host is unreachable",
        "http://127.0.0.1:1234/metadata/identity/oauth2/token",
    )
    assert diagnose(resp).id == "imds-unreachable"


def test_dict_inputs() -> None:
    assert diagnose({"error": "invalid_request", "error_description": "Identity not found"}).id == (
        "identity-not-assigned"
    )
    assert diagnose({"error": {"code": "ResourceGroupNotFound", "message": "x"}}).id == (
        "arm-resource-group-not-found"
    )


def test_rendering_and_no_whole_token() -> None:
    text = (
        "ManagedIdentityCredential authentication unavailable, no response from the IMDS endpoint. "
        f"Token request error: (invalid_request) Identity not found; Authorization: Bearer {FAKE_JWT} "
        f'{{"access_token": "{FAKE_JWT}"}}'
    )
    d = diagnose(text, context=CTX)
    assert d.id == "identity-not-assigned"
    rendered = [str(d), repr(d), d._repr_html_(), json.dumps(d.to_dict())]
    for out in rendered:
        assert FAKE_JWT not in out
        assert FAKE_JWT[:40] not in out
    card = str(d)
    for label in ("Cause:", "Fix:", "Evidence:", "PowerShell:", "Docs:"):
        assert label in card
    html = d._repr_html_()
    for label in ("Cause:", "Fix:", "Evidence:", "Docs:"):
        assert f"<strong>{label}</strong>" in html
    assert "<script" not in html
    assert set(d.to_dict()) == {"id", "title", "cause", "evidence", "fix", "commands", "docs"}


def test_html_escapes_server_text() -> None:
    d = diagnose("<script>alert(1)</script> Identity not found")
    assert "<script>" not in d._repr_html_()


def test_bad_context_is_input_error() -> None:
    with pytest.raises(InputError) as info:
        diagnose("x", context={"vm": "typo"})
    assert "context" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(InputError):
        diagnose("x", context=42)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        diagnosis_for("no-such-id")


def test_diagnosis_passthrough_and_frozen() -> None:
    d = diagnose("ERROR: Identity not found")
    assert diagnose(d) is d
    assert isinstance(d, Diagnosis)
    with pytest.raises(AttributeError):
        d.id = "x"  # type: ignore[misc]
    assert DiagnosisContext.coerce(None) == DiagnosisContext()


def test_default_azure_credential_wrapping(imds: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """DefaultAzureCredential folds the MI message into its own; the MI line still decides."""
    from azure.identity import DefaultAzureCredential

    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential")
    imds(400, NOT_FOUND)
    cred = DefaultAzureCredential(retry_total=0, connection_timeout=1, read_timeout=1)
    with pytest.raises(Exception) as info:
        cred.get_token("https://management.azure.com/.default")
    assert "DefaultAzureCredential failed to retrieve a token" in str(info.value)
    assert diagnose(info.value).id == "identity-not-assigned"


# One input per catalogue id that `diagnose` itself can name (wrong-identity comes from the doctor's
# comparison of the token with the VM, not from an error text). These inputs are synthetic and shaped to
# reach each rule (e.g. "(Code) x\nCode: Code" for ARM's code pattern), so they test the rule table, not
# real wording: the real texts, verbatim from public reports, are in captured/texts.json
# (test_captured_texts), and the real SDK exceptions are the tests above.
ONE_PER_ID: dict[str, tuple[Any, dict[str, Any]]] = {
    "not-on-azure": ("[Errno 111] Connection refused", {"target": "off-azure"}),
    "imds-unreachable": ("[Errno 111] Connection refused", {"target": "azure"}),
    "imds-timeout": ("Read timed out. (read timeout=3)", {"target": "azure"}),
    "missing-metadata-header": ("Required metadata header not specified", {}),
    "identity-not-assigned": ("ERROR: Identity not found", {}),
    "user-assigned-selector-required": (
        "ERROR: Multiple user assigned identities exist, please specify…",
        {},
    ),
    "identity-propagating": ("ERROR: Identity not found", {"identity_attached": True}),
    "principal-id-as-client-id": (
        "ERROR: Identity not found",
        {"client_id": PID, "known_identities": [{"name": "uami-x", "principal_id": PID, "client_id": CID}]},
    ),
    "arm-scope-not-visible": (
        "(AuthorizationFailed) The client 'x' with object id 'x' does not have authorization to perform "
        f"action 'Microsoft.Compute/virtualMachines/read' over scope '/subscriptions/{SUB}/resourceGroups/"
        "rg-nope/providers/Microsoft.Compute/virtualMachines/vm' or the scope is invalid.",
        {"visible_resource_groups": [RG]},
    ),
    "imds-updating": ({"attempts": [{"status": 410, "kind": "imds-updating"}]}, {}),
    "imds-throttled": ({"attempts": [{"status": 429, "kind": "throttled"}]}, {}),
    "imds-server-error": ({"attempts": [{"status": 500, "kind": "server-error"}]}, {}),
    "non-imds-response": ("ManagedIdentityCredential authentication unavailable.", {"environ": CLEAN_ENV}),
    "proxy-intercepts-imds": ("The request failed due to a gateway error.", {}),
    "legacy-extension-endpoint": ("az login: error: unrecognized arguments: --msi", {}),
    "arm-authorization-failed": ("(AuthorizationFailed) x\nCode: AuthorizationFailed", {}),
    "role-propagating": (
        "(AuthorizationFailed) x\nCode: AuthorizationFailed",
        {"role_assignment_exists": True},
    ),
    "stale-principal-assignment": (
        "(AuthorizationFailed) x\nCode: AuthorizationFailed",
        {
            "principal_id": "0a0a0a0a-1111-4222-8333-444455556666",
            "role_assignments": [{"principal_id": SYS_PRINCIPAL, "scope": "/subscriptions/s"}],
            "deleted_principal_ids": [SYS_PRINCIPAL],
        },
    ),
    "arm-wrong-audience": (
        "(InvalidAuthenticationTokenAudience) x\nCode: InvalidAuthenticationTokenAudience",
        {},
    ),
    "arm-token-expired": ("(ExpiredAuthenticationToken) x\nCode: ExpiredAuthenticationToken", {}),
    "token-unknown-resource": ("(invalid_resource) AADSTS500011: The resource principal named x was …", {}),
    "arm-api-version-unsupported": ("(NoRegisteredProviderFound) x\nCode: NoRegisteredProviderFound", {}),
    "arm-invalid-token": ("(InvalidAuthenticationToken) The access token is invalid.", {}),
    "arm-resource-not-found": ("(ResourceNotFound) x\nCode: ResourceNotFound", {}),
    "arm-resource-group-not-found": ("(ResourceGroupNotFound) x\nCode: ResourceGroupNotFound", {}),
    "arm-subscription-not-found": ("(SubscriptionNotFound) x\nCode: SubscriptionNotFound", {}),
    "arm-throttled": ("(SubscriptionRequestsThrottled) x\nCode: SubscriptionRequestsThrottled", {}),
    "tls-untrusted": ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed", {}),
    "unknown": ("nothing we know", {}),
    # the data planes (tests/helpers/test_dataplane.py reads the real SDK exceptions)
    "kv-rbac-data-role-missing": (
        "(Forbidden) Caller is not authorized to perform action on resource. ForbiddenByRbac",
        {},
    ),
    "kv-access-policy-missing": (
        "(Forbidden) … does not have secrets get permission on key vault 'kv;location=x'",
        {},
    ),
    "data-role-propagating": (
        "(Forbidden) ForbiddenByRbac",
        {
            "principal_id": PID,
            "scope": f"/subscriptions/{SUB}",
            "role_assignments": [{"principal_id": PID, "scope": f"/subscriptions/{SUB}"}],
        },
    ),
    "kv-wrong-audience": ("(Unauthorized) AKV10022: Invalid audience.", {}),
    "kv-secret-not-found": (
        "(SecretNotFound) A secret with (name/id) x was not found in this key vault.",
        {},
    ),
    "kv-challenge-resource-mismatch": (
        "The challenge resource 'vault.azure.net' does not match the requested domain.",
        {},
    ),
    "storage-data-role-missing": (
        "This request is not authorized…\nErrorCode:AuthorizationPermissionMismatch",
        {},
    ),
    "storage-wrong-audience": (
        "ErrorCode:InvalidAuthenticationInfo authenticationerrordetail:Audience validation failed.",
        {},
    ),
    "storage-version-too-old": ("Authentication scheme Bearer is not supported in this version.", {}),
    "storage-container-not-found": (
        "The specified container does not exist.\nErrorCode:ContainerNotFound",
        {},
    ),
    "storage-blob-not-found": ("The specified blob does not exist.\nErrorCode:BlobNotFound", {}),
}


def test_one_input_per_id() -> None:
    assert set(ONE_PER_ID) | {"wrong-identity", "vm-without-identity"} == set(DIAGNOSIS_IDS)
    for did, (subject, ctx) in ONE_PER_ID.items():
        assert diagnose(subject, context=ctx).id == did, did


def test_real_sign_in_error() -> None:
    """mi_helpers.identity.SignInError as get_token raises it (attempts, error_code, description)."""
    from azure.identity import CredentialUnavailableError

    from mi_helpers.identity import Attempt, SignInError

    orig = CredentialUnavailableError(
        "ManagedIdentityCredential authentication unavailable, no response from the IMDS endpoint. "
        "Token request error: (too_many_requests) IMDS Throttle limit reached"
    )
    attempts = [
        Attempt(
            1, 0.0, 0.01, 429, "throttled", "too_many_requests", "IMDS Throttle limit reached", 1.0, "retry"
        ),
        Attempt(
            2, 1.0, 0.01, 429, "throttled", "too_many_requests", "IMDS Throttle limit reached", 1.0, "gave-up"
        ),
    ]
    err = SignInError(
        "no token for https://management.azure.com (system-assigned identity) after 2 attempts in 1.0 s: "
        "429: IMDS throttled the request — gave up: the next retry would pass the 2 s budget",
        original=orig,
        attempts=attempts,
        elapsed=1.02,
        budget=2.0,
        url="http://127.0.0.1:9/metadata/identity/oauth2/token",
        selector=None,
        scope="https://management.azure.com/.default",
        reason="budget-exhausted",
    )
    d = diagnose(err, context=CTX)
    assert d.id == "imds-throttled"
    assert d.evidence["status"] == 429
    assert d.evidence["error_code"] == "too_many_requests"
    assert "429 throttled @0.0 s (Retry-After 1.0) → 429 throttled @1.0 s" in str(d)


def test_token_info_with_recovered_attempts() -> None:
    """A success that needed retries (get_token's TokenInfo) names the transient fault it overcame."""
    from mi_helpers.identity import Attempt, TokenInfo

    attempts = [
        Attempt(1, 0.0, 0.01, 410, "imds-updating", "service_unavailable", "IMDS is going through updates"),
        Attempt(2, 2.0, 0.01, 200, "ok"),
    ]
    tok = TokenInfo(FAKE_JWT, 4102444800, scope="https://management.azure.com/.default", attempts=attempts)
    d = diagnose(tok)
    assert d.id == "imds-updating"
    assert FAKE_JWT not in str(d) and FAKE_JWT not in json.dumps(d.to_dict())


def test_stale_principal_assignment_needs_a_deleted_principal_at_the_scope() -> None:
    """A system identity switched off and on: the 403 names the new principal, the assignment the old one."""
    from mi_helpers.diagnosis import deleted_principal_ids

    new, old = "0a0a0a0a-1111-4222-8333-444455556666", SYS_PRINCIPAL
    scope = f"/subscriptions/{SUB}/resourceGroups/{RG}"
    exc = "(AuthorizationFailed) The client 'x' with object id 'x' does not have authorization to perform"
    stale = [{"principal_id": old, "scope": scope}]
    ctx = {"principal_id": new, "scope": f"{scope}/providers/Microsoft.Compute/virtualMachines/{VM}"}
    assert diagnose(exc, context={**ctx, "role_assignments": stale, "deleted_principal_ids": [old]}).id == (
        "stale-principal-assignment"
    )
    # not deleted, not at the scope, or the new principal has a role: something else
    assert diagnose(exc, context={**ctx, "role_assignments": stale, "deleted_principal_ids": []}).id == (
        "arm-authorization-failed"
    )
    elsewhere = [{"principal_id": old, "scope": f"/subscriptions/{SUB}/resourceGroups/other"}]
    assert diagnose(
        exc, context={**ctx, "role_assignments": elsewhere, "deleted_principal_ids": [old]}
    ).id == ("arm-authorization-failed")
    granted = [*stale, {"principal_id": new, "scope": scope}]
    assert diagnose(exc, context={**ctx, "role_assignments": granted, "deleted_principal_ids": [old]}).id == (
        "role-propagating"
    )
    world = {
        "service_principals": [],
        "user_assigned_identities": [],
        "virtual_machines": [{"system_identity": {"enabled": True, "principal_id": new}}],
        "role_assignments": [*stale, {"principal_id": new, "scope": scope}],
    }
    assert deleted_principal_ids(world) == (old,)


# ------------------------------------------------ the emulator's refusals, through the real clients


def test_mistyped_resource_is_an_unknown_resource_not_a_wrong_audience(emu: Any) -> None:
    """IMDS passes on Entra ID's 400 invalid_resource (AADSTS500011) for a resource no application has."""
    import mi_helpers as mi

    with pytest.raises(Exception) as info:
        mi.get_token("https://managements.azure.com/.default")
    assert "AADSTS500011" in str(info.value)
    d = diagnose(info.value)
    assert d.id == "token-unknown-resource"
    assert "mi.audiences()" in d.commands["az"]


def test_unsupported_api_version_names_the_supported_ones(emu: Any) -> None:
    """ARM's 400 NoRegisteredProviderFound, raised by the real azure-mgmt-compute client."""
    from azure.core.exceptions import HttpResponseError

    from mi_helpers.arm import compute_client

    with pytest.raises(HttpResponseError) as info:
        compute_client(SUB).virtual_machines.get(RG, VM, api_version="2015-01-01")
    assert info.value.error is not None and info.value.error.code == "NoRegisteredProviderFound"
    assert "The supported api-versions are" in str(info.value)
    assert diagnose(info.value).id == "arm-api-version-unsupported"


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("Contributor", "storage-data-role-missing"),  # a control-plane role is not a data role
        ("Storage Blob Data Reader", "data-role-propagating"),  # granted, not honoured yet
    ],
)
def test_a_data_403_is_propagating_only_when_a_data_role_was_granted(role: str, expected: str) -> None:
    account = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/st1"
    text = (
        "This request is not authorized to perform this operation using this permission.\n"
        "ErrorCode:AuthorizationPermissionMismatch"
    )
    ctx = {
        "principal_id": SYS_PRINCIPAL,
        "scope": account,
        "role_assignments": [
            {"principal_id": SYS_PRINCIPAL, "scope": account, "role": role},
            {
                "principal_id": SYS_PRINCIPAL,
                "scope": f"/subscriptions/{SUB}/resourceGroups/{RG}",
                "role": "Reader",
            },
        ],
    }
    assert diagnose(text, context=ctx).id == expected
