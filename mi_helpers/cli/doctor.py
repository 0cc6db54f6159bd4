"""``mi-helpers doctor``: run the managed-identity checklist from a terminal.

Exit codes: 0 when every check passed, 1 otherwise, 2 for bad usage (one line naming the field and what is
allowed, e.g. an unknown scenario lists the scenario names; a budget that is not a positive number).
"""

from __future__ import annotations

import argparse
from typing import Any

from mi_helpers.cli.params import FLAG, add_param_option, parse_params
from mi_helpers.validate import InputError, validate_seconds

__all__ = ["register", "run_doctor"]


def register(subparsers: Any) -> None:
    """Add ``doctor`` to the ``mi-helpers`` sub-commands."""
    p = subparsers.add_parser(
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
    add_param_option(p, "only with --scenario")
    p.add_argument("--progress", action="store_true", help="print each step to stderr")
    p.add_argument(
        "--data-url",
        metavar="URL",
        help="also check that the identity can read this Key Vault secret URL or blob URL",
    )
    p.set_defaults(func=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    """Handle ``mi-helpers doctor``; returns the exit code."""
    from mi_helpers.checklist import doctor
    from mi_helpers.logs import quiet_sdk_logs

    budget = validate_seconds(args.budget, "--budget")
    params = parse_params(args.params)
    if params is not None and not args.scenario:
        raise InputError(FLAG, "only meaningful together with --scenario", params)
    with quiet_sdk_logs():  # the SDK logs every failed token request; the report explains them
        report = doctor(
            scenario=args.scenario,
            budget=budget,
            client_id=args.client_id,
            vm_name=args.vm_name,
            resource_group=args.resource_group,
            subscription_id=args.subscription_id,
            progress=args.progress,
            params=params,
            data_url=args.data_url,
        )
    print(report.to_json() if args.json else str(report))
    return 0 if report.ok else 1
