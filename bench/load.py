"""A small closed-loop HTTP load generator: C concurrent clients for D seconds (or N requests), loopback only.

Clients are threads spread over several processes (so the generator's GIL is not the bottleneck), each with
its own ``http.client`` connection, kept alive whenever the server allows it (the emulator does, as IMDS and
ARM do; a bare werkzeug server such as ``stub_server.py`` answers ``Connection: close``, so there every
request opens a new connection).
Latency is measured per request, connect (and TLS handshake) included when a new connection is needed.
"""

from __future__ import annotations

import http.client
import multiprocessing as mp
import ssl
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Job:
    url: str  # scheme://127.0.0.1:port/path?query
    headers: dict[str, str]
    threads: int
    duration: float
    max_requests: int  # per thread
    ca_file: str | None = None


_CTX: dict[str | None, ssl.SSLContext] = {}


def _connect(job: Job) -> http.client.HTTPConnection:
    parts = urlsplit(job.url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"loopback only, not {host!r}")
    if parts.scheme == "https":
        # One context per process: loading a CA bundle costs tens of ms, a handshake does not.
        ctx = _CTX.get(job.ca_file)
        if ctx is None:
            ctx = _CTX[job.ca_file] = ssl.create_default_context(cafile=job.ca_file)
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, context=ctx, timeout=10)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.connect()
    return conn


def _client(
    job: Job, start: float, out: list[tuple[float, int, bool]], conn: http.client.HTTPConnection | None
) -> None:
    parts = urlsplit(job.url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    end = start + job.duration
    while time.perf_counter() < end and len(out) < job.max_requests:
        t0 = time.perf_counter()
        status = 0
        fresh = conn is None
        try:
            if conn is None:
                conn = _connect(job)
            conn.request("GET", target, headers=job.headers)
            resp = conn.getresponse()
            resp.read()
            status = resp.status
            if resp.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException):
            status = -1
            if conn is not None:
                conn.close()
            conn = None
        out.append((time.perf_counter() - t0, status, fresh))
    if conn is not None:
        conn.close()


def _process(job: Job, start_at: float, queue: Any) -> None:
    results: list[list[tuple[float, int, bool]]] = [[] for _ in range(job.threads)]
    # Connections are opened before the clock starts (steady state); a server that closes them after
    # each answer makes every measured request open a new one, which is then part of its latency.
    conns: list[http.client.HTTPConnection | None] = []
    for _ in results:
        try:
            conns.append(_connect(job))
        except OSError:
            conns.append(None)
    # Processes share the wall clock: every client starts at the same instant.
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    start = time.perf_counter()
    threads = [
        threading.Thread(target=_client, args=(job, start, r, c)) for r, c in zip(results, conns, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.put((time.perf_counter() - start, [x for r in results for x in r]))


def _p99(values: list[float]) -> float | None:
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * 0.99))] * 1000 if v else None


def run_load(
    url: str,
    headers: dict[str, str],
    *,
    clients: int = 16,
    processes: int = 2,
    duration: float = 10.0,
    max_requests: int = 200_000,
    ca_file: str | None = None,
) -> dict[str, Any]:
    """Run the load and return rps, p50/p99 (ms), errors, requests and the status counts."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    per_proc = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    start_at = time.time() + 1.5
    procs = []
    for n in per_proc:
        job = Job(url, headers, n, duration, max(1, max_requests // clients), ca_file)
        p = ctx.Process(target=_process, args=(job, start_at, queue))
        p.start()
        procs.append(p)
    walls, samples = [], []
    for _ in procs:
        wall, got = queue.get(timeout=duration + 60)
        walls.append(wall)
        samples.extend(got)
    for p in procs:
        p.join(timeout=10)
    lat = sorted(s[0] for s in samples)
    errors = sum(1 for s in samples if s[1] != 200)
    statuses: dict[str, int] = {}
    for _, st, _fresh in samples:
        statuses[str(st)] = statuses.get(str(st), 0) + 1
    wall = max(walls) if walls else duration
    return {
        "rps": len(samples) / wall if wall else 0.0,
        "p50_ms": statistics.median(lat) * 1000 if lat else None,
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else None,
        "errors": errors,
        "requests": len(samples),
        "connections": sum(1 for s in samples if s[2]),
        "p99_reused_ms": _p99([s[0] for s in samples if not s[2]]),
        "max_ms": lat[-1] * 1000 if lat else None,
        "statuses": statuses,
        "seconds": wall,
    }
