"""How the notebooks show an error: the raw text as the SDK printed it, then the diagnosis card.

:class:`ErrorText`, :class:`Notice` and :class:`DiagnosisCard` are the displayable pieces (plain text and
HTML, never colour only) that :func:`show_errors`, the widgets and the error lab share; :func:`explain`
turns an exception into them. Every text shown is redacted: no piece ever carries a whole token.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mi_helpers.logs import quiet_sdk_logs
from mi_helpers.redaction import redact
from mi_helpers.validate import InputError

if TYPE_CHECKING:
    from mi_helpers.diagnosis import Diagnosis

__all__ = [
    "Caught",
    "DiagnosisCard",
    "ErrorText",
    "Notice",
    "display",
    "error_text",
    "explain",
    "sdk_error_text",
    "show_errors",
]


def error_text(exc: BaseException) -> str:
    """The error as the SDK shows it (``Type: message``), with any token redacted."""
    message = str(exc)
    return redact(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


def sdk_error_text(exc: BaseException) -> str:
    """The SDK's own error text: for a helper's ``SignInError`` that of the SDK exception it wraps."""
    original = getattr(exc, "original", None)
    return error_text(original if isinstance(original, BaseException) else exc)


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
            f'<pre style="white-space:pre-wrap;word-break:normal;overflow-wrap:anywhere;margin:4px 0">'
            f"{html.escape(self.text)}</pre></div>"
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


@dataclass(frozen=True)
class DiagnosisCard:
    """A :class:`~mi_helpers.diagnosis.Diagnosis` as a notebook shows it: its card in text and in HTML.

    The card itself is the Diagnosis's own rendering (``mi_helpers.diagnosis.render``); this wrapper only
    makes the plain-text form the whole card (a Diagnosis's ``repr`` is one line) and redacts once more.
    """

    diagnosis: Diagnosis

    @property
    def id(self) -> str:
        return self.diagnosis.id

    @property
    def title(self) -> str:
        return self.diagnosis.title

    def __str__(self) -> str:
        return redact(str(self.diagnosis))

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return redact(self.diagnosis._repr_html_())


def explain(
    exc: BaseException, context: Mapping[str, Any] | None = None
) -> list[ErrorText | Notice | DiagnosisCard]:
    """The displayables for an exception: a one-line notice for bad input, else raw text + diagnosis card.

    Two layers only: the SDK's own text (for a helper's ``SignInError``, that of the SDK exception it wraps;
    the helper's retries are the card's evidence), then the card. ``context`` (what the caller knows: names,
    IDs) goes to :func:`diagnose` with what :func:`mi_helpers.notebook.enrich.context_for` looks up.
    """
    from mi_helpers.diagnosis import diagnose
    from mi_helpers.notebook.enrich import context_for

    if isinstance(exc, InputError):
        return [Notice(f"InputError: {exc}", "✗")]
    known = {**(context_for(exc) or {}), **(context or {})}  # what the caller knows wins
    return [ErrorText(sdk_error_text(exc)), DiagnosisCard(diagnose(exc, context=known or None))]


@dataclass
class Caught:
    """What :func:`show_errors` saw: the exception (or None), its diagnosis and the rendered pieces."""

    error: BaseException | None = None
    diagnosis: Diagnosis | None = None
    shown: list[ErrorText | Notice | DiagnosisCard] = field(default_factory=list)

    @property
    def diagnosis_id(self) -> str | None:
        return None if self.diagnosis is None else self.diagnosis.id

    @property
    def ok(self) -> bool:
        return self.error is None


def caught(exc: BaseException, context: Mapping[str, Any] | None = None) -> Caught:
    """A :class:`Caught` for ``exc``: its pieces explained, its diagnosis (none for bad input) kept."""
    shown = explain(exc, context)
    cards = [item for item in shown if isinstance(item, DiagnosisCard)]
    return Caught(error=exc, diagnosis=cards[-1].diagnosis if cards else None, shown=shown)


def display(obj: Any) -> None:
    """IPython's ``display`` (IPython ships with ipywidgets, a dependency)."""
    from IPython.display import display as ipython_display

    ipython_display(obj)


@contextmanager
def show_errors(expect: str | None = None, context: Mapping[str, Any] | None = None) -> Iterator[Caught]:
    """Run a block that may fail on purpose: show the raw error text, then the diagnosis card.

    ``expect`` names the diagnosis id the lesson expects; a different one is pointed out (still no failure),
    so a learner notices when the world is not what the text describes. ``context`` is what the caller
    knows for the diagnosis (:class:`~mi_helpers.diagnosis.DiagnosisContext` fields). The SDK's own WARNING
    lines are quiet meanwhile (the card says it all).
    """
    result = Caught()
    try:
        with quiet_sdk_logs():
            yield result
    except Exception as exc:  # the lesson is the error: render it instead of failing the cell
        with quiet_sdk_logs():
            seen = caught(exc, context)
        result.error, result.diagnosis, result.shown = seen.error, seen.diagnosis, seen.shown
        for item in result.shown:
            display(item)
        if expect and result.diagnosis_id not in (None, expect):
            display(
                Notice(f"This lesson expected the diagnosis {expect!r}, got {result.diagnosis_id!r}.", "ℹ")
            )
    else:
        if expect:
            display(Notice(f"No error this time (the lesson expected {expect!r}).", "ℹ"))
