"""Notebook set-up and display helpers: the target banner, the stack check, errors shown as lessons.

The tutorial notebooks call these so that their code cells stay short:

* :func:`setup` prints which target this run uses (and why) and makes a bad input
  (:class:`mi_helpers.validate.InputError`) show as one line instead of a traceback;
* :func:`stack_check` says in one table whether the installed packages satisfy ``mi-helpers``;
* :func:`show_errors` runs a block that may fail on purpose and renders the raw error text, then the
  diagnosis card, so no cell of the tutorial ever fails;
* :class:`DiagnosisCard` and :class:`ErrorText` are the displayable pieces (plain text and HTML, never colour
  only) that the widgets reuse.
"""

from __future__ import annotations

import html
import importlib.metadata as md
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from mi_helpers.environ import patched_environ
from mi_helpers.redaction import redact
from mi_helpers.validate import InputError

_COMMAND_LABELS = (("portal", "Azure portal"), ("az", "Azure CLI"), ("powershell", "Azure PowerShell"))


def scrub(text: object) -> str:
    """Replace anything that looks like a whole token with its redacted form (first 8 chars + … + length)."""
    return redact(text)


def error_text(exc: BaseException) -> str:
    """The error as the SDK shows it (``Type: message``), with any token redacted."""
    message = str(exc)
    return scrub(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


def _is_input_error(exc: BaseException) -> bool:
    return isinstance(exc, InputError)


# --------------------------------------------------------------------------------------------------
# Displayable pieces
# --------------------------------------------------------------------------------------------------


@dataclass
class ErrorText:
    """The raw error text of a failed call, shown verbatim in a monospace block."""

    text: str
    heading: str = "✗ Error (raw text, exactly as the SDK shows it)"

    def __str__(self) -> str:
        return f"{self.heading}\n{self.text}"

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return (
            '<div class="mi-error" style="border-left:4px solid #b00020;padding:4px 8px;margin:4px 0">'
            f"<strong>{html.escape(self.heading)}</strong>"
            f'<pre style="white-space:pre-wrap;margin:4px 0">{html.escape(self.text)}</pre></div>'
        )


@dataclass
class Notice:
    """A one-line message (a bad input, a success) that reads the same in text and HTML."""

    text: str
    symbol: str = "ℹ"

    def __str__(self) -> str:
        return f"{self.symbol} {self.text}"

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return f'<div class="mi-notice">{html.escape(str(self))}</div>'


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, Mapping):
        return [f"{k}: {v}" for k, v in value.items()]
    if isinstance(value, Sequence):
        return [str(v) for v in value if str(v).strip()]
    return [str(value)]


