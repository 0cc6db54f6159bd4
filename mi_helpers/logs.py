"""One way to quiet the Azure SDK's log lines while the helpers report a failure themselves.

azure-identity logs every failed token request as a WARNING ("ManagedIdentityCredential.get_token
failed: …"). Where nobody configured logging, Python's last-resort handler prints those on stderr, between
the helpers' own progress and diagnosis. :func:`quiet_sdk_logs` drops them for the duration of a block, for
the thread that runs it only, and only those that would reach the last-resort handler: logging a user
configured keeps every record, and nothing changes after the block.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["quiet_sdk_logs"]

#: Loggers whose WARNINGs (and below) the block drops: the Azure SDK and MSAL.
SDK_LOGGERS = ("azure", "msal")


class _DropSdkWarnings(logging.Filter):
    def __init__(self, thread: int) -> None:
        super().__init__()
        self.thread = thread

    def filter(self, record: logging.LogRecord) -> bool:
        from_sdk = any(record.name == n or record.name.startswith(f"{n}.") for n in SDK_LOGGERS)
        return not (from_sdk and record.thread == self.thread and record.levelno <= logging.WARNING)


@contextmanager
def quiet_sdk_logs() -> Iterator[None]:
    """Drop the SDK's WARNING lines that would print on stderr, in this thread, while the block runs."""
    last_resort = logging.lastResort
    if last_resort is None:  # the application switched the last resort off: nothing prints anyway
        yield
        return
    drop = _DropSdkWarnings(threading.get_ident())
    last_resort.addFilter(drop)
    try:
        yield
    finally:
        last_resort.removeFilter(drop)
