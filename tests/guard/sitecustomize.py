"""Loaded by every Python child process the tests start (PYTHONPATH): installs the network guard."""

import os
import sys

if os.environ.get("MI_HELPERS_GUARD_LOG"):
    sys.path.insert(0, os.path.dirname(__file__))
    try:
        import netguard

        netguard.install()
    finally:
        sys.path.pop(0)
