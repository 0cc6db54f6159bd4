"""Network guard: refuse and record every connection to a non-loopback address.

Installed in the pytest process by ``tests/conftest.py`` and in every Python child process (kernels,
``mi-helpers`` CLIs, JupyterLab) through ``tests/guard/sitecustomize.py`` on ``PYTHONPATH``. A refused
attempt raises ``OSError(ENETUNREACH)`` where it happens (so no packet leaves the machine) and is appended
to the file named by ``MI_HELPERS_GUARD_LOG``; the test fixture fails any test that added a line, even
when the code under test swallowed the error.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import traceback

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_installed = False


def is_loopback(host: object) -> bool:
    """True when ``host`` (an IP literal or host name) is a loopback address."""
    if not isinstance(host, str):
        return False
    name = host.strip("[]").lower()
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False


def _record(what: str) -> None:
    path = os.environ.get("MI_HELPERS_GUARD_LOG")
    line = f"pid {os.getpid()}: {what}\n"
    stack = "".join(traceback.format_stack(limit=12)[:-2])
    if path:
        try:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(line + stack.replace("\n", "\n    ") + "\n")
        except OSError:
            pass


def _blocked(what: str) -> OSError:
    _record(what)
    return OSError(errno.ENETUNREACH, f"network guard: non-loopback connection refused ({what})")


def _check_address(family: int, address: object, verb: str) -> None:
    if family not in (socket.AF_INET, socket.AF_INET6):
        return  # unix sockets and friends never leave the machine
    host = address[0] if isinstance(address, tuple) and address else address
    if not is_loopback(host):
        raise _blocked(f"{verb} {address!r}")


def install() -> None:
    """Patch the socket module of this process (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_sendto = socket.socket.sendto
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: object) -> None:
        _check_address(self.family, address, "connect")
        return real_connect(self, address)  # type: ignore[arg-type]

    def connect_ex(self: socket.socket, address: object) -> int:
        _check_address(self.family, address, "connect")
        return real_connect_ex(self, address)  # type: ignore[arg-type]

    def sendto(self: socket.socket, data: bytes, *args: object) -> int:
        address = args[-1]
        _check_address(self.family, address, "sendto")
        return real_sendto(self, data, *args)  # type: ignore[arg-type]

    def getaddrinfo(host: object, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        name = host.decode("ascii", "replace") if isinstance(host, bytes) else host
        if isinstance(name, str) and not is_loopback(name):
            try:
                ipaddress.ip_address(name.strip("[]").split("%")[0])  # literals are checked at connect()
            except ValueError:
                _record(f"getaddrinfo {name!r}")  # a name lookup would send DNS traffic
                message = f"network guard: lookup of {name!r} refused"
                raise socket.gaierror(socket.EAI_NONAME, message) from None
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.socket.sendto = sendto  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
