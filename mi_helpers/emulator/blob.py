"""Blob storage over HTTPS, path-style: the reads ``BlobServiceClient``/``ContainerClient``/``BlobClient``
make with a managed identity, with Storage's checks and error texts.

The storage SDK addresses an endpoint on ``127.0.0.1``/``localhost`` path-style: the account is the first
path segment (``https://127.0.0.1:PORT/<account>/<container>/<blob>``), so one listener serves every
account of the world (``data_plane.storage_accounts``). Served (docs/protocol.md, "Blob storage"):
List Containers (``GET /<acct>/?comp=list``), Get Container Properties (``GET|HEAD
/<acct>/<c>?restype=container``), List Blobs (``…?restype=container&comp=list``, with ``prefix``,
``delimiter``, ``maxresults``, ``marker``) and Get Blob / Get Blob Properties (``GET|HEAD
/<acct>/<c>/<blob>``, ``x-ms-range``/``Range`` → 206).

Order of checks: the ``x-ms-version`` header (400 ``InvalidHeaderValue`` for one Storage does not know) →
the account → the bearer token (none → 401 ``NoAuthenticationInformation``; wrong audience, expired, not
ours → 401 ``InvalidAuthenticationInfo`` with an ``AuthenticationErrorDetail``; every 401 with the
``WWW-Authenticate`` challenge the SDK follows once) → a version too old for a bearer token (403
``AuthenticationFailed``) → the operation → RBAC (403 ``AuthorizationPermissionMismatch``: Owner or
Contributor alone may list containers, an *action*, but not read blobs, a *data action*) → the container
and blob (404 ``ContainerNotFound``/``BlobNotFound``). Writes are not emulated (405 ``UnsupportedHttpVerb``).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable
from email.utils import format_datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from werkzeug.wrappers import Request, Response

from mi_helpers.constants import Storage
from mi_helpers.emulator.backend import Backend
from mi_helpers.emulator.dataplane import Blob, Container, StorageAccount, blob_decision
from mi_helpers.emulator.dataplane_errors import BlobError, blob_framing_error, storage_challenge
from mi_helpers.emulator.endpoints import Endpoints
from mi_helpers.emulator.errors import WireError
from mi_helpers.emulator.layer import Layer
from mi_helpers.emulator.tokens import (
    TokenAudienceError,
    TokenError,
    TokenExpiredError,
    TokenNotYetValidError,
)

__all__ = ["BLOB_VERSIONS", "BlobLayer"]

#: ``x-ms-version`` values Blob storage knows (Learn, "Versioning for Azure Storage"; the newest are the
#: azure-storage-blob SDK's ``_SUPPORTED_API_VERSIONS``). Bearer tokens need 2017-11-09 or later.
BLOB_VERSIONS = (
    "2009-09-19", "2011-08-18", "2012-02-12", "2013-08-15", "2014-02-14", "2015-02-21", "2015-04-05",
    "2015-07-08", "2015-12-11", "2016-05-31", "2017-04-17", "2017-07-29", "2017-11-09", "2018-03-28",
    "2018-11-09", "2019-02-02", "2019-07-07", "2019-10-10", "2019-12-12", "2020-02-10", "2020-04-08",
    "2020-06-12", "2020-08-04", "2020-10-02", "2020-12-06", "2021-02-12", "2021-04-10", "2021-06-08",
    "2021-08-06", "2021-10-04", "2021-12-02", "2022-11-02", "2023-01-03", "2023-05-03", "2023-08-03",
    "2023-11-03", "2024-02-04", "2024-05-04", "2024-08-04", "2024-11-04", "2025-01-05", "2025-05-05",
    "2025-07-05", "2025-11-05", "2026-02-06", "2026-04-06", "2026-06-06", "2026-10-06",
)  # fmt: skip
_AUDIENCE_BASE = (Storage.RESOURCE, Storage.RESOURCE + "/", Storage.APP_ID)
_SERVER = "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0"
_AUTH_FAILED = (
    "Server failed to authenticate the request. Make sure the value of Authorization header is formed "
    "correctly including the signature."
)
_SEE_CHALLENGE = (
    "Server failed to authenticate the request. Please refer to the information in the www-authenticate "
    "header."
)
_OLD_VERSION = "Authentication scheme Bearer is not supported in this version."
_MISMATCH = "This request is not authorized to perform this operation using this permission."
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_MAX_RESULTS = 5000


def _http_date(ts: int) -> str:
    return format_datetime(_dt.datetime.fromtimestamp(ts, _dt.timezone.utc), usegmt=True)


class BlobLayer(Layer):
    """Answers requests on the Blob storage (HTTPS) listener."""

    name = "blob"
    body_limit = 1_000_000

    def __init__(self, backend: Backend, endpoints: Callable[[], Endpoints]) -> None:
        super().__init__(backend)
        self.endpoints = endpoints

    def framing_error(self, status: int, detail: str) -> WireError:
        return blob_framing_error(status, detail)

    def finish(self, request: Request, response: Response) -> Response:
        """Headers every Blob storage reply carries."""
        h = response.headers
        h["Server"] = _SERVER
        h.setdefault("x-ms-request-id", request.environ.get("mi.blob_request_id", "") or _request_id())
        version = request.headers.get("x-ms-version", "")
        if version in BLOB_VERSIONS:
            h["x-ms-version"] = version
        crid = request.headers.get("x-ms-client-request-id")
        if crid:
            h["x-ms-client-request-id"] = crid[:1024]
        h["Date"] = format_datetime(_dt.datetime.now(_dt.timezone.utc), usegmt=True)
        return response

    # ------------------------------------------------------------------ the request
    def respond(self, request: Request) -> Response:
        world = self.backend.world  # one world per request, even if a scenario switch replaces it
        version = request.headers.get("x-ms-version")
        if version is not None and version.strip() not in BLOB_VERSIONS:
            raise BlobError(
                400,
                "InvalidHeaderValue",
                "The value for one of the HTTP headers is not in the correct format.",
                {"HeaderName": "x-ms-version", "HeaderValue": version[:100]},
            )
        parts = request.path.split("/")[1:]
        account_name = parts[0] if parts else ""
        account = world.data_plane.account(account_name) if account_name else None
        if account is None:
            raise BlobError(
                400, "InvalidUri", "The requested URI does not represent any resource on the server."
            )
        claims = self._authenticate(request, account)
        request.environ["mi.identity"] = str(claims.get("oid", ""))
        if version is None:
            raise BlobError(
                403,
                "AuthenticationFailed",
                _AUTH_FAILED,
                {"AuthenticationErrorDetail": "Unversioned authenticated access is not allowed."},
            )
        if version.strip() < Storage.OAUTH_MIN_VERSION:
            raise BlobError(
                403,
                "AuthenticationFailed",
                _AUTH_FAILED,
                {"AuthenticationErrorDetail": _OLD_VERSION},
            )
        if request.method not in ("GET", "HEAD"):
            raise BlobError(405, "UnsupportedHttpVerb", "The resource doesn't support specified Http Verb.")
        container = parts[1] if len(parts) > 1 else ""
        blob = "/".join(parts[2:])
        oid = str(claims.get("oid", ""))
        if not container:
            return self._service(request, world, account, oid)
        if not blob:
            return self._container(request, world, account, oid, container)
        return self._blob(request, world, account, oid, container, blob)

    def _authenticate(self, request: Request, account: StorageAccount) -> dict[str, Any]:
        challenge = {"WWW-Authenticate": storage_challenge(self.backend.world.tenant.id)}
        header = request.headers.get("Authorization")
        if header is None:
            raise BlobError(401, "NoAuthenticationInformation", _SEE_CHALLENGE, headers=challenge)
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise BlobError(403, "AuthenticationFailed", _AUTH_FAILED)
        host = f"https://{account.name}{Storage.BLOB_DNS_SUFFIX}"
        audiences = (*_AUDIENCE_BASE, host, host + "/")

        def invalid(detail: str) -> BlobError:
            return BlobError(
                401,
                "InvalidAuthenticationInfo",
                _SEE_CHALLENGE,
                {"AuthenticationErrorDetail": detail},
                headers=challenge,
            )

        try:
            return self.backend.issuer.verify_for(token.strip(), self.backend.clock.time(), audiences)
        except TokenAudienceError:
            raise invalid("Audience validation failed. Audience did not match.") from None
        except TokenExpiredError:
            raise invalid("Lifetime validation failed. The token is expired.") from None
        except TokenNotYetValidError:
            raise invalid("Lifetime validation failed. The token is not yet valid.") from None
        except TokenError:
            raise invalid("Issuer validation failed. Issuer did not match.") from None

    @staticmethod
    def _authorize(
        world: Any, account: StorageAccount, oid: str, container: str | None, *, data: bool
    ) -> None:
        if blob_decision(world, account, oid, container, data=data) is not None:
            raise BlobError(403, "AuthorizationPermissionMismatch", _MISMATCH)

    @staticmethod
    def _endpoint(request: Request, account: StorageAccount) -> str:
        return f"https://{request.host}/{account.name}/"

    # ------------------------------------------------------------------ the service (list containers)
    def _service(self, request: Request, world: Any, account: StorageAccount, oid: str) -> Response:
        comp = request.args.get("comp")
        if comp != "list" or "restype" in request.args:
            raise _bad_query(
                "comp" if comp != "list" else "restype",
                request.args.get("comp", "") if comp != "list" else request.args.get("restype", ""),
            )
        self._authorize(world, account, oid, None, data=False)
        names = sorted(account.containers)
        page, marker = _page(request, names)
        body = "".join(
            f"<Container><Name>{escape(n)}</Name>{_container_properties(account.containers[n])}</Container>"
            for n in page
        )
        xml = (
            '<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint='
            f"{quoteattr(self._endpoint(request, account))}>{_echo(request)}<Containers>{body}</Containers>"
            f"{_marker(marker)}</EnumerationResults>"
        )
        return _xml(xml)

    # ------------------------------------------------------------------ a container
    def _container(
        self, request: Request, world: Any, account: StorageAccount, oid: str, name: str
    ) -> Response:
        if request.args.get("restype") != "container":
            # "/<acct>/<name>" without restype is a blob in the root container ($root), which is absent.
            self._authorize(world, account, oid, "$root", data=True)
            raise BlobError(404, "ContainerNotFound", "The specified container does not exist.")
        comp = request.args.get("comp")
        if comp not in (None, "list"):
            raise _bad_query("comp", comp or "")
        self._authorize(world, account, oid, name, data=comp == "list")
        found = _lookup(account.containers, name)
        if found is None:
            raise BlobError(404, "ContainerNotFound", "The specified container does not exist.")
        if comp is None:
            reply = Response(status=200)
            reply.headers.update(
                {
                    "Last-Modified": _http_date(found.created),
                    "ETag": f'"{found.etag}"',
                    "x-ms-lease-status": "unlocked",
                    "x-ms-lease-state": "available",
                    "x-ms-has-immutability-policy": "false",
                    "x-ms-has-legal-hold": "false",
                    "x-ms-default-encryption-scope": "$account-encryption-key",
                    "x-ms-deny-encryption-scope-override": "false",
                    "x-ms-immutable-storage-with-versioning-enabled": "false",
                }
            )
            return reply
        return self._list_blobs(request, account, found)

    def _list_blobs(self, request: Request, account: StorageAccount, container: Container) -> Response:
        prefix = request.args.get("prefix", "")
        delimiter = request.args.get("delimiter", "")
        entries: list[tuple[str, Blob | None]] = []
        seen_prefixes: set[str] = set()
        for name in sorted(container.blobs):
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :]
            if delimiter and delimiter in rest:
                sub = prefix + rest.split(delimiter, 1)[0] + delimiter
                if sub not in seen_prefixes:
                    seen_prefixes.add(sub)
                    entries.append((sub, None))
                continue
            entries.append((name, container.blobs[name]))
        page, marker = _page(request, [n for n, _ in entries])
        wanted = set(page)
        items = []
        for name, blob in entries:
            if name not in wanted:
                continue
            if blob is None:
                items.append(f"<BlobPrefix><Name>{escape(name)}</Name></BlobPrefix>")
            else:
                items.append(
                    f"<Blob><Name>{escape(name)}</Name>{_blob_properties(blob)}<OrMetadata /></Blob>"
                )
        xml = (
            '<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint='
            f"{quoteattr(self._endpoint(request, account))} ContainerName={quoteattr(container.name)}>"
            f"{_echo(request)}"
            + (f"<Delimiter>{escape(delimiter)}</Delimiter>" if delimiter else "")
            + f"<Blobs>{''.join(items)}</Blobs>{_marker(marker)}</EnumerationResults>"
        )
        return _xml(xml)

    # ------------------------------------------------------------------ a blob
    def _blob(
        self, request: Request, world: Any, account: StorageAccount, oid: str, container: str, name: str
    ) -> Response:
        if request.args.get("comp") or request.args.get("restype"):
            key = "comp" if request.args.get("comp") else "restype"
            raise _bad_query(key, request.args.get(key, ""))
        self._authorize(world, account, oid, container, data=True)
        found = _lookup(account.containers, container)
        if found is None:
            raise BlobError(404, "ContainerNotFound", "The specified container does not exist.")
        blob = found.blobs.get(name)
        if blob is None:
            raise BlobError(404, "BlobNotFound", "The specified blob does not exist.")
        size = len(blob.content)
        headers = {
            "Last-Modified": _http_date(blob.created),
            "ETag": f'"{blob.etag}"',
            "Accept-Ranges": "bytes",
            "x-ms-creation-time": _http_date(blob.created),
            "x-ms-lease-status": "unlocked",
            "x-ms-lease-state": "available",
            "x-ms-blob-type": "BlockBlob",
            "x-ms-server-encrypted": "true",
        }
        status, data = 200, blob.content
        wanted = request.headers.get("x-ms-range") or request.headers.get("Range")
        if wanted:
            m = _RANGE.match(wanted.strip())
            if m is None:
                raise BlobError(
                    400,
                    "InvalidHeaderValue",
                    "The value for one of the HTTP headers is not in the correct format.",
                    {"HeaderName": "x-ms-range", "HeaderValue": wanted[:100]},
                )
            start = int(m.group(1))
            end = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
            if start >= size or start > end:
                raise BlobError(
                    416,
                    "InvalidRange",
                    "The range specified is invalid for the current size of the resource.",
                    headers={"Content-Range": f"bytes */{size}"},
                )
            status, data = 206, blob.content[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            headers["x-ms-blob-content-md5"] = blob.md5
        else:
            headers["Content-MD5"] = blob.md5
        reply = Response(data, status=status, content_type=blob.content_type)
        reply.headers.update(headers)
        return reply


# ------------------------------------------------------------------------------------------- XML pieces
def _request_id() -> str:
    return BlobError(200, "", "").request_id


def _xml(text: str) -> Response:
    return Response(text, status=200, content_type="application/xml")


def _bad_query(name: str, value: str) -> BlobError:
    return BlobError(
        400,
        "InvalidQueryParameterValue",
        "Value for one of the query parameters specified in the request URI is invalid.",
        {"QueryParameterName": name, "QueryParameterValue": value[:100], "Reason": ""},
    )


def _lookup(containers: dict[str, Container], name: str) -> Container | None:
    return containers.get(name)  # container names are lower case; Storage compares them exactly


def _page(request: Request, names: list[str]) -> tuple[list[str], str]:
    """The page of ``names`` after ``marker`` (``maxresults`` of them) and the next marker ("" = last)."""
    text = request.args.get("maxresults")
    size = _MAX_RESULTS
    if text is not None:
        if not text.isdigit() or int(text) < 1:
            raise _bad_query("maxresults", text)
        size = min(int(text), _MAX_RESULTS)
    marker = request.args.get("marker", "")
    rest = [n for n in names if n > marker] if marker else names
    page = rest[:size]
    return page, (page[-1] if len(rest) > size else "")


def _echo(request: Request) -> str:
    """The request's ``prefix``/``marker``/``maxresults`` echoed, as the service does."""
    out = ""
    for key, tag in (("prefix", "Prefix"), ("marker", "Marker"), ("maxresults", "MaxResults")):
        value = request.args.get(key)
        if value:
            out += f"<{tag}>{escape(value)}</{tag}>"
    return out


