"""``mi-helpers record`` and ``mi-helpers compare``: transcripts of real Azure, and the emulator against them.

``record`` runs the tutorial's read-only calls on the Azure VM it runs on (a token for ARM, the instance
metadata, the VM, the identity's role assignments, and the lessons' failing requests) and writes a
sanitized JSON transcript (:mod:`mi_helpers.transcript`: no token, IDs and names replaced). Off Azure it
refuses in one line; ``--against-emulator`` records a private local emulator instead (how the tests and a
curious reader see the format). ``compare TRANSCRIPT`` replays the same calls against a fresh emulator and
prints, key by key, where the emulator differs. How a workshop facilitator records and contributes one:
docs/contributing-transcripts.md.

Exit codes: 0 done (``compare``: no difference), 1 a difference or a failed recording, 2 bad usage or not
on Azure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mi_helpers.validate import InputError

__all__ = ["register"]

DEFAULT_OUTPUT = "mi-helpers-transcript.json"


def register(sub: Any) -> None:
    """Add the ``record`` and ``compare`` sub-commands to the ``mi-helpers`` sub-parsers."""
    rec = sub.add_parser(
        "record",
        help="record the tutorial's IMDS and ARM replies on this Azure VM (sanitized JSON)",
        description="Run the tutorial's read-only calls on this Azure VM and write a sanitized transcript "
        "(no token; IDs, names, keys and addresses replaced). Compare it with the emulator: "
        "mi-helpers compare FILE.",
    )
    rec.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        default=DEFAULT_OUTPUT,
        help=f"default {DEFAULT_OUTPUT}; - for stdout",
    )
    rec.add_argument(
        "--against-emulator",
        action="store_true",
        help="record a private local emulator instead of this VM (to see the format, or for tests)",
    )
    rec.set_defaults(func=run_record)
    cmp = sub.add_parser(
        "compare",
        help="compare a transcript with the local emulator, key by key",
        description="Replay a transcript's requests against a fresh local emulator and list every key "
        "where the emulator's answer differs. Exit 0 when there is none.",
    )
    cmp.add_argument("transcript", metavar="TRANSCRIPT", help="a file written by mi-helpers record")
    cmp.add_argument(
        "--scenario", metavar="NAME", default="healthy", help="emulator scenario (default healthy)"
    )
    cmp.set_defaults(func=run_compare)


def _record_emulator(scenario: str = "healthy") -> dict[str, Any]:
    from mi_helpers.constants import Arm
    from mi_helpers.emulator import Emulator
    from mi_helpers.transcript import record, sanitize

    with Emulator(scenario=scenario) as emu:
        raw = record(emu.imds_url, emu.arm_url, Arm.RESOURCE, ca_bundle=emu.ca_bundle)
    return {**sanitize(raw), "target": "emulator"}


def _record_azure() -> dict[str, Any]:
    import requests

    from mi_helpers.clouds import cloud_info
    from mi_helpers.constants import Imds
    from mi_helpers.transcript import record, sanitize

    with requests.Session() as session:
        session.trust_env = False
        r = session.get(
            f"{Imds.URL}{Imds.INSTANCE_PATH}/compute/azEnvironment",
            params={"api-version": Imds.INSTANCE_API_VERSION, "format": "text"},
            headers={"Metadata": "true"},
            timeout=5,
        )
    cloud = cloud_info(r.text.strip() or "AzurePublicCloud")
    raw = record(Imds.URL, cloud.arm_url, cloud.arm_scope.removesuffix(".default"))
    return {**sanitize(raw), "target": "azure", "cloud": cloud.name}


def run_record(args: argparse.Namespace) -> int:
    """Handle ``mi-helpers record``; returns the exit code."""
    if not args.against_emulator:
        from mi_helpers.targeting import detect

        found = detect()
        if not found.is_azure:
            reason = found.reason.split(" — ")[0]
            print(
                f"mi-helpers record: {reason}: run it on the Azure VM whose identity you want to record "
                "(or add --against-emulator to record the local emulator)",
                file=sys.stderr,
            )
            return 2
    import requests

    try:
        transcript = _record_emulator() if args.against_emulator else _record_azure()
    except requests.RequestException as exc:
        print(f"mi-helpers record: a request failed: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
        return 1
    text = json.dumps(transcript, indent=1) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError("--output", f"cannot write {str(out)!r}: {exc.strerror}", args.output) from exc
    print(
        f"wrote {len(transcript['exchanges'])} exchanges to {out} (sanitized: no token, IDs and names "
        f"replaced); compare it with the emulator: mi-helpers compare {out}"
    )
    return 0


def run_compare(args: argparse.Namespace) -> int:
    """Handle ``mi-helpers compare``; returns the exit code."""
    from mi_helpers.emulator.scenarios import get_scenario
    from mi_helpers.transcript import compare, load

    reference = load(args.transcript)
    get_scenario(args.scenario)  # an unknown name is an InputError listing the known ones
    diffs = compare(reference, _record_emulator(args.scenario))
    for diff in diffs:
        print(diff)
    names = len(reference["exchanges"])
    if not diffs:
        print(
            f"no difference: the emulator ({args.scenario}) answers the {names} exchanges as the transcript"
        )
        return 0
    print(f"{len(diffs)} difference(s) in {names} exchanges (emulator scenario {args.scenario})")
    return 1
