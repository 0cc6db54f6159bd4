"""ipywidgets views for the tutorial notebooks: inputs, a button, an Output. Nothing else.

Each view is the GUI half of a model/GUI split: its callbacks read the widgets, call one plain function of
``mi_helpers`` and write what came back into its ``output`` with ``Output.append_stdout`` /
``append_display_data`` (never ``with output:``), so a view behaves the same in JupyterLab, under nbclient
and in pytest. A bad input shows as the one-line :class:`~mi_helpers.validate.InputError` text; any other
exception shows as the raw error text followed by the diagnosis card. Handlers are public methods, so a
test (or a notebook run unattended) can set ``.value`` and call ``.click()`` or the method itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import ipywidgets as w

from mi_helpers.notebook.display import Caught, DiagnosisCard, Notice, caught
from mi_helpers.validate import InputError

if TYPE_CHECKING:
    from mi_helpers.checklist import DoctorReport
    from mi_helpers.notebook.error_lab import ErrorLab, ErrorLabRun
    from mi_helpers.token_info import TokenInfo

__all__ = [
    "DoctorView",
    "ErrorLabView",
    "QuizView",
    "TokenForServiceView",
    "View",
    "VmIdentityView",
]

_CLOUDS = (
    ("Azure public cloud", "public"),
    ("Azure US Government", "usgov"),
    ("Azure China (21Vianet)", "china"),
)
_LABEL = {"description_width": "initial"}
#: One label width for every field of a form, so the input boxes line up.
_FORM_LABEL = {"description_width": "9em"}
_FIELD = {"width": "38em", "max_width": "100%"}


def _on_enter(field: w.Text, action: Callable[[], Any]) -> None:
    """Run ``action`` when Enter is pressed in ``field`` (the front end sends a ``submit`` event)."""

    def handler(_widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        if content.get("event") == "submit":
            action()

    field.on_msg(handler)


def _short(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (for echoing what was typed)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


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

    def show_error(self, exc: BaseException, context: dict[str, Any] | None = None) -> Caught:
        """One line for bad input; otherwise the raw error text and the diagnosis card (``context``: what
        the view knows for the card's commands, e.g. the names in its fields)."""
        seen = caught(exc, context)
        for item in seen.shown:
            if isinstance(item, Notice):
                self.say(str(item))
            else:
                self.show(item)
        return seen

    def call(
        self, fn: Callable[[], Any], context: dict[str, Any] | None = None
    ) -> tuple[Any, BaseException | None]:
        """Run ``fn``; on failure render the error (never a traceback) and return it."""
        try:
            return fn(), None
        except Exception as exc:  # every failure becomes text + diagnosis in the output
            self.show_error(exc, context)
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

    The button (or Enter in a field) reads the VM from ARM (azure-mgmt-compute ``virtual_machines.get``)
    and shows its ``identity.principalId``, or the card of a VM without identity, or the error's diagnosis.
    """

    def __init__(
        self, subscription_id: str = "", resource_group: str = "", vm_name: str = "", prefill: bool = True
    ) -> None:
        defaults, problem = _metadata_defaults() if prefill else ({}, None)

        def field(value: str, label: str, placeholder: str = "") -> w.Text:
            return w.Text(
                value=value,
                description=label,
                placeholder=placeholder,
                style=_FORM_LABEL,
                layout=w.Layout(**_FIELD),
            )

        self.subscription = field(
            subscription_id or defaults.get("subscription_id", ""), "Subscription ID", "GUID, e.g. 3c9e6f1a-…"
        )
        self.resource_group = field(resource_group or defaults.get("resource_group", ""), "Resource group")
        self.vm_name = field(vm_name or defaults.get("vm_name", ""), "VM name")
        self.lookup_button = w.Button(
            description="Look up principal id",
            button_style="primary",
            icon="search",
            tooltip="Ask ARM (or press Enter in a field)",
            layout=w.Layout(width="max-content", margin="4px 0 4px 9.5em"),
        )
        self.output = w.Output()
        self.principal_id: str | None = None
        self.lookup_button.on_click(self.lookup)
        for text in (self.subscription, self.resource_group, self.vm_name):
            _on_enter(text, self.lookup)
        self.root = w.VBox(
            [
                w.HTML("<b>Which VM?</b> (prefilled from instance metadata; Enter in a field looks it up)"),
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

    def _coordinates(self) -> tuple[str, str, str]:
        """The three fields, validated (a bad one is a one-line InputError, before any request)."""
        from mi_helpers.validate import validate_guid, validate_resource_group, validate_vm_name

        sub = validate_guid(self.subscription.value.strip(), "subscription_id")
        rg = validate_resource_group(self.resource_group.value.strip())
        return sub, rg, validate_vm_name(self.vm_name.value.strip())

    def lookup(self, _button: Any = None) -> str | None:
        """Look up the principal id of the VM named in the fields; show it or the diagnosis."""
        import mi_helpers
        from mi_helpers.notebook.lessons import no_identity_card, vm_principal

        self.clear()
        self.principal_id = None
        where, exc = self.call(self._coordinates)
        if exc is not None:
            return None
        sub, rg, name = where
        self.say(f"GET virtualMachines/{_short(name)} in {_short(rg)} (subscription {sub}) …")
        vm, exc = self.call(
            lambda: mi_helpers.get_vm(subscription_id=sub, resource_group=rg, vm_name=name),
            {"subscription_id": sub, "resource_group": rg, "vm_name": name},
        )
        if exc is not None:
            return None
        self.principal_id = vm_principal(vm)
        if self.principal_id:
            self.say(f"✓ principalId of {vm.name}: {self.principal_id}")
        else:
            self.say(f"✗ {vm.name} has no system-assigned identity (principalId is empty).")
            self.show(no_identity_card(str(vm.name), rg, sub))
        return self.principal_id


# --------------------------------------------------------------------------------------------------
# 03: a token for another Azure service
# --------------------------------------------------------------------------------------------------


class TokenForServiceView(View):
    """Pick a cloud and a service, get a token for it and show its claims (``aud`` first).

    The service list is the cloud's: only services whose resource ID is documented in that cloud
    (:func:`mi_helpers.clouds.services_in`), so every choice the form offers has a scope.
    """

    def __init__(self, service: str = "Key Vault", cloud: str = "public") -> None:
        from mi_helpers.clouds import cloud_info, resource_for

        clouds = [value for _, value in _CLOUDS]
        if cloud not in clouds:
            raise InputError("cloud", f"{cloud!r} is not a cloud (one of: {', '.join(clouds)})", cloud)
        resource_for(service, cloud)  # an unknown service, or one not offered in that cloud: one line
        self.cloud = w.Dropdown(options=list(_CLOUDS), value=cloud, description="Cloud", style=_FORM_LABEL)
        self.service = w.Dropdown(
            options=self._names(cloud), value=self._name(service), description="Service", style=_FORM_LABEL
        )
        self.scope = w.Text(
            value="", description="Scope", disabled=True, style=_FORM_LABEL, layout=w.Layout(**_FIELD)
        )
        self.get_button = w.Button(
            description="Get token",
            button_style="primary",
            icon="key",
            layout=w.Layout(width="max-content", margin="4px 0 4px 9.5em"),
        )
        self.output = w.Output()
        self.token: TokenInfo | None = None
        self._switching = False
        self._cloud_name = cloud_info(cloud).display_name
        self.cloud.observe(self._cloud_changed, names="value")
        self.service.observe(self._service_changed, names="value")
        self.get_button.on_click(self.get_token)
        self._update_scope()
        self.root = w.VBox([self.cloud, self.service, self.scope, self.get_button, self.output])

    @staticmethod
    def _names(cloud: str) -> list[str]:
        from mi_helpers.clouds import services_in

        return [s.name for s in services_in(cloud)]

    @staticmethod
    def _name(service: str) -> str:
        from mi_helpers.clouds import SERVICES, resource_for

        rid = resource_for(service)
        return next(s.name for s in SERVICES if s.public == rid)

    def _update_scope(self) -> None:
        from mi_helpers.clouds import scope_for

        self.scope.value = scope_for(self.service.value, self.cloud.value)

    def _service_changed(self, _change: Any = None) -> None:
        if self._switching:
            return
        self.clear()  # the result on screen belonged to the previous choice
        self.token = None
        if self.service.value:
            self._update_scope()

    def _cloud_changed(self, _change: Any = None) -> None:
        from mi_helpers.clouds import cloud_info

        before = self.service.value
        names = self._names(self.cloud.value)
        keep = before if before in names else names[0]
        self._switching = True  # one clean-up below, not one per trait change
        try:
            self.service.options = names  # resets the value to the first option …
            self.service.value = keep  # … so choose again: the same service when the cloud offers it
        finally:
            self._switching = False
        self._update_scope()
        self.clear()
        self.token = None
        self._cloud_name = cloud_info(self.cloud.value).display_name
        if keep != before:
            self.say(
                f"ℹ {before} has no documented resource ID in the {self._cloud_name}, so it is not offered "
                f"there; showing {keep}."
            )

    def get_token(self, _button: Any = None) -> TokenInfo | None:
        """Ask the managed identity for a token for the chosen service and show its claims table."""
        import mi_helpers

        self.clear()
        self.token = None
        scope = self.scope.value
        self.say(f"get_token({scope!r}) …")
        tok, exc = self.call(lambda: mi_helpers.get_token(scope, progress=False))
        if exc is None:
            self.token = tok
            self.say(f"✓ a token for {tok.audience} (expires in {tok.expires_in} s); its claims:")
            self.show(tok.claims_table())
        return self.token


# --------------------------------------------------------------------------------------------------
# 05: the error-handling lab
# --------------------------------------------------------------------------------------------------


class ErrorLabView(View):
    """Scenario dropdown, Run, Apply the fix, Reset; raw error → diagnosis card → fix → retry until green.

    All logic lives in :class:`mi_helpers.notebook.error_lab.ErrorLab`; this view only wires buttons to it.
    The log reads top to bottom and the status line sits under it, so the verdict is always about the last
    thing above it. "Apply the fix" is enabled once a run has shown the failure; the progress bar appears
    only while a retry waits.
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
            layout=w.Layout(width="44em", max_width="100%"),
        )
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        self.fix_button = w.Button(
            description="Apply the fix",
            button_style="warning",
            icon="wrench",
            disabled=True,
            tooltip="Run first: the fix follows the diagnosis",
        )
        self.reset_button = w.Button(description="Reset", icon="undo")
        self.progress = w.FloatProgress(
            value=0.0,
            min=0.0,
            max=1.0,
            description="Retrying",
            style=_LABEL,
            layout=w.Layout(display="none"),
        )
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
                self.output,
                self.progress,
                self.status,
            ]
        )
        self._selected()

    def _set_status(self, ok: bool | None, text: str) -> None:
        import html

        symbol = {True: "✓ OK", False: "✗ FAILED", None: "…"}[ok]
        self.status_text = f"{symbol} — {text}"
        self.status.value = f"<b>{symbol}</b> — {html.escape(text)}"

    def _hide_progress(self) -> None:
        self.progress.value = 0.0
        self.progress.description = "Retrying"
        self.progress.layout.display = "none"

    def _on_progress(self, fraction: float, message: str) -> None:
        waiting = "retrying in" in message
        if waiting:
            self.progress.layout.display = None  # shown from the first wait on
        self.progress.value = max(0.0, min(1.0, fraction))
        if fraction >= 1.0 and self.progress.layout.display != "none":
            self.progress.description = "Done"
        if message:
            self.say(message)

    def _selected(self, _change: Any = None) -> None:
        self.clear()
        self._hide_progress()
        self.fix_button.disabled = True
        self.last = None
        _, exc = self.call(lambda: self.lab.select(self.scenario.value))
        if exc is None:
            info = self.lab.current
            compressed = f" {info.time_note}" if info.time_note else ""
            self.say(f"Scenario {info.name}: {info.lesson}{compressed}")
            self._set_status(None, "press Run")

    def _show_attempt(self, attempt: ErrorLabRun) -> None:
        if attempt.ok:
            self.say(f"✓ {attempt.summary}")
            self._set_status(True, attempt.summary)
            self.fix_button.disabled = True
        else:
            self.show(attempt.error_display)
            if attempt.diagnosis is not None:
                self.show(DiagnosisCard(attempt.diagnosis))
            self._set_status(False, f"diagnosis {attempt.diagnosis_id}; press “Apply the fix”")
            self.fix_button.disabled = False

    def run(self, _button: Any = None) -> ErrorLabRun | None:
        """Run the program (sign in + ARM query) in the selected scenario and show what happened."""
        self.clear()
        self._hide_progress()
        self.say(
            f"Running: sign in with the managed identity, then read the VM from ARM ({self.lab.current.name})"
        )
        attempt, _ = self.call(self.lab.run)
        if attempt is not None:
            self.last = attempt
            self._show_attempt(attempt)
        return self.last

    def apply_fix(self, _button: Any = None) -> ErrorLabRun | None:
        """Apply the scenario's fix, then run again (retrying with progress while errors are transient).

        Only after a run showed the failure (the fix follows the diagnosis); before that it says so.
        """
        if self.last is None or self.last.ok:
            self.say("Run the program first: the fix follows what the run shows.")
            return self.last
        self.fix_button.disabled = True
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

    def reset(self, _button: Any = None, *, quiet: bool = False) -> None:
        """Put the scenario back as it was (the fault armed again); ``quiet`` leaves out the reset line."""
        self._selected()
        if not quiet:
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
            self.clear()  # the report replaces the "running" line
            self.show(rep)
        return self.report


