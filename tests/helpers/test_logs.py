"""quiet_sdk_logs: the SDK's WARNINGs vanish from stderr inside the block, in its thread, and only there.

Run in a child process: pytest's own logging capture installs handlers, so the last-resort handler the
context manager works on is never reached in this process.
"""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import logging, threading
from mi_helpers.logs import quiet_sdk_logs

sdk = logging.getLogger("azure.identity._internal.decorators")
with quiet_sdk_logs():
    sdk.warning("inside: dropped")
    logging.getLogger("msal.application").warning("inside: msal dropped")
    logging.getLogger("myapp").warning("inside: not the SDK")
    sdk.error("inside: an error still shows")
    other = threading.Thread(target=lambda: sdk.warning("inside, other thread: shown"))
    other.start(); other.join()
sdk.warning("after: shown")
"""


def _stderr(code: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stderr.splitlines()


def test_only_the_sdk_warnings_of_this_thread_inside_the_block_are_dropped() -> None:
    assert _stderr(CHILD) == [
        "inside: not the SDK",
        "inside: an error still shows",
        "inside, other thread: shown",
        "after: shown",
    ]


def test_logging_someone_configured_keeps_every_record() -> None:
    lines = _stderr("import logging\nlogging.basicConfig(format='%(message)s')\n" + CHILD)
    assert "inside: dropped" in lines and "inside: msal dropped" in lines
