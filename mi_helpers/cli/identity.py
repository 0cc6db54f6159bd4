"""``mi-helpers token`` and ``mi-helpers whoami``: sign in from a terminal and see who you are.

``token`` prints the redacted token and its claims (never the whole token); ``whoami`` puts the principal
ID from the token next to the one ARM reports for the VM. Exit codes: 0 success, 1 failure (one-line
error, then the diagnosis), 2 bad usage (one line naming the field).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from mi_helpers.logs import quiet_sdk_logs
from mi_helpers.redaction import redact

if TYPE_CHECKING:
    from mi_helpers.token_info import TokenInfo

__all__ = ["register", "run_token", "run_whoami"]


def _add_identity_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--client-id", metavar="GUID", help="client ID of a user-assigned identity")
    group.add_argument(
        "--object-id", metavar="GUID", help="principal (object) ID of a user-assigned identity"
    )
    group.add_argument("--resource-id", metavar="ID", help="ARM resource ID of a user-assigned identity")
    p.add_argument("--budget", metavar="SECONDS", type=float, default=20.0, help="time allowed (default 20)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress bar while waiting")


def register(subparsers: Any) -> None:
    """Add ``token`` and ``whoami`` to the ``mi-helpers`` sub-commands."""
    p = subparsers.add_parser(
        "token",
        help="get a managed-identity token and show its claims (redacted)",
        description="Ask IMDS for a token (bounded retries) and print its claims; the token itself is "
        "shown redacted. Exit 0 on success, 1 on failure, 2 for bad usage.",
    )
    p.add_argument(
        "--resource",
        metavar="R",
        default="arm",
        help="service name (arm, key vault, storage, …), resource URI or scope (default: arm)",
    )
    _add_identity_options(p)
    p.set_defaults(func=run_token)

    w = subparsers.add_parser(
        "whoami",
        help="principal ID from the token and from ARM, side by side",
        description="Sign in, decode the token's oid, and compare it with the principal ID ARM reports "
        "for this VM's identity (the twin of az resource list -n <vm> --query [*].identity.principalId).",
    )
    _add_identity_options(w)
    w.set_defaults(func=run_whoami)


def _fail(command: str, exc: BaseException) -> int:
    """One line of error on stderr, then the diagnosis card on stdout; exit code 1."""
    from mi_helpers.diagnosis import diagnose

    print(f"mi-helpers {command}: {redact(' '.join(str(exc).split()))}", file=sys.stderr)
    try:
        print(redact(str(diagnose(exc))))
    except Exception as err:  # a diagnosis problem must not hide the original error
        print(f"(no diagnosis: {type(err).__name__})", file=sys.stderr)
    return 1


def _selector(args: argparse.Namespace) -> dict[str, Any]:
    return {"client_id": args.client_id, "object_id": args.object_id, "resource_id": args.resource_id}


def _progress(args: argparse.Namespace) -> bool:
    return not args.quiet and not args.json and sys.stderr.isatty()


def _table(rows: list[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {redact('' if v is None else v)}" for k, v in rows)


def run_token(args: argparse.Namespace) -> int:
    """``mi-helpers token``: print the redacted token and its claims."""
    from mi_helpers.identity import get_token
    from mi_helpers.validate import InputError

    with quiet_sdk_logs():  # the SDK logs each failed try; the CLI prints its own one-line error instead
        try:
            tok = get_token(args.resource, budget=args.budget, progress=_progress(args), **_selector(args))
        except InputError:
            raise
        except Exception as exc:
            return _fail("token", exc)
    if args.json:
        print(redact(json.dumps(tok.summary(), indent=2, default=str)))
    else:
        _print_token(tok)
    return 0


def _print_token(tok: TokenInfo) -> None:
    summary = tok.summary()
    head = [(k, summary[k]) for k in ("token", "identity", "audience", "expires_on", "expires_in")]
    head.append(("attempts", f"{summary['attempts']} in {summary['elapsed']} s"))
    print(_table(head))
    print()
    claims = tok.claims_table()
    if claims.empty:
        print("(the token is not a JWT: no claims to show)")
        return
    rows = [(str(r["claim"]), str(r["value"]), str(r["meaning"])) for r in claims.to_dict("records")]
    width = max(len("claim"), *(len(name) for name, _, _ in rows))
    print(f"{'claim'.ljust(width)}  value")
    for name, value, meaning in rows:
        note = f"   ({meaning})" if meaning else ""
        print(f"{name.ljust(width)}  {redact(value)}{note}")


def run_whoami(args: argparse.Namespace) -> int:
    """``mi-helpers whoami``: token ``oid`` next to ARM's principal ID for this VM's identity."""
    from mi_helpers.arm import cross_check, get_vm
    from mi_helpers.identity import get_token, shared_credential
    from mi_helpers.token_info import selector_label
    from mi_helpers.validate import InputError, validate_one_selector

    selector = validate_one_selector(**_selector(args))
    with quiet_sdk_logs():
        try:
            tok = get_token("arm", budget=args.budget, progress=_progress(args), **_selector(args))
            vm = get_vm(credential=shared_credential(**_selector(args)))  # read ARM as the same identity
            check = cross_check(tok, vm)
        except InputError:
            raise
        except Exception as exc:
            return _fail("whoami", exc)
    facts = {
        "identity": selector_label(selector),
        "vm": getattr(vm, "id", None),
        "token_principal_id": check.token_principal_id,
        "arm_principal_id": check.expected_principal_id,
        "arm_identity": check.identity,
        "client_id": tok.client_id,
        "tenant_id": tok.tenant_id,
        "matches": check.matches,
        "explanation": check.explanation,
    }
    if args.json:
        print(redact(json.dumps(facts, indent=2)))
    else:
        rows = [
            ("identity", facts["identity"]),
            ("VM", facts["vm"]),
            ("principal id (token oid)", facts["token_principal_id"]),
            (f"principal id (ARM, {check.identity})", facts["arm_principal_id"]),
            ("client id (token appid)", facts["client_id"]),
            ("tenant (token tid)", facts["tenant_id"]),
            ("match", "yes" if check.matches else "NO"),
        ]
        print(_table(rows))
        print(check.explanation)
    return 0 if check.matches else 1