# --------------------------------------------------------------------------------------------------
# every notebook: check your understanding
# --------------------------------------------------------------------------------------------------


class Question(Protocol):
    """What the quiz view needs of a question (:class:`mi_helpers.notebook.quiz.Question`)."""

    @property
    def prompt(self) -> str: ...
    @property
    def choices(self) -> tuple[str, ...]: ...
    @property
    def why(self) -> str: ...
    @property
    def right(self) -> str: ...


class QuizView(View):
    """The questions of :mod:`mi_helpers.notebook.quiz`: pick an answer each, then check or reveal them."""

    def __init__(self, questions: Sequence[Question]) -> None:
        import html

        self.questions = tuple(questions)
        self.choices: list[w.RadioButtons] = []
        self.feedback: list[w.HTML] = []
        rows: list[w.Widget] = []
        for number, q in enumerate(self.questions, 1):
            radio = w.RadioButtons(  # each choice is the label of its own radio button
                options=list(q.choices), value=None, layout=w.Layout(width="auto", max_width="100%")
            )
            feedback = w.HTML(value="")
            self.choices.append(radio)
            self.feedback.append(feedback)
            rows += [w.HTML(f"<b>{number}. {html.escape(q.prompt)}</b>"), radio, feedback]
        wide = w.Layout(width="max-content")  # the default width cuts the label short
        self.check_button = w.Button(
            description="Check my answers", button_style="primary", icon="check", layout=wide
        )
        self.reveal_button = w.Button(description="Show the answers", icon="eye", layout=wide)
        self.check_button.on_click(self.check)
        self.reveal_button.on_click(self.reveal)
        self.output = w.Output()
        self.root = w.VBox([*rows, w.HBox([self.check_button, self.reveal_button]), self.output])

    def _mark(self, index: int, text: str) -> None:
        import html

        self.feedback[index].value = f"<span>{html.escape(text)}</span>"

    def check(self, _button: Any = None) -> int:
        """Mark each answer right or not (with why); returns how many are right."""
        right = 0
        for i, (q, radio) in enumerate(zip(self.questions, self.choices, strict=True)):
            if radio.value is None:
                self._mark(i, "– no answer yet")
            elif radio.value == q.right:
                right += 1
                self._mark(i, f"✓ Right: {q.why}")
            else:
                self._mark(i, f"✗ Not quite; try again, or show the answers. {q.why}")
        self.clear()
        self.say(f"{right} of {len(self.questions)} right.")
        return right

    def reveal(self, _button: Any = None) -> None:
        """Show the right answer of every question, with why."""
        for i, q in enumerate(self.questions):
            self._mark(i, f"Answer: {q.right} — {q.why}")
        self.clear()
        self.say("The answers are under each question.")

    def texts(self) -> str:
        """The feedback under each question and the output, as plain text."""
        import re

        marks = [re.sub(r"<[^>]+>", "", f.value) for f in self.feedback]
        return "\n".join([*marks, super().texts()])
