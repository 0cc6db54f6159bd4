"""Benchmarks of mi-notebooks: failure timings, token latency, emulator throughput, import and tour cost.

``python bench/run.py [--quick] [--json]`` prints a table (figure, value, target, met/missed) or, with
``--json``, one JSON object. Each measurement that must not share state runs in its own child process
(``bench/probes.py``); the failure-path probes mostly wait on timeouts, so they run in the background
while the CPU-bound figures are taken, which keeps the whole run under 3 minutes on 2 cores.
Everything happens on 127.0.0.1. What each figure includes: ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # mi_helpers.constants and the tests' world IDs

from support.world import VM_RESOURCE_ID  # noqa: E402

from mi_helpers.constants import (  # noqa: E402 - after the path set-up above
    CLIENT_REDIRECT_VARIABLES,
    CREDENTIAL_CHOICE_VARIABLES,
    LOOPBACK_NO_PROXY,
    Arm,
    Imds,
)

PROBES = HERE / "probes.py"
PY = sys.executable
VM_PATH = f"{VM_RESOURCE_ID}?api-version=2024-07-01"
TOKEN_PATH = f"{Imds.TOKEN_PATH}?api-version={Imds.TOKEN_API_VERSION}&resource={Arm.URL}"
# Variables that would point a child at some other emulator, identity endpoint or proxy.
_POINTERS = frozenset((*CLIENT_REDIRECT_VARIABLES, *CREDENTIAL_CHOICE_VARIABLES))


@dataclass
class Settings:
    quick: bool
    outage: float
    sdk_cap: float
    load_seconds: float
    runs: int
    tour_only: tuple[str, ...] = field(default_factory=tuple)


# This sandbox sets PYTHONDONTWRITEBYTECODE=1, so mi_helpers (not pre-compiled like site-packages) would be
# compiled from source on every import; a normal install has .pyc files. Children write theirs here.
PYCACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mi-bench-pycache"
WARM_IMPORTS = (
    "import azure.identity, azure.mgmt.compute, azure.mgmt.resource, azure.mgmt.authorization, "
    "azure.mgmt.msi, jwt, requests, pandas, ipywidgets, ipykernel.kernelapp, nbclient, nbformat, werkzeug; "
    "import mi_helpers, mi_helpers.identity, mi_helpers.targeting, mi_helpers.clouds, mi_helpers.diagnosis, "
    "mi_helpers.checklist, mi_helpers.arm, mi_helpers.notebook.widgets, mi_helpers.notebook, "
    "mi_helpers.notebook.error_lab, "
    "mi_helpers.launch.tour, mi_helpers.cli, mi_helpers.emulator.server, mi_helpers.emulator.client"
)


def warm_cache() -> None:
    """Compile everything the probes and kernels import, once per change of the sources."""
    import hashlib

    sources = sorted((REPO / "mi_helpers").rglob("*.py"))
    stamp = hashlib.sha256(
        "".join(f"{p}:{p.stat().st_mtime_ns}" for p in sources).encode() + sys.version.encode()
    ).hexdigest()
    PYCACHE.mkdir(parents=True, exist_ok=True)
    marker = PYCACHE / "warm.stamp"
    if marker.exists() and marker.read_text() == stamp:
        return
    subprocess.run([PY, "-c", WARM_IMPORTS], env=base_env(), check=True, timeout=180)
    marker.write_text(stamp)


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _POINTERS}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env["MI_HELPERS_TARGET"] = "emulator"
    env["NO_PROXY"] = env["no_proxy"] = ",".join(LOOPBACK_NO_PROXY)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ children


class Child:
    """One probe in its own process; ``result()`` waits (up to ``cap`` s) and parses its JSON line."""

    def __init__(self, name: str, *args: str, cap: float = 120.0, env: dict[str, str] | None = None) -> None:
        self.name, self.args, self.cap = name, args, cap
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [PY, str(PROBES), name, *args],
            env=env or base_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def result(self) -> dict[str, Any]:
        left = max(0.1, self.cap - (time.monotonic() - self.started))
        try:
            out, err = self.proc.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.communicate()
            return {"capped": True, "seconds": self.cap}
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if not lines:
            return {"error": f"{self.name} exited {self.proc.returncode}: {err.strip()[-400:]}"}
        return dict(json.loads(lines[-1]))


def probe(name: str, *args: str, cap: float = 120.0, env: dict[str, str] | None = None) -> dict[str, Any]:
    return Child(name, *args, cap=cap, env=env).result()


@contextlib.contextmanager
def standalone_emulator(scenario: str = "healthy") -> Iterator[dict[str, str]]:
    """``mi-helpers emulator`` in its own process; yields the client environment from its env file."""
    with tempfile.TemporaryDirectory(prefix="mi-bench-") as tmp:
        env_file = Path(tmp) / "emulator.env"
        proc = subprocess.Popen(
            [PY, "-m", "mi_helpers.cli", "emulator", "--scenario", scenario, "--env-file", str(env_file)],
            env=base_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not env_file.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the emulator did not start")
                time.sleep(0.05)
            env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
            env["_PID"] = str(proc.pid)  # for CPU accounting; callers pop it before exporting env
            yield env
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@contextlib.contextmanager
def stub_server() -> Iterator[str]:
    """The static token stub (bench/stub_server.py) in its own process; yields its base URL."""
    proc = subprocess.Popen(
        [PY, str(HERE / "stub_server.py")], env=base_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError("the stub server did not start")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median_of(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def numbers(results: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in results if isinstance(r.get(key), (int, float))]


# ------------------------------------------------------------------------------------------------ benches


def start_background(s: Settings) -> dict[str, Child]:
    """The failure-path probes: they wait on timeouts and back-offs, so they overlap with the rest."""
    t = str(s.outage)
    return {
        "sdk_hang": Child("sdk-fail", "imds-hang", cap=s.sdk_cap),
        "sdk_refused": Child("sdk-fail", "imds-unreachable", cap=60),
        "sdk_recover_410": Child("sdk-recover-410", t, cap=s.outage + 90),
        "recover_410": Child("recover-410", t, cap=s.outage + 90),
        "recover_410_budget90": Child("recover-410", t, "90", cap=s.outage + 120),
        "signin_hang": Child("signin-fail", "imds-hang", cap=60),
    }


def bench_failures(out: dict[str, Any]) -> None:
    r = probe("diag", "imds-hang", cap=60)
    out["diag_hang_s"] = r.get("seconds")
    out["diag_hang_ids"] = r.get("diagnosis_ids")
    r = probe("diag", "imds-unreachable", cap=60)
    out["diag_refused_s"] = r.get("seconds")
    out["diag_refused_ids"] = r.get("diagnosis_ids")
    r = probe("signin-fail", "imds-unreachable", cap=60)
    out["signin_refused_s"] = r.get("seconds")
    out["signin_refused_diagnosis"] = r.get("diagnosis")


def collect_background(bg: dict[str, Child], s: Settings, out: dict[str, Any]) -> None:
    r = bg["sdk_hang"].result()
    out["sdk_hang_s"] = r.get("seconds")
    out["sdk_hang_capped"] = bool(r.get("capped"))
    out["sdk_hang_cap_s"] = s.sdk_cap
    r = bg["sdk_refused"].result()
    out["sdk_refused_s"] = r.get("seconds")
    out["sdk_refused_diagnosis"] = r.get("diagnosis")
    r = bg["signin_hang"].result()
    out["signin_hang_s"] = r.get("seconds")
    out["signin_hang_first_report_s"] = r.get("first_report_s")
    out["signin_hang_diagnosis"] = r.get("diagnosis")
    out["outage_410_s"] = s.outage
    r = bg["recover_410"].result()
    out["recover_410_s"] = r.get("seconds")
    out["recover_410_detail"] = {k: v for k, v in r.items() if k != "seconds"}
    r = bg["recover_410_budget90"].result()
    out["recover_410_budget90_s"] = r.get("seconds")
    out["recover_410_budget90_attempts"] = r.get("attempt_times")
    r = bg["sdk_recover_410"].result()
    out["sdk_recover_410_s"] = r.get("seconds")
    out["sdk_recover_410_capped"] = bool(r.get("capped"))


def bench_imports(s: Settings, out: dict[str, Any]) -> None:
    mine, sdk = [], []
    for _ in range(s.runs):  # interleaved, so drifting machine load hits both alike
        mine.append(probe("import", "helpers").get("seconds"))
        sdk.append(probe("import", "sdk").get("seconds"))
    out["import_s"] = median_of([x for x in mine if x is not None])
    out["sdk_import_s"] = median_of([x for x in sdk if x is not None])


def bench_tokens(s: Settings, out: dict[str, Any]) -> None:
    runs = 3
    with standalone_emulator() as emu_env, stub_server() as stub_url:
        emu_env.pop("_PID")
        helpers_env = base_env(**emu_env)
        sdk_emu_env = base_env(AZURE_POD_IDENTITY_AUTHORITY_HOST=emu_env["AZURE_POD_IDENTITY_AUTHORITY_HOST"])
        stub_env = base_env(AZURE_POD_IDENTITY_AUTHORITY_HOST=stub_url)
        cold: dict[str, list[float]] = {"helpers": [], "pre": [], "sdk_emu": [], "stub": []}
        for _ in range(runs):
            cold["helpers"] += numbers([probe("token-cold", "helpers", env=helpers_env)], "ms")
            cold["pre"] += numbers([probe("token-cold", "helpers-preimported", env=helpers_env)], "ms")
            cold["sdk_emu"] += numbers([probe("token-cold", "sdk", env=sdk_emu_env)], "ms")
            cold["stub"] += numbers([probe("token-cold", "sdk", env=stub_env)], "ms")
        out["token_cold_ms"] = median_of(cold["helpers"])
        out["token_cold_preimported_ms"] = median_of(cold["pre"])
        out["sdk_emulator_token_cold_ms"] = median_of(cold["sdk_emu"])
        out["stub_token_cold_ms"] = median_of(cold["stub"])
        r = probe("token-warm", env=helpers_env)
        out["token_warm_ms"] = r.get("warm_ms")
        out["token_cached_us"] = r.get("cached_us")
        out["token_cached_progress_us"] = r.get("cached_progress_us")
        r = probe("sdk-warm", env=sdk_emu_env)
        out["sdk_token_warm_ms"] = r.get("warm_ms")
        out["sdk_token_cached_us"] = r.get("cached_us")
        r = probe("sdk-warm", env=stub_env)
        out["stub_token_warm_ms"] = r.get("warm_ms")


def _fetch_token(imds_url: str) -> str:
    req = urllib.request.Request(imds_url + TOKEN_PATH, headers={"Metadata": "true"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as resp:
        return str(json.load(resp)["access_token"])


def bench_load(s: Settings, out: dict[str, Any]) -> None:
    sys.path.insert(0, str(HERE))
    from load import run_load

    with standalone_emulator() as env:
        pid = int(env.pop("_PID"))
        imds = env["AZURE_POD_IDENTITY_AUTHORITY_HOST"].rstrip("/")
        cpu0 = cpu_seconds(pid)
        r = run_load(imds + TOKEN_PATH, {"Metadata": "true"}, duration=s.load_seconds)
        cpu = cpu_seconds(pid) - cpu0
        # CPU the emulator spent per answered request: 1e6 / this = its ceiling in rps per core (GIL).
        out["emulator_cpu_us_per_req"] = cpu / r["requests"] * 1e6 if r["requests"] else None
        out["emulator_rps"], out["emulator_p50_ms"] = r["rps"], r["p50_ms"]
        out["emulator_p99_ms"], out["emulator_errors"] = r["p99_ms"], r["errors"]
        out["emulator_requests"], out["emulator_connections"] = r["requests"], r["connections"]
        token = _fetch_token(imds)
        cpu0 = cpu_seconds(pid)
        r = run_load(
            env["MI_HELPERS_ARM_URL"].rstrip("/") + VM_PATH,
            {"Authorization": f"Bearer {token}"},
            duration=s.load_seconds,
            ca_file=env["REQUESTS_CA_BUNDLE"],
        )
        cpu = cpu_seconds(pid) - cpu0
        out["arm_cpu_us_per_req"] = cpu / r["requests"] * 1e6 if r["requests"] else None
        out["arm_rps"], out["arm_p50_ms"] = r["rps"], r["p50_ms"]
        out["arm_p99_ms"], out["arm_errors"] = r["p99_ms"], r["errors"]
        out["arm_requests"], out["arm_connections"] = r["requests"], r["connections"]
    with stub_server() as stub_url:
        r = run_load(stub_url + TOKEN_PATH, {"Metadata": "true"}, duration=min(3.0, s.load_seconds))
        out["stub_rps"], out["stub_p99_ms"] = r["rps"], r["p99_ms"]
        out["stub_connections"] = r["connections"]  # werkzeug alone closes every connection


BASELINE_CELL = (
    "import azure.identity\nimport azure.mgmt.compute\nimport ipywidgets\nimport pandas\n\n"
    "import mi_helpers\n\nprint(mi_helpers.__name__)"
)


def _tour(notebooks: Path, output: Path, only: tuple[str, ...]) -> tuple[float, int, str]:
    cmd = [PY, "-m", "mi_helpers.cli", "tour", "--notebooks", str(notebooks), "--output", str(output)]
    for name in only:
        cmd += ["--only", name]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=base_env(), capture_output=True, text=True, timeout=170)
    return time.monotonic() - t0, proc.returncode, proc.stdout[-2000:]


def bench_tour(s: Settings, out: dict[str, Any]) -> None:
    import nbformat

    src = REPO / "notebooks"
    chosen = [
        p for p in sorted(src.glob("[0-9][0-9]-*.ipynb")) if not s.tour_only or p.stem[:2] in s.tour_only
    ]
    with tempfile.TemporaryDirectory(prefix="mi-bench-tour-") as tmp:
        base_dir = Path(tmp) / "baseline"
        base_dir.mkdir()
        for p in chosen:
            nb = nbformat.v4.new_notebook()
            nb.cells = [nbformat.v4.new_code_cell(BASELINE_CELL)]
            nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
            nbformat.write(nb, base_dir / p.name)
        secs, rc, table = _tour(src, Path(tmp) / "out", s.tour_only)
        out["tour_s"], out["tour_ok"], out["tour_notebooks"] = secs, rc == 0, len(chosen)
        if rc != 0:
            out["tour_table"] = table
        secs, rc, _ = _tour(base_dir, Path(tmp) / "out-baseline", ())
        out["tour_baseline_s"], out["tour_baseline_ok"] = secs, rc == 0


# ------------------------------------------------------------------------------------------------ targets


def _ratio(a: Any, b: Any) -> float | None:
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def targets(r: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(figure, target text, met?) — None when the figure is missing."""

    def le(key: str, limit: float | None) -> bool | None:
        v = r.get(key)
        if not isinstance(v, (int, float)) or limit is None:
            return None
        return v <= limit

    out = r.get("outage_410_s") or 0
    stub = r.get("stub_token_cold_ms")
    sdk_imp = r.get("sdk_import_s")
    base = r.get("tour_baseline_s")
    rps_ok = None
    if isinstance(r.get("emulator_rps"), (int, float)):
        rps_ok = r["emulator_rps"] >= 1000 and r.get("emulator_errors") == 0 and le("emulator_p99_ms", 50)
    rec = r.get("recover_410_s")
    return [
        ("diag_hang_s", "≤ 3 s", le("diag_hang_s", 3)),
        ("diag_refused_s", "≤ 0.5 s", le("diag_refused_s", 0.5)),
        (
            "recover_410_s",
            f"≤ outage + 3 = {out + 3:g} s",
            False if rec is None else le("recover_410_s", out + 3),
        ),
        ("token_cold_ms", "≤ 1.2 × stub_token_cold_ms", le("token_cold_ms", 1.2 * stub if stub else None)),
        ("emulator_rps", "≥ 1000 rps, 0 errors, p99 ≤ 50 ms", rps_ok),
        ("import_s", "≤ 1.3 × sdk_import_s", le("import_s", 1.3 * sdk_imp if sdk_imp else None)),
        ("tour_s", "≤ 2 × tour_baseline_s", le("tour_s", 2 * base if base else None)),
    ]


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v)[:90]
    return str(v)


