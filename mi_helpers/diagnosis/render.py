"""A :class:`Diagnosis` and how it reads: the card as text and as HTML (the one renderer), and the evidence.

The evidence is what the failure itself showed (status, error code, the server's words, the exception
chain, the attempts), built from :class:`~.facts.Facts` and redacted before it is stored.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mi_helpers.diagnosis.context import get_field
from mi_helpers.diagnosis.facts import Facts
from mi_helpers.redaction import redact_text

__all__ = ["Diagnosis", "evidence_of"]

_COMMAND_LABELS = (("portal", "Portal"), ("az", "az / shell"), ("powershell", "PowerShell"))


@dataclass(frozen=True)
class Diagnosis:
    """A named failure mode with its cause, the evidence seen, and ordered fix steps and commands."""

    id: str
    title: str
    cause: str
    evidence: dict[str, Any]
    fix: tuple[str, ...]
    commands: dict[str, str]
    docs: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (every text already redacted)."""
        return {
            "id": self.id,
            "title": self.title,
            "cause": self.cause,
            "evidence": dict(self.evidence),
            "fix": list(self.fix),
            "commands": dict(self.commands),
            "docs": self.docs,
        }

    def _evidence_lines(self) -> list[str]:
        labels = {
            "finding": "Finding",
            "status": "HTTP status",
            "error_code": "Error code",
            "server_text": "Server said",
            "exception": "Exception",
            "url": "URL",
            "attempts": "Attempts",
            "elapsed_s": "Elapsed (s)",
            "selector": "Identity selector",
            "environment": "Environment",
        }
        out = []
        for key, label in labels.items():
            val = self.evidence.get(key)
            if val in (None, "", [], {}):
                continue
            if key == "attempts" and isinstance(val, list):
                val = _attempts_text(val)
            out.append(f"{label}: {val}")
        return out

    def __str__(self) -> str:
        lines = [f"Diagnosis [{self.id}]: {self.title}", f"Cause: {self.cause}"]
        ev = self._evidence_lines()
        if ev:
            lines.append("Evidence:")
            lines.extend(f"  - {e}" for e in ev)
        lines.append("Fix:")
        lines.extend(f"  {i}. {step}" for i, step in enumerate(self.fix, 1))
        for key, label in _COMMAND_LABELS:
            if self.commands.get(key):
                lines.append(f"{label}:")
                lines.extend(f"    {c}" for c in self.commands[key].splitlines())
        lines.append(f"Docs: {self.docs}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Diagnosis(id={self.id!r}, title={self.title!r})"

    def _repr_html_(self) -> str:
        e = html.escape
        ev = "".join(f"<li>{e(x)}</li>" for x in self._evidence_lines())
        steps = "".join(f"<li>{e(s)}</li>" for s in self.fix)
        cmds = "".join(
            f"<p><strong>{e(label)}:</strong></p><pre style='white-space:pre-wrap;word-break:normal;"
            "overflow-wrap:anywhere;"
            "margin:0 0 0.5em 1em'>"
            f"{e(self.commands[key])}</pre>"
            for key, label in _COMMAND_LABELS
            if self.commands.get(key)
        )
        return (
            "<div class='mi-diagnosis' role='note' style='border:1px solid #b00;border-left:6px solid #b00;"
            "padding:0.5em 1em;margin:0.5em 0;overflow-wrap:anywhere'>"
            f"<p><strong>Diagnosis:</strong> {e(self.title)} <code>[{e(self.id)}]</code></p>"
            f"<p><strong>Cause:</strong> {e(self.cause)}</p>"
            + (f"<p><strong>Evidence:</strong></p><ul>{ev}</ul>" if ev else "")
            + f"<p><strong>Fix:</strong></p><ol>{steps}</ol>"
            f"{cmds}"
            f"<p><strong>Docs:</strong> <a href='{e(self.docs)}' target='_blank' rel='noopener'>"
            f"{e(self.docs)}</a></p></div>"
        )


def _attempts_summary(attempts: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for a in attempts:
        item = {
            "status": get_field(a, "status"),
            "kind": get_field(a, "kind"),
            "time": get_field(a, "time") if get_field(a, "time") is not None else get_field(a, "started"),
            "retry_after": get_field(a, "retry_after"),
        }
        if isinstance(item["time"], float):
            item["time"] = round(item["time"], 3)
        out.append({k: v for k, v in item.items() if v is not None} or {"status": None})
    return out[:20]


def _attempts_text(attempts: list[dict[str, Any]]) -> str:
    """``400 identity-not-found @0.0 s → 200 @0.6 s`` (status ``-`` = no HTTP answer)."""
    parts = []
    for a in attempts:
        text = str(a.get("status") if a.get("status") is not None else "-")
        if a.get("kind") and a.get("kind") != "ok":
            text += f" {a['kind']}"
        if isinstance(a.get("time"), (int, float)):
            text += f" @{a['time']:.1f} s"
        if a.get("retry_after") is not None:
            text += f" (Retry-After {a['retry_after']})"
        parts.append(text)
    return " → ".join(parts)


def evidence_of(facts: Facts, subject: Any) -> dict[str, Any]:
    """The evidence a Diagnosis shows for ``facts`` (redacted; keys without a value left out)."""
    status = next((s for s in reversed(facts.statuses) if s != 200), None)
    code = facts.arm_code or facts.oauth_error
    server = facts.arm_message or facts.oauth_description or facts.body
    if not server and facts.texts:
        server = facts.texts[0]
    ev: dict[str, Any] = {
        "status": status,
        "error_code": code,
        "server_text": redact_text(server.strip()) if server else None,
        "exception": " ← ".join(facts.types[:4])
        if facts.types and isinstance(subject, BaseException)
        else None,
        "url": redact_text(facts.url, 300) if facts.url else None,
        "attempts": _attempts_summary(facts.attempts) if facts.attempts else None,
        "elapsed_s": round(facts.elapsed_s, 3) if facts.elapsed_s is not None else None,
        "selector": redact_text(facts.selector, 200) if facts.selector else None,
    }
    return {k: v for k, v in ev.items() if v is not None}