@dataclass
class DiagnosisCard:
    """A readable card for a :class:`mi_helpers.diagnosis.Diagnosis`: title, cause, evidence, fix, commands.

    Accepts the Diagnosis object or a dict with the same fields, so it keeps working when fields are added.
    """

    diagnosis: Any
    commands: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        raw = _get(self.diagnosis, "commands") or {}
        self.commands = {str(k): scrub(str(v)) for k, v in dict(raw).items() if v}

    @property
    def id(self) -> str:
        return str(_get(self.diagnosis, "id", "unknown"))

    @property
    def title(self) -> str:
        return str(_get(self.diagnosis, "title", "") or self.id)

    def _fields(self) -> tuple[str, list[str], list[str], list[str]]:
        cause = scrub(str(_get(self.diagnosis, "cause", "") or ""))
        evidence = [scrub(e) for e in _as_list(_get(self.diagnosis, "evidence"))]
        fix = [scrub(f) for f in _as_list(_get(self.diagnosis, "fix"))]
        docs = _as_list(_get(self.diagnosis, "docs"))
        return cause, evidence, fix, docs

    def __str__(self) -> str:
        if not isinstance(self.diagnosis, Mapping) and hasattr(self.diagnosis, "_repr_html_"):
            return scrub(str(self.diagnosis))
        cause, evidence, fix, docs = self._fields()
        lines = [f"Diagnosis: {self.title} [{self.id}]"]
        if cause:
            lines += ["Cause:", f"  {cause}"]
        if evidence:
            lines += ["Evidence:", *(f"  - {e}" for e in evidence)]
        if fix:
            lines += ["Fix:", *(f"  {i}. {f}" for i, f in enumerate(fix, 1))]
        for key, label in _COMMAND_LABELS:
            if key in self.commands:
                lines += [f"{label}:", *(f"    {line}" for line in self.commands[key].splitlines())]
        if docs:
            lines += ["Read more:", *(f"  {d}" for d in docs)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        if not isinstance(self.diagnosis, Mapping) and hasattr(self.diagnosis, "_repr_html_"):
            return scrub(self.diagnosis._repr_html_())
        cause, evidence, fix, docs = self._fields()
        esc = html.escape
        parts = [
            '<div class="mi-diagnosis" style="border:1px solid #888;border-radius:4px;padding:6px 10px;'
            'margin:6px 0">',
            f"<p><strong>Diagnosis: {esc(self.title)}</strong> <code>[{esc(self.id)}]</code></p>",
        ]
        if cause:
            parts.append(f"<p><strong>Cause:</strong> {esc(cause)}</p>")
        if evidence:
            parts.append("<p><strong>Evidence:</strong></p><ul>")
            parts += [f"<li><code>{esc(e)}</code></li>" for e in evidence]
            parts.append("</ul>")
        if fix:
            parts.append("<p><strong>Fix:</strong></p><ol>")
            parts += [f"<li>{esc(f)}</li>" for f in fix]
            parts.append("</ol>")
        for key, label in _COMMAND_LABELS:
            if key in self.commands:
                body = esc(self.commands[key])
                parts.append(
                    f"<p><strong>{label}:</strong></p><pre style='white-space:pre-wrap'>{body}</pre>"
                )
        if docs:
            links = "".join(f'<li><a href="{esc(d)}" target="_blank">{esc(d)}</a></li>' for d in docs)
            parts.append(f"<p><strong>Read more:</strong></p><ul>{links}</ul>")
        parts.append("</div>")
        return "".join(parts)


def diagnose(exc: BaseException) -> Any:
    """``mi_helpers.diagnosis.diagnose(exc)``, or a plain fallback card while that module is missing."""
    try:
        from mi_helpers.diagnosis import diagnose as _diagnose
    except ImportError:
        return {
            "id": "unknown",
            "title": "No diagnosis available",
            "cause": "mi_helpers.diagnosis is not installed in this environment.",
            "evidence": [error_text(exc)],
        }
    return _diagnose(exc)


def sdk_error_text(exc: BaseException) -> str:
    """The SDK's own error text: for a helper's ``SignInError`` that of the SDK exception it wraps."""
    original = getattr(exc, "original", None)
    return error_text(original if isinstance(original, BaseException) else exc)


def explain(exc: BaseException) -> list[Any]:
    """The displayables for an exception: a one-line notice for bad input, else raw text + diagnosis card.

    For a helper's ``SignInError`` the SDK's text comes first, then one line of what the helper's bounded
    retry loop did (attempts, seconds), then the card.
    """
    if _is_input_error(exc):
        return [Notice(f"InputError: {exc}", "✗")]
    shown: list[Any] = [ErrorText(sdk_error_text(exc))]
    if isinstance(getattr(exc, "original", None), BaseException):
        shown.append(Notice(f"mi-helpers: {scrub(str(exc))}", "ℹ"))
    shown.append(DiagnosisCard(diagnose(exc)))
    return shown


# --------------------------------------------------------------------------------------------------
# Cells that fail on purpose
# --------------------------------------------------------------------------------------------------


@dataclass
class Caught:
    """What :func:`show_errors` saw: the exception (or None), its diagnosis id and the rendered pieces."""

    error: BaseException | None = None
    diagnosis: Any = None
    shown: list[Any] = field(default_factory=list)

    @property
    def diagnosis_id(self) -> str | None:
        return None if self.diagnosis is None else str(_get(self.diagnosis, "id", "unknown"))

    @property
    def ok(self) -> bool:
        return self.error is None


def _display(obj: Any) -> None:
    try:
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython is a dependency of ipywidgets
        print(obj)
        return
    display(obj)


@contextmanager
def quiet_sdk_logs() -> Iterator[None]:
    """Silence azure-identity's WARNING lines while an error is shown on purpose (the card says it all)."""
    import logging

    logger = logging.getLogger("azure.identity")
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


@contextmanager
def show_errors(expect: str | None = None) -> Iterator[Caught]:
    """Run a block that may fail on purpose: show the raw error text, then the diagnosis card.

    ``expect`` names the diagnosis id the lesson expects; a different one is pointed out (still no failure),
    so a learner notices when the world is not what the text describes.
    """
    caught = Caught()
    try:
        with quiet_sdk_logs():
            yield caught
    except Exception as exc:  # the lesson is the error: render it instead of failing the cell
        caught.error = exc
        caught.shown = explain(exc)
        if not _is_input_error(exc):
            caught.diagnosis = caught.shown[-1].diagnosis
        for item in caught.shown:
            _display(item)
        if expect and caught.diagnosis_id not in (None, expect):
            _display(
                Notice(f"This lesson expected the diagnosis {expect!r}, got {caught.diagnosis_id!r}.", "ℹ")
            )
    else:
        if expect:
            _display(Notice(f"No error this time (the lesson expected {expect!r}).", "ℹ"))


# --------------------------------------------------------------------------------------------------
# Set-up: target banner, one-line InputError, stack check
# --------------------------------------------------------------------------------------------------


def install_input_error_display() -> bool:
    """Make IPython show an uncaught InputError as one line (no traceback). True when installed."""
    from mi_helpers.validate import install_notebook_error_display

    return install_notebook_error_display()


def setup(target: str = "", *, quiet: bool = False) -> Any:
    """Prepare a tutorial notebook and return :func:`mi_helpers.target`.

    ``target`` ("", "auto", "azure" or "emulator") overrides ``MI_HELPERS_TARGET`` for this kernel; empty
    keeps the environment's choice. Prints one line saying which target is used and why.
    """
    allowed = ("", "auto", "azure", "emulator")
    if target not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise InputError("target", f"{target!r} is not a target (one of {choices})", target)
    if target and os.environ.get("MI_HELPERS_TARGET") != target:
        from mi_helpers.targeting import reset_target

        os.environ["MI_HELPERS_TARGET"] = target
        reset_target(stop_emulator=False)  # an earlier choice is cached: choose again
    install_input_error_display()
    _readable_tables()
    import mi_helpers

    t = mi_helpers.target()
    if not quiet:
        print(f"Target: {_get(t, 'name')} — {_get(t, 'reason')}")
    return t


def _readable_tables() -> None:
    """Let table cells show whole sentences and IDs (pandas cuts text at 50 characters by default)."""
    import pandas as pd

    pd.set_option("display.max_colwidth", 200)


_STACK = (
    "azure-identity",
    "msal",
    "azure-core",
    "azure-mgmt-compute",
    "azure-mgmt-resource",
    "ipywidgets",
    "pandas",
)


def stack_check() -> Any:
    """One table that says whether the installed packages satisfy what ``mi-helpers`` requires.

    The requirements are read from the installed ``mi-helpers`` metadata, so there is no second list to
    keep in sync. Prints a one-line verdict and returns a DataFrame (package, required, installed, ok).
    """
    import pandas as pd
    from packaging.requirements import Requirement

    try:
        reqs = [Requirement(r) for r in (md.requires("mi-helpers") or [])]
    except md.PackageNotFoundError:
        reqs = []
    wanted = {r.name.lower(): r for r in reqs if r.marker is None}
    rows = [
        {
            "package": "python",
            "required": (md.metadata("mi-helpers")["Requires-Python"] or "") if wanted else "",
            "installed": ".".join(map(str, sys.version_info[:3])),
        }
    ]
    for name in sorted(set(wanted) | set(_STACK)):
        req = wanted.get(name)
        try:
            installed = md.version(name)
        except md.PackageNotFoundError:
            installed = ""
        rows.append({"package": name, "required": str(req.specifier) if req else "", "installed": installed})
    from packaging.specifiers import SpecifierSet

    checked: list[dict[str, object]] = []
    for row in rows:
        spec = SpecifierSet(row["required"])
        ok = bool(row["installed"]) and spec.contains(row["installed"], prereleases=True)
        checked.append({**row, "ok": ok})
    df = pd.DataFrame(checked, columns=["package", "required", "installed", "ok"])
    bad = df[~df["ok"]]
    if not wanted:
        print("✗ mi-helpers is not installed as a package: run `pip install -e '.[lab]'` in the repository.")
    elif bad.empty:
        print(f"✓ The stack is right: {len(df)} packages checked, all satisfy mi-helpers' requirements.")
    else:
        names = ", ".join(bad["package"])
        print(f"✗ {len(bad)} package(s) missing or too old: {names}. Run `pip install -e '.[lab]'` again.")
    return df


# --------------------------------------------------------------------------------------------------
# Small lesson helpers (notebooks 03 and 04)
# --------------------------------------------------------------------------------------------------


def whoami(client_id: str | None = None, *, credential: Any = None, label: str = "") -> dict[str, Any]:
    """Sign in (ARM token) and say who the token is for: identity asked, oid, appid, xms_mirid.

    Raises what :func:`mi_helpers.get_token` raises, so a cell wrapped in :func:`show_errors` shows it.
    """
    import mi_helpers

    if credential is None:
        # a fresh credential: "who am I now", not a token cached before the world changed
        credential = mi_helpers.credential(client_id=client_id or None)
    with quiet_sdk_logs():
        tok = mi_helpers.get_token("arm", credential=credential, progress=False)
    asked = label or (f"client_id={client_id}" if client_id else "no selector")
    return {
        "asked for": asked,
        "oid (principal)": tok.principal_id,
        "appid (client)": tok.client_id,
        "xms_mirid (identity resource)": tok.mi_resource_id,
    }


def as_table(rows: Sequence[Mapping[str, Any]]) -> Any:
    """A list of dicts as a DataFrame (one row each)."""
    import pandas as pd

    return pd.DataFrame(list(rows))


def pick_user_assigned(identities: Any, client_id: str = "") -> dict[str, Any] | None:
    """The user-assigned row of ``mi.vm_identity()`` to use: the one with ``client_id``, else the first."""
    rows = [dict(r) for r in identities.to_dict("records") if r.get("kind") == "user-assigned"]
    if client_id:
        from mi_helpers.validate import validate_guid

        wanted = validate_guid(client_id, "client_id").lower()
        match = [r for r in rows if str(r.get("client_id", "")).lower() == wanted]
        if not match:
            raise InputError(
                "client_id", f"{client_id!r} is not the client ID of an identity on this VM", client_id
            )
        return match[0]
    return rows[0] if rows else None


def compare_azure_client_id(client_id: str) -> list[dict[str, Any]]:
    """Sign in three ways with ``AZURE_CLIENT_ID=client_id`` set for the duration of the call.

    ``DefaultAzureCredential()`` (managed identity step only), ``ManagedIdentityCredential()`` and
    ``ManagedIdentityCredential(client_id=os.environ["AZURE_CLIENT_ID"])``: one row each, with the identity
    the token is for, or the diagnosis id of the error.
    """
    from azure.identity import DefaultAzureCredential

    import mi_helpers
    from mi_helpers.validate import validate_guid

    cid = validate_guid(client_id, "client_id")
    rows = []
    with patched_environ({"AZURE_CLIENT_ID": cid}), quiet_sdk_logs():
        makers: list[tuple[str, Callable[[], Any]]] = [
            (
                "DefaultAzureCredential()",
                lambda: DefaultAzureCredential(
                    exclude_environment_credential=True,
                    exclude_workload_identity_credential=True,
                    exclude_shared_token_cache_credential=True,
                    exclude_visual_studio_code_credential=True,
                    exclude_cli_credential=True,
                    exclude_powershell_credential=True,
                    exclude_developer_cli_credential=True,
                    exclude_interactive_browser_credential=True,
                    exclude_broker_credential=True,
                    retry_total=0,
                    read_timeout=3,
                ),
            ),
            ("ManagedIdentityCredential()", lambda: mi_helpers.credential()),
            (
                "ManagedIdentityCredential(client_id=…)",
                lambda: mi_helpers.credential(client_id=os.environ["AZURE_CLIENT_ID"]),
            ),
        ]
        for label, make in makers:
            try:
                row = whoami(credential=make(), label=label)
                row["result"] = "✓ token"
            except Exception as exc:  # shown as a row: the comparison is the lesson
                row = {"asked for": label, "result": "✗ " + str(_get(diagnose(exc), "id", "error"))}
            rows.append(row)
    return rows


class _FixedScopeCredential:
    """Hands out a token for ``scope`` whatever scope the caller asks for (to show a wrong audience)."""

    def __init__(self, inner: Any, scope: str) -> None:
        self._inner = inner
        self._scope = scope

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        return self._inner.get_token(self._scope, **kwargs)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        return self._inner.get_token_info(self._scope, options=options)


def read_vm_with_token_for(service: str) -> Any:
    """Read this VM from ARM with a token meant for ``service`` (e.g. "storage"): ARM answers 401."""
    import mi_helpers
    from mi_helpers.clouds import scope_for

    scope = scope_for(service, _get(mi_helpers.target(), "cloud", "public"))
    wrong = _FixedScopeCredential(mi_helpers.credential(), scope)
    return mi_helpers.get_vm(credential=wrong)


_IDENTITY_COLUMNS = ["kind", "name", "principal_id", "client_id", "resource_id"]


def _identities_from_world(world: Mapping[str, Any]) -> Any:
    import pandas as pd

    host_name = world["host_vm"]["name"]
    vm = next(v for v in world["virtual_machines"] if v["name"] == host_name)
    rows = []
    si = vm.get("system_identity")
    if si and si.get("enabled"):
        rows.append(
            {
                "kind": "system-assigned",
                "name": vm["name"],
                "principal_id": si["principal_id"],
                "client_id": "",
                "resource_id": vm["resource_id"],
            }
        )
    attached = {rid.lower() for rid in vm.get("user_assigned", [])}
    for uami in world["user_assigned_identities"]:
        if uami["resource_id"].lower() in attached:
            rows.append({"kind": "user-assigned", **{k: uami[k] for k in _IDENTITY_COLUMNS[1:]}})
    return pd.DataFrame(rows, columns=_IDENTITY_COLUMNS)


def vm_identities() -> Any:
    """The identities of this VM as a DataFrame (kind, name, principal_id, client_id, resource_id).

    Asks ARM (:func:`mi_helpers.vm_identity`). When that fails because signing in without a selector
    fails (several user-assigned identities), the emulator's world is shown instead, the way a person sees
    the VM in the portal; on Azure the error and its diagnosis are shown and the table is empty.
    """
    import pandas as pd

    import mi_helpers

    try:
        return mi_helpers.vm_identity()
    except InputError:
        raise
    except Exception as exc:  # explained below; the lesson goes on with what the portal would show
        control = _get(mi_helpers.target(), "emulator")
        if control is not None and hasattr(control, "world_dict"):
            print(
                "ARM could not be asked (" + sdk_error_text(exc).splitlines()[0][:120] + "…);\n"
                "this is the VM's Identity page as the portal shows it (the emulator's world):"
            )
            return _identities_from_world(control.world_dict())
        for item in explain(exc):
            _display(item)
        return pd.DataFrame([], columns=_IDENTITY_COLUMNS)


def report_principal(
    principal_id: str | None, vm_name: str, resource_group: str = "", subscription_id: str = ""
) -> None:
    """Print the source article's sentence, or explain (with a diagnosis card) a VM without identity."""
    if principal_id:
        print(f"The managed identity for Azure resources service principal ID is {principal_id}")
        return
    from mi_helpers.diagnosis import diagnosis_for

    print(f"✗ VM {vm_name!r} has no system-assigned managed identity: ARM reports no identity.principalId.")
    context = {
        "vm_name": vm_name,
        "resource_group": resource_group or None,
        "subscription_id": subscription_id or None,
    }
    evidence = {"exception": "(none: ARM answered 200, the VM's identity block is empty)"}
    _display(DiagnosisCard(diagnosis_for("identity-not-assigned", context=context, evidence=evidence)))