def _marker(marker: str) -> str:
    return f"<NextMarker>{escape(marker)}</NextMarker>" if marker else "<NextMarker />"


def _container_properties(c: Container) -> str:
    return (
        f'<Properties><Last-Modified>{_http_date(c.created)}</Last-Modified><Etag>"{c.etag}"</Etag>'
        "<LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState>"
        "<DefaultEncryptionScope>$account-encryption-key</DefaultEncryptionScope>"
        "<DenyEncryptionScopeOverride>false</DenyEncryptionScopeOverride>"
        "<HasImmutabilityPolicy>false</HasImmutabilityPolicy><HasLegalHold>false</HasLegalHold>"
        "<ImmutableStorageWithVersioningEnabled>false</ImmutableStorageWithVersioningEnabled></Properties>"
    )


def _blob_properties(b: Blob) -> str:
    return (
        f"<Properties><Creation-Time>{_http_date(b.created)}</Creation-Time>"
        f"<Last-Modified>{_http_date(b.created)}</Last-Modified><Etag>{b.etag}</Etag>"
        f"<Content-Length>{len(b.content)}</Content-Length><Content-Type>{escape(b.content_type)}</Content-Type>"
        f"<Content-Encoding /><Content-Language /><Content-CRC64 /><Content-MD5>{b.md5}</Content-MD5>"
        "<Cache-Control /><Content-Disposition /><BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier>"
        "<AccessTierInferred>true</AccessTierInferred><LeaseStatus>unlocked</LeaseStatus>"
        "<LeaseState>available</LeaseState><ServerEncrypted>true</ServerEncrypted></Properties>"
    )
