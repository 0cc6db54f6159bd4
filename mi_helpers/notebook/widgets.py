"""ipywidgets views for the tutorial notebooks: inputs, a button, an Output. Nothing else.

Each view is the GUI half of a model/GUI split: its callbacks read the widgets, call one plain function of
``mi_helpers`` and write what came back into its ``output`` with ``Output.append_stdout`` /
``append_display_data`` (never ``with output:``), so a view behaves the same in JupyterLab, under nbclient
and in pytest. A bad input shows as the one-line :class:`~mi_helpers.validate.InputError` text; any other
exception shows as the raw error text followed by the diagnosis card. Handlers are public methods, so a
test (or a notebook run unattended) can set ``.value`` and call ``.click()`` or the method itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from mi_helpers.notebook.display import Caught, DiagnosisCard, Notice, caught
from mi_helpers.validate import InputError

if TYPE_CHECKING:
    from mi_helpers.checklist import DoctorReport
    from mi_helpers.notebook.error_lab import ErrorLab, ErrorLabRun
    from mi_helpers.token_info import TokenInfo

__all__ = ["DoctorView", "ErrorLabView", "TokenForServiceView", "View", "VmIdentityView"]

_CLOUDS = (
    ("Azure public cloud", "public"),
    ("Azure US Government", "usgov"),
    ("Azure China (21Vianet)", "china"),
)
_LABEL = {"description_width": "initial"}


class View:
    """Base of the views: a root widget, an Output, and the shared way to show results and errors."""

    output: w.Output
    root: w.Widget

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.root)

    def clear(self) -> None:
        """Empty the output area (each button press starts from a clean output)."""
        self.output.outputs = ()

    def show(self, obj: Any) -> None:
        """Append a displayable (DataFrame, card, Markdown…) to the output."""
        self.output.append_display_data(obj)

    def say(self, text: str) -> None:
        """Append one line of text to the output."""
        self.output.append_stdout(text.rstrip("\n") + "\n")

    def show_error(self, exc: BaseException) -> Caught:
        """One line for bad input; otherwise the raw error text and the diagnosis card."""
        seen = caught(exc)
        for item in seen.shown:
            if isinstance(item, Notice):
                self.say(str(item))
            else:
                self.show(item)
        return seen

    def call(self, fn: Callable[[], Any]) -> tuple[Any, BaseException | None]:
        """Run ``fn``; on failure render the error (never a traceback) and return it."""
        try:
            return fn(), None
        except Exception as exc:  # every failure becomes text + diagnosis in the output
            self.show_error(exc)
            return None, exc

    def texts(self) -> str:
        """Everything the output shows, as plain text (used by tests and unattended runs)."""
        parts = []
        for out in self.output.outputs:
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            else:
                data = out.get("data", {})
                parts.append(str(data.get("text/plain", "")))
        return "\n".join(parts)


# --------------------------------------------------------------------------------------------------
# 02: the VM's principal id
# --------------------------------------------------------------------------------------------------


def _metadata_defaults() -> tuple[dict[str, str], BaseException | None]:
    """Subscription, group and VM name from instance metadata (empty strings when IMDS cannot answer)."""
    import mi_helpers

    try:
        md = mi_helpers.instance_metadata()
    except Exception as exc:  # shown to the learner by the view; the fields stay editable
        return {"subscription_id": "", "resource_group": "", "vm_name": ""}, exc
    return {
        "subscription_id": str(md.subscription_id),
        "resource_group": str(md.resource_group),
        "vm_name": str(md.name),
    }, None


class VmIdentityView(View):
    """Subscription / resource group / VM name, prefilled from instance metadata, and a look-up button.

    The button calls :func:`mi_helpers.vm_principal_id` (azure-mgmt-compute ``virtual_machines.get``) and
    shows the VM's ``identity.principalId``.
    """

    def __init__(
        self, subscription_id: str = "", resource_group: str = "", vm_name: str = "", prefill: bool = True
    ) -> None:
        defaults, problem = _metadata_defaults() if prefill else ({}, None)
        self.subscription = w.Text(
            value=subscription_id or defaults.get("subscription_id", ""),
            description="Subscription ID",
            placeholder="GUID, e.g. 3c9e6f1a-…",
            style=_LABEL,
            layout=w.Layout(width="32em"),
        )
        self.resource_group = w.Text(
            value=resource_group or defaults.get("resource_group", ""),
            description="Resource group",
            style=_LABEL,
            layout=w.Layout(width="32em"),
        )
        self.vm_name = w.Text(
            value=vm_name or defaults.get("vm_name", ""),
            description="VM name",
            style=_LABEL,
            layout=w.Layout(width="32em"),
        )
        self.lookup_button = w.Button(
            description="Look up principal id",
            button_style="primary",
            icon="search",
            tooltip="Ask ARM",
            layout=w.Layout(width="max-content"),  # the default width cuts the label short
        )
        self.output = w.Output()
        self.principal_id: str | None = None
        self.lookup_button.on_click(self.lookup)
        self.root = w.VBox(
            [
                w.HTML("<b>Which VM?</b> (prefilled from instance metadata)"),
                self.subscription,
                self.resource_group,
                self.vm_name,
                self.lookup_button,
                self.output,
            ]
        )
        if problem is not None:
            self.say("Instance metadata did not answer, so the fields start empty:")
            self.show_error(problem)

    def lookup(self, _button: Any = None) -> str | None:
        """Look up the principal id of the VM named in the fields; show it or the diagnosis."""
        import mi_helpers

        self.clear()
        self.principal_id = None
        sub, rg, vm = (
            self.subscription.value.strip(),
            self.resource_group.value.strip(),
            self.vm_name.value.strip(),
        )
        self.say(f"GET virtualMachines/{vm or '?'} in {rg or '?'} (subscription {sub or '?'}) …")
        pid, exc = self.call(
            lambda: mi_helpers.vm_principal_id(subscription_id=sub, resource_group=rg, vm_name=vm)
        )
        if exc is None:
            self.principal_id = pid
            if pid:
                self.say(f"✓ principalId of {vm}: {pid}")
            else:
                self.say(f"✗ {vm} has no system-assigned identity (principalId is empty).")
        return self.principal_id


# --------------------------------------------------------------------------------------------------
# 03: a token for another Azure service
# --------------------------------------------------------------------------------------------------


class TokenForServiceView(View):
    """Pick a service and a cloud, get a token for it and show its claims (``aud`` first)."""

    def __init__(self, service: str = "Key Vault", cloud: str = "public") -> None:
        from mi_helpers.clouds import SERVICES

        wanted = service.strip().lower()
        names = [s.name for s in SERVICES if wanted in (s.name.lower(), *(a.lower() for a in s.aliases))]
        if not names:
            known = ", ".join(s.name for s in SERVICES)
            raise InputError("service", f"{service!r} is not a known service (one of: {known})", service)
        self.service = w.Dropdown(
            options=[s.name for s in SERVICES], value=names[0], description="Service", style=_LABEL
        )
        clouds = [value for _, value in _CLOUDS]
        if cloud not in clouds:
            raise InputError("cloud", f"{cloud!r} is not a cloud (one of: {', '.join(clouds)})", cloud)
        self.cloud = w.Dropdown(options=list(_CLOUDS), value=cloud, description="Cloud", style=_LABEL)
        self.scope = w.Text(
            value="", description="Scope", disabled=True, style=_LABEL, layout=w.Layout(width="40em")
        )
        self.get_button = w.Button(description="Get token", button_style="primary", icon="key")
        self.output = w.Output()
        self.token: TokenInfo | None = None
        self.service.observe(self._update_scope, names="value")
        self.cloud.observe(self._update_scope, names="value")
        self.get_button.on_click(self.get_token)
        self._update_scope()
        self.root = w.VBox([w.HBox([self.service, self.cloud]), self.scope, self.get_button, self.output])

    def _update_scope(self, _change: Any = None) -> None:
        from mi_helpers.clouds import scope_for

        try:
            self.scope.value = scope_for(self.service.value, self.cloud.value)
        except InputError as exc:
            self.scope.value = f"(none: {exc})"

    def get_token(self, _button: Any = None) -> TokenInfo | None:
        """Ask the managed identity for a token for the chosen service and show its claims table."""
        import mi_helpers
        from mi_helpers.clouds import scope_for

        self.clear()
        self.token = None
        scope, exc = self.call(lambda: scope_for(self.service.value, self.cloud.value))
        if exc is not None:
            return None
        self.say(f"get_token({scope!r}) …")
        tok, exc = self.call(lambda: mi_helpers.get_token(scope, progress=False))
        if exc is None:
            self.token = tok
            self.say(f"✓ {tok!r}")
            self.show(tok.claims_table())
        return self.token


# --------------------------------------------------------------------------------------------------
# 05: the error-handling lab
# --------------------------------------------------------------------------------------------------


class ErrorLabView(View):
    """Scenario dropdown, Run, Apply the fix, Reset; raw error → diagnosis card → fix → retry until green.

    All logic lives in :class:`mi_helpers.notebook.error_lab.ErrorLab`; this view only wires buttons to it.
    """

    def __init__(self, lab: ErrorLab | None = None, scenario: str | None = None) -> None:
        from mi_helpers.notebook.error_lab import ErrorLab

        self.lab = lab if lab is not None else ErrorLab()
        names = [(f"{s.title} ({s.name})", s.name) for s in self.lab.scenarios]
        self.scenario = w.Dropdown(
            options=names,
            value=scenario or names[0][1],
            description="Scenario",
            style=_LABEL,
            layout=w.Layout(width="40em"),
        )
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        self.fix_button = w.Button(description="Apply the fix", button_style="warning", icon="wrench")
        self.reset_button = w.Button(description="Reset", icon="undo")
        self.progress = w.FloatProgress(value=0.0, min=0.0, max=1.0, description="Retrying", style=_LABEL)
        self.status = w.HTML(value="")
        self.status_text = ""
        self.output = w.Output()
        self.last: ErrorLabRun | None = None
        self.run_button.on_click(self.run)
        self.fix_button.on_click(self.apply_fix)
        self.reset_button.on_click(self.reset)
        self.scenario.observe(self._selected, names="value")
        self.root = w.VBox(
            [
                self.scenario,
                w.HBox([self.run_button, self.fix_button, self.reset_button]),
                self.progress,
                self.status,
                self.output,
            ]
        )
        self._selected()

    def _set_status(self, ok: bool | None, text: str) -> None:
        import html

        symbol = {True: "✓ OK", False: "✗ FAILED", None: "…"}[ok]
        self.status_text = f"{symbol} — {text}"
        self.status.value = f"<b>{symbol}</b> — {html.escape(text)}"

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.value = max(0.0, min(1.0, fraction))
        self.progress.description = "Retrying" if fraction < 1.0 else "Done"
        if message:
            self.say(message)

    def _selected(self, _change: Any = None) -> None:
        self.clear()
        self.progress.value = 0.0
        _, exc = self.call(lambda: self.lab.select(self.scenario.value))
        if exc is None:
            info = self.lab.current
            self.say(f"Scenario {info.name}: {info.lesson}")
            self._set_status(None, "press Run")

    def _show_attempt(self, attempt: ErrorLabRun) -> None:
        if attempt.ok:
            self.say(f"✓ {attempt.summary}")
            self._set_status(True, attempt.summary)
        else:
            self.show(attempt.error_display)
            if attempt.diagnosis is not None:
                self.show(DiagnosisCard(attempt.diagnosis))
            self._set_status(False, f"diagnosis {attempt.diagnosis_id}; press “Apply the fix”")

    def run(self, _button: Any = None) -> ErrorLabRun | None:
        """Run the program (sign in + ARM query) in the selected scenario and show what happened."""
        self.clear()
        self.progress.value = 0.0
        self.say(
            f"Running: sign in with the managed identity, then read the VM from ARM ({self.lab.current.name})"
        )
        attempt, _ = self.call(self.lab.run)
        if attempt is not None:
            self.last = attempt
            self._show_attempt(attempt)
        return self.last

    def apply_fix(self, _button: Any = None) -> ErrorLabRun | None:
        """Apply the scenario's fix, then run again (retrying with progress while errors are transient)."""
        self.say("")
        done, exc = self.call(self.lab.apply_fix)
        if exc is not None:
            return None
        self.say(f"Fix applied: {done}")
        attempt, _ = self.call(lambda: self.lab.retry_until_green(progress=self._on_progress))
        if attempt is not None:
            self.last = attempt
            self._show_attempt(attempt)
        return self.last

    def reset(self, _button: Any = None) -> None:
        """Put the scenario back as it was (the fault armed again)."""
        self._selected()
        self.say("Reset: the scenario is back to its broken state.")


# --------------------------------------------------------------------------------------------------
# 06: doctor
# --------------------------------------------------------------------------------------------------


class DoctorView(View):
    """A "Run checks" button that renders :func:`mi_helpers.doctor` as a checklist."""

    def __init__(self, budget: float = 15.0) -> None:
        self.budget = budget
        self.run_button = w.Button(description="Run checks", button_style="primary", icon="stethoscope")
        self.output = w.Output()
        self.report: DoctorReport | None = None
        self.run_button.on_click(self.run)
        self.root = w.VBox([self.run_button, self.output])

    def run(self, _button: Any = None) -> DoctorReport | None:
        """Run the checklist and show it (each check with a text status, not colour only)."""
        import mi_helpers

        self.clear()
        self.say("Running the checks …")
        rep, exc = self.call(lambda: mi_helpers.doctor(budget=self.budget))
        if exc is None:
            self.report = rep
            self.show(rep)
        return self.report
