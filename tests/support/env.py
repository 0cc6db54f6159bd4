"""The environment of a child process (CLI, kernel, snippet) that must behave like a freshly set-up machine.

It inherits this process's environment (so the network guard's ``PYTHONPATH`` and log file reach it) without
any variable that points a client somewhere or picks another credential (``mi_helpers.constants``), with the
target forced to the emulator and loopback never proxied: the child starts its own emulator unless the
caller adds one's variables (``child_environ(**emu.environment())``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mi_helpers.constants import CLIENT_REDIRECT_VARIABLES, CREDENTIAL_CHOICE_VARIABLES, LOOPBACK_NO_PROXY

#: What a child process must not inherit.
DROPPED = frozenset((*CLIENT_REDIRECT_VARIABLES, *CREDENTIAL_CHOICE_VARIABLES))


def child_environ(*, venv_first: bool = False, **extra: str) -> dict[str, str]:
    """``os.environ`` minus :data:`DROPPED`, ``MI_HELPERS_TARGET=emulator``, NO_PROXY on loopback, ``extra``.

    ``venv_first`` puts this interpreter's directory first on ``PATH``, so ``python3``/``mi-helpers`` in the
    child are this installation.
    """
    env = {k: v for k, v in os.environ.items() if k not in DROPPED}
    env["MI_HELPERS_TARGET"] = "emulator"
    env["NO_PROXY"] = env["no_proxy"] = ",".join(LOOPBACK_NO_PROXY)
    if venv_first:
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra)
    return env
