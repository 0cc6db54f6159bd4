"""What ``mi-helpers doctor`` reports: one :class:`Check` per line, and the :class:`DoctorReport` that renders
them as a text table, HTML and JSON (with the diagnosis card of every failed or warned check)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from mi_helpers.redaction import redact

if TYPE_CHECKING:
    from mi_helpers.diagnosis import Diagnosis

__all__ = ["FAIL", "PASS", "SKIP", "SYMBOLS", "WARN", "Check", "CheckStatus", "DoctorReport"]

#: How one check came out. ``warn``: it worked, but only after a transient fault or with a caveat.
CheckStatus = Literal["pass", "fail", "warn", "skip"]
PASS: Final = "pass"  # noqa: S105 - a status word, not a password
FAIL: Final = "fail"
WARN: Final = "warn"
SKIP: Final = "skip"
#: Shown next to the status word (never colour only).
SYMBOLS: dict[CheckStatus, str] = {PASS: "✓", FAIL: "✗", WARN: "!", SKIP: "–"}
_TABLE_DETAIL = 160  # characters of detail per line in the text table


@dataclass(frozen=True)
class Check:
    """One line of the checklist."""

    id: str
    title: str
    status: CheckStatus
    detail: str
    diagnosis: Diagnosis | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of one check (diagnosis reduced to id, cause, fix, az and PowerShell commands)."""
        d = self.diagnosis
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "detail": redact(self.detail),
            "diagnosis": None
            if d is None
            else {
                "id": d.id,
                "cause": d.cause,
                "fix": list(d.fix),
                "commands": {"az": d.commands.get("az", ""), "powershell": d.commands.get("powershell", "")},
            },
        }


@dataclass(frozen=True)
class DoctorReport:
    """The result of `doctor`: ``ok`` is True when every check passed."""

    target: str
    scenario: str | None
    ok: bool
    elapsed_s: float
    checks: tuple[Check, ...]
    budget: float = 15.0

    def to_dict(self) -> dict[str, Any]:
        """Exactly the keys ``target, scenario, ok, elapsed_s, checks``."""
        return {
            "target": self.target,
            "scenario": self.scenario,
            "ok": self.ok,
            "elapsed_s": round(self.elapsed_s, 3),
            "checks": [c.to_dict() for c in self.checks],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON (what ``mi-helpers doctor --json`` prints)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @property
    def diagnosis_ids(self) -> list[str]:
        """Ids of the diagnoses attached to failed or warned checks, in check order, without repeats."""
        out: list[str] = []
        for c in self.checks:
            if c.diagnosis is not None and c.status in (FAIL, WARN) and c.diagnosis.id not in out:
                out.append(c.diagnosis.id)
        return out

    def _summary(self) -> str:
        counts = {s: sum(1 for c in self.checks if c.status == s) for s in (PASS, WARN, FAIL, SKIP)}
        verdict = "all checks passed" if self.ok else "problems found"
        parts = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        return f"{verdict} ({parts}) in {self.elapsed_s:.1f} s of a {self.budget:g} s budget"

    def __str__(self) -> str:
        scen = f", scenario {self.scenario}" if self.scenario else ""
        lines = [f"mi-helpers doctor — target {self.target}{scen}"]
        width = max(len(c.title) for c in self.checks) if self.checks else 10
        for c in self.checks:
            detail = redact(c.detail)
            if len(detail) > _TABLE_DETAIL:  # the full text is in the JSON and in the card below
                detail = detail[: _TABLE_DETAIL - 1] + "…"
            lines.append(f" {SYMBOLS[c.status]} {c.status:<4}  {c.title:<{width}}  {detail}")
        lines.append(self._summary())
        for c in self.checks:
            if c.diagnosis is not None and c.status in (FAIL, WARN):
                lines.append("")
                lines.append(f"[{c.status}] {c.title}")
                lines.append(str(c.diagnosis))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"DoctorReport(target={self.target!r}, scenario={self.scenario!r}, ok={self.ok}, "
            f"checks={len(self.checks)})"
        )

    def _repr_html_(self) -> str:
        e = html.escape
        rows = "".join(
            f"<tr><td>{SYMBOLS[c.status]} <strong>{e(c.status)}</strong></td><td>{e(c.title)}</td>"
            f"<td>{e(redact(c.detail))}</td><td>{e(c.diagnosis.id) if c.diagnosis else ''}</td></tr>"
            for c in self.checks
        )
        cards = "".join(
            c.diagnosis._repr_html_()
            for c in self.checks
            if c.diagnosis is not None and c.status in (FAIL, WARN)
        )
        scen = f", scenario <code>{e(self.scenario)}</code>" if self.scenario else ""
        return (
            f"<div class='mi-doctor'><p><strong>mi-helpers doctor</strong> — target "
            f"<code>{e(self.target)}</code>{scen}</p>"
            "<table><thead><tr><th>Status</th><th>Check</th><th>Detail</th><th>Diagnosis</th></tr></thead>"
            f"<tbody>{rows}</tbody></table><p><strong>Result:</strong> {e(self._summary())}</p>{cards}</div>"
        )
