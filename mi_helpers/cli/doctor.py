"""``mi-helpers doctor``: run the managed-identity checklist from a terminal.

Exit codes: 0 when every check passed, 1 otherwise, 2 for bad usage (one line naming the field and what is
allowed, e.g. an unknown scenario lists the scenario names; a budget that is not a positive number).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from mi_helpers.validate import InputError, validate_seconds

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``doctor`` sub-command to the ``mi-helpers`` sub-parsers."""
    p = sub.add_parser(
        "doctor",
        help="check managed-identity sign-in and ARM access, with diagnoses and fixes",
        description="Run the managed-identity checklist (target, environment, IMDS, identity, token, ARM, "
        "principal, roles) within a time budget. Exit 0 when every check passes, 1 otherwise.",
    )
    p.add_argument("--scenario", metavar="NAME", help="run against the embedded emulator in this scenario")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--budget", metavar="SECONDS", default="15", help="total time allowed (default 15)")
    p.add_argument("--client-id", metavar="GUID", help="client ID of a user-assigned identity")
    p.add_argument("--vm-name", metavar="NAME", help="VM name (default: from instance metadata)")
    p.add_argument(
        "--resource-group", metavar="NAME", help="resource group (default: from instance metadata)"
    )
    p.add_argument("--subscription-id", metavar="GUID", help="subscription (default: from instance metadata)")
    p.add_argument(
        "--param",
        metavar="KEY=VALUE",
        action="append",
        default=None,
        help="scenario parameter (repeatable), e.g. --param n=1; only with --scenario",
    )
    p.add_argument("--progress", action="store_true", help="print each step to stderr")
    p.set_defaults(func=run)


def _budget(text: str) -> float:
    return validate_seconds(text, "--budget")


def _params(items: list[str] | None) -> dict[str, str] | None:
    if items is None:
        return None
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError("--param", f"{item!r} is not KEY=VALUE (e.g. n=1)", item)
        out[key.strip()] = value.strip()
    return out


def run(args: argparse.Namespace) -> int:
    """Handle ``mi-helpers doctor``; returns the exit code."""
    budget = _budget(args.budget)
    params = _params(args.param)
    if params is not None and not args.scenario:
        raise InputError("--param", "only meaningful together with --scenario", params)
    # The SDK logs every failed token request as a WARNING; the report already explains them.
    logging.getLogger("azure").addHandler(logging.NullHandler())
    from mi_helpers.checklist import doctor

    report = doctor(
        scenario=args.scenario,
        budget=budget,
        client_id=args.client_id,
        vm_name=args.vm_name,
        resource_group=args.resource_group,
        subscription_id=args.subscription_id,
        progress=args.progress,
        params=params,
    )
    print(report.to_json() if args.json else str(report))
    return 0 if report.ok else 1
