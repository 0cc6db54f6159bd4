"""The real Azure CLI against an emulator, for tests: its own virtual environment, private config dirs.

``ensure_az()`` installs the CLI with ``scripts/ensure-azure-cli`` when it is missing (``.venv-az``).
An :class:`AzSession` is one private CLI configuration (``mi_helpers.launch.azure_cli``) for one emulator,
with its own ``HOME``: nothing reads or writes the user's ``~/.azure``. ``run`` executes a shell line (the
command as printed, so quoting and pipes behave as in a learner's terminal) and returns the outcome with
the emulator's request log of that run. The suite's network guard reaches the CLI's Python through
``PYTHONPATH`` and ``MI_HELPERS_GUARD_LOG``, which the CLI environment keeps.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mi_helpers.launch.azure_cli import cli_environment, prepare_config_dir

ROOT = Path(__file__).resolve().parents[2]
AZ_VENV = ROOT / ".venv-az"
ENSURE_SCRIPT = ROOT / "scripts" / "ensure-azure-cli"
GUARD_DIR = str(ROOT / "tests" / "guard")

#: Seconds one az command may take here (start-up ≈1 s, a few requests; a loaded 2-core machine).
COMMAND_TIMEOUT = 90.0


def ensure_az(venv: Path = AZ_VENV) -> Path:
    """The ``az`` of ``venv``, installed first by ``scripts/ensure-azure-cli`` when missing."""
    az = venv / "bin" / "az"
    proc = subprocess.run(
        ["bash", str(ENSURE_SCRIPT), str(venv)], capture_output=True, text=True, timeout=900, check=False
    )
    if proc.returncode != 0 or not az.exists():
        raise RuntimeError(f"scripts/ensure-azure-cli failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return az


@dataclass
class AzResult:
    """What one run printed and which requests reached the emulator meanwhile."""

    command: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    requests: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        """A few lines for an assertion message (never a token: the CLI masks them, the log redacts)."""
        reqs = "\n".join(
            f"    {r['method']} {r['path']}?{r['query'][:80]} -> {r['status']}" for r in self.requests
        )
        return (
            f"$ {self.command}\nexit {self.returncode} after {self.seconds:.1f} s\n"
            f"stdout: {self.stdout[-1500:]}\nstderr: {self.stderr[-1500:]}\nrequests:\n{reqs}"
        )


class AzSession:
    """One private CLI configuration for ``emulator`` (an ``Emulator``), and a way to run commands in it."""

    def __init__(self, az: Path, emulator: Any, root: Path, *, prepare: bool = True) -> None:
        self.az = az
        self.emulator = emulator
        self.root = root
        self.config_dir = root / "azure"
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        if prepare:
            prepare_config_dir(self.config_dir, emulator.environment(), az=az)

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The CLI's environment now (the emulator's variables follow its current scenario)."""
        env = cli_environment(self.emulator.environment(), self.config_dir, az=self.az)
        env["HOME"] = str(self.home)
        env.update(extra or {})
        if GUARD_DIR not in env.get("PYTHONPATH", "").split(os.pathsep) or not env.get(
            "MI_HELPERS_GUARD_LOG"
        ):
            raise RuntimeError(
                "refusing to run az without the network guard (PYTHONPATH, MI_HELPERS_GUARD_LOG)"
            )
        return env

    def run(
        self, script: str, *, timeout: float = COMMAND_TIMEOUT, extra_env: dict[str, str] | None = None
    ) -> AzResult:
        """Run ``script`` with bash (as a terminal: no ``pipefail``); the request log covers this run only."""
        self.emulator.clear_log()
        started = time.monotonic()
        proc = subprocess.run(
            ["bash", "-c", script],
            env=self.environment(extra_env),
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        seconds = time.monotonic() - started
        log = self.emulator.request_log()
        return AzResult(script, proc.returncode, proc.stdout, proc.stderr, seconds, log)

    def clone(self, root: Path) -> AzSession:
        """A copy of this session (its sign-in included) that can change without touching this one."""
        copy = AzSession(self.az, self.emulator, root, prepare=False)
        shutil.copytree(self.config_dir, copy.config_dir)
        return copy


def new_session(az: Path, emulator: Any, parent: Path | None = None) -> AzSession:
    """A fresh session in a new temporary folder (under ``parent`` when given)."""
    return AzSession(az, emulator, Path(tempfile.mkdtemp(prefix="az-", dir=parent)))


_DEBUG_LINE = re.compile(r"^(?:DEBUG|INFO): [\w.]+: (?P<msg>.*)$")


def debug_requests(stderr: str) -> list[dict[str, Any]]:
    """``[{method, url, body}]`` of the requests an ``az … --debug`` run logged (SDK and raw requests).

    Reads the lines of azure/cli/core/sdk/policies.py (SafeNetworkTraceLoggingPolicy) and
    azure/cli/core/util.py (_log_request): ``Request URL: '…'``, ``Request method: '…'``, ``Request body:``
    then the body on the next line (the CLI masks secrets in it). ``body`` is parsed JSON, or None.
    """
    messages = [m.group("msg") for line in stderr.splitlines() if (m := _DEBUG_LINE.match(line))]
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        if msg.startswith("Request URL: "):
            out.append({"url": msg.split(": ", 1)[1].strip("'\""), "method": None, "body": None})
        elif msg.startswith("Request method: ") and out:
            out[-1]["method"] = msg.split(": ", 1)[1].strip("'\"")
        elif msg.startswith("Request body:") and out and i + 1 < len(messages):
            text = messages[i + 1].strip()
            try:
                out[-1]["body"] = json.loads(text)
            except ValueError:
                out[-1]["body"] = None
    return out


def with_guard_log(log: Path) -> dict[str, str]:
    """Extra variables that send the network guard's records of a run to ``log`` instead of the suite's.

    For a deliberate probe: a refused attempt there must not fail the test that provoked it.
    """
    log.touch()
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != GUARD_DIR]
    return {"MI_HELPERS_GUARD_LOG": str(log), "PYTHONPATH": os.pathsep.join([GUARD_DIR, *rest])}
