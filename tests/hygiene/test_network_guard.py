"""The network guard refuses and records non-loopback connections, in this process and in children."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

GUARD = Path(__file__).resolve().parents[1] / "guard"

CHILD = """
import socket, errno
s = socket.socket()
try:
    s.connect(("192.0.2.1", 80))   # TEST-NET-1: never routed; the guard must stop it before the kernel does
except OSError as e:
    print("refused", e.errno == errno.ENETUNREACH)
try:
    socket.getaddrinfo("management.azure.com", 443)
except socket.gaierror:
    print("lookup refused")
"""


def test_child_process_is_guarded_and_attempt_is_recorded(tmp_path: Path) -> None:
    log = tmp_path / "guard.log"
    env = dict(os.environ, MI_HELPERS_GUARD_LOG=str(log), PYTHONPATH=str(GUARD))
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=30)
    assert out.stdout.split("\n")[:2] == ["refused True", "lookup refused"]
    recorded = log.read_text()
    assert "192.0.2.1" in recorded and "management.azure.com" in recorded


def test_loopback_stays_allowed() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=2)
    client.close()
    server.close()