def table(r: dict[str, Any]) -> str:
    marks = {k: (t, ok) for k, t, ok in targets(r)}
    lines = [f"{'figure':<34} {'value':>12}  target"]
    lines.append("-" * 90)
    for key, value in r.items():
        if key in ("targets",):
            continue
        t, ok = marks.get(key, ("", None))
        mark = "" if not t else ("met" if ok else ("missed" if ok is False else "n/a"))
        lines.append(f"{key:<34} {_fmt(value):>12}  {t}{'  ' + mark if mark else ''}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short outage/caps/load, two notebooks in the tour")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ap.add_argument(
        "--outage", type=float, default=None, help="410 outage T in seconds (default 10; quick 4)"
    )
    args = ap.parse_args(argv)
    if args.quick:
        s = Settings(True, args.outage or 4.0, 15.0, 3.0, 3, ("00", "01"))
    else:
        s = Settings(False, args.outage or 10.0, 60.0, 10.0, 5)
    t0 = time.monotonic()
    r: dict[str, Any] = {"quick": s.quick, "cores": os.cpu_count()}
    if s.quick:
        r["quick_note"] = (
            f"quick mode: raw SDK hang capped at {s.sdk_cap:g} s, outage {s.outage:g} s, load "
            f"{s.load_seconds:g} s, tour of notebooks {', '.join(s.tour_only)} only"
        )
    with contextlib.suppress(OSError):
        r["load_avg_start"] = round(os.getloadavg()[0], 2)
    log("warming the bytecode cache")
    warm_cache()
    log("failure probes in the background")
    bg = start_background(s)
    try:
        log("diagnosis timings")
        bench_failures(r)
        log("imports")
        bench_imports(s, r)
        log("token latency")
        bench_tokens(s, r)
        log("load")
        bench_load(s, r)
        log("waiting for background probes")
        collect_background(bg, s, r)
        log("tour")
        bench_tour(s, r)
    finally:
        for child in bg.values():
            if child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.proc.pid, signal.SIGKILL)
    r["token_cold_vs_stub"] = _ratio(r.get("token_cold_ms"), r.get("stub_token_cold_ms"))
    r["import_vs_sdk"] = _ratio(r.get("import_s"), r.get("sdk_import_s"))
    r["tour_vs_baseline"] = _ratio(r.get("tour_s"), r.get("tour_baseline_s"))
    with contextlib.suppress(OSError):
        r["load_avg_end"] = round(os.getloadavg()[0], 2)
    r["bench_seconds"] = time.monotonic() - t0
    r["targets"] = {k: {"target": t, "met": ok} for k, t, ok in targets(r)}
    if args.json:
        print(json.dumps(r, indent=1))
    else:
        print(table(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
