"""``--param KEY=VALUE``: the one way every sub-command takes scenario parameters.

``mi-helpers doctor --scenario imds-updating --param t=5`` and ``mi-helpers emulator --param n=3`` read
the same option the same way. ``--set`` is kept as an alias (0.1's name on ``mi-helpers emulator``).
Values stay text: the scenario itself validates and converts them, with a one-line error naming the key.
"""

from __future__ import annotations

import argparse

from mi_helpers.validate import InputError

__all__ = ["add_param_option", "parse_params"]

FLAG = "--param"


def add_param_option(parser: argparse.ArgumentParser, what: str) -> None:
    """Add the repeatable ``--param KEY=VALUE`` option (alias ``--set``) to ``parser``."""
    parser.add_argument(
        FLAG,
        "--set",
        dest="params",
        metavar="KEY=VALUE",
        action="append",
        default=None,
        help=f"scenario parameter (repeatable), e.g. {FLAG} n=3; {what}",
    )


def parse_params(items: list[str] | None) -> dict[str, str] | None:
    """``["n=3", "t=1.5"]`` → ``{"n": "3", "t": "1.5"}``; None when the option was not given at all."""
    if items is None:
        return None
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(FLAG, f"{item!r} is not KEY=VALUE (e.g. n=3)", item)
        out[key.strip()] = value.strip()
    return out
