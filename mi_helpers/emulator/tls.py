"""Per-user key material: the local CA, the ARM server certificate, the CA bundle and the JWT signing key.

Generated once per user and cached in ``$MI_HELPERS_STATE_DIR`` or ``~/.cache/mi-helpers/emulator/`` (mode
0700, never inside the repository), so every emulator run reuses the same CA and a learner who trusted it
once keeps trusting it. The CA bundle is certifi's roots plus our CA: pointing ``REQUESTS_CA_BUNDLE`` at it
keeps pip and every other HTTPS client working while the SDK trusts the emulated ARM.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import certifi
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.validate import InputError

__all__ = [
    "SigningMaterial",
    "TlsMaterial",
    "ensure_signing_key",
    "ensure_tls",
    "server_ssl_context",
    "state_dir",
]

SERVER_NAMES = ("127.0.0.1", "localhost", "::1")


def state_dir() -> Path:
    """The private state directory (created with mode 0700); refuses a path inside the source tree."""
    env = os.environ.get(Env.MI_HELPERS_STATE_DIR)
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "mi-helpers" / "emulator"
    base = base.resolve()
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").exists() and (base == repo or repo in base.parents):
        raise InputError(
            Env.MI_HELPERS_STATE_DIR,
            f"{str(base)!r} is inside the repository (keys must never be committed)",
            base,
        )
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        base.chmod(0o700)
    return base


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise generation between processes (two emulators starting at once must agree on one CA)."""
    try:
        import fcntl
    except ImportError:  # Windows: generation races are harmless there (one user, one process at a time)
        yield
        return
    with open(directory / ".lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class TlsMaterial:
    """Paths of the CA certificate, the server certificate chain and key, and the CA bundle."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    ca_bundle: Path


def _cert_ok(pem: bytes, names: tuple[str, ...]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return False
    now = _dt.datetime.now(_dt.timezone.utc)
    if cert.not_valid_after_utc < now + _dt.timedelta(days=1):
        return False
    if not names:
        return True
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    present = {str(n.value) for n in san}
    return all(n in present for n in names)


def ensure_tls(directory: Path | None = None) -> TlsMaterial:
    """Create (once) or reuse the CA, the server certificate for 127.0.0.1/localhost and the CA bundle."""
    d = directory or state_dir()
    m = TlsMaterial(d / "ca.pem", d / "server.pem", d / "server.key", d / "ca-bundle.pem")
    with _locked(d):
        ca: trustme.CA | None = None
        ca_key = d / "ca.key"
        if m.ca_cert.exists() and ca_key.exists():
            try:
                ca = trustme.CA.from_pem(m.ca_cert.read_bytes(), ca_key.read_bytes())
                if not _cert_ok(m.ca_cert.read_bytes(), ()):
                    ca = None
            except ValueError:
                ca = None
        new_ca = ca is None
        if ca is None:
            ca = trustme.CA(organization_name="mi-notebooks", organization_unit_name="local Azure emulator")
            _write_atomic(ca_key, ca.private_key_pem.bytes())
            _write_atomic(m.ca_cert, ca.cert_pem.bytes(), 0o644)
        if (
            new_ca
            or not m.server_cert.exists()
            or not m.server_key.exists()
            or not _cert_ok(m.server_cert.read_bytes(), SERVER_NAMES)
        ):
            leaf = ca.issue_cert(*SERVER_NAMES)
            _write_atomic(m.server_key, leaf.private_key_pem.bytes())
            _write_atomic(m.server_cert, b"".join(b.bytes() for b in leaf.cert_chain_pems), 0o644)
        roots = Path(certifi.where()).read_bytes()
        bundle = roots.rstrip(b"\n") + b"\n" + m.ca_cert.read_bytes()
        if not m.ca_bundle.exists() or m.ca_bundle.read_bytes() != bundle:
            _write_atomic(m.ca_bundle, bundle, 0o644)
    return m


def server_ssl_context(m: TlsMaterial) -> ssl.SSLContext:
    """Server-side TLS context; the handshake is deferred to the request thread (see ``_LazyHandshake``)."""
    ctx = _LazyHandshakeContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with _locked(m.server_cert.parent):  # never read a key and a certificate from two generations
        ctx.load_cert_chain(str(m.server_cert), str(m.server_key))
    return ctx


class _LazyHandshakeContext(ssl.SSLContext):
    """An SSLContext whose sockets do not handshake in ``accept()``.

    werkzeug wraps the *listening* socket; with the default ``do_handshake_on_connect=True`` a client that
    connects and never speaks TLS would block the accept loop and with it every other ARM client. Deferring
    the handshake moves it into the per-connection thread, where the handler's timeout bounds it.
    """

    def wrap_socket(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["do_handshake_on_connect"] = False
        return super().wrap_socket(*args, **kwargs)


@dataclass(frozen=True)
class SigningMaterial:
    """The RSA key that signs emulated tokens, its self-signed certificate (for ``x5c``) and thumbprint."""

    private_key: rsa.RSAPrivateKey
    cert_der: bytes
    thumbprint: str  # base64url SHA-1 of the certificate: JWT header "kid" and "x5t"


def ensure_signing_key(directory: Path | None = None) -> SigningMaterial:
    """Create (once) or reuse the RSA 2048 token-signing key and certificate."""
    import base64

    d = directory or state_dir()
    key_path, cert_path = d / "jwt-signing.key", d / "jwt-signing.pem"
    with _locked(d):
        key: rsa.RSAPrivateKey | None = None
        cert: x509.Certificate | None = None
        if key_path.exists() and cert_path.exists():
            try:
                loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
                cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
                if isinstance(loaded, rsa.RSAPrivateKey):
                    key = loaded
            except ValueError:
                key = None
        if key is None or cert is None:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mi-notebooks emulator token signing")])
            now = _dt.datetime.now(_dt.timezone.utc)
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - _dt.timedelta(days=1))
                .not_valid_after(now + _dt.timedelta(days=3650))
                .sign(key, hashes.SHA256())
            )
            _write_atomic(
                key_path,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
            _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    der = cert.public_bytes(serialization.Encoding.DER)
    thumb = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()  # noqa: S324 (x5t is SHA-1)
    return SigningMaterial(key, der, thumb)
