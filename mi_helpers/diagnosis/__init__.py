"""Turn a managed-identity failure into a :class:`Diagnosis`: what happened, why, and how to fix it.

:func:`diagnose` reads what the real clients produce (:mod:`.facts`) and maps it to a stable id of the
failure-mode catalogue (:mod:`.catalogue`) with ordered rules (:mod:`.rules`); ``context``
(:class:`DiagnosisContext`, :mod:`.context`) supplies what the caller knows where text alone cannot decide.
:func:`environment_traps` (:mod:`.traps`) lists environment settings that silently change where a
managed-identity token request goes. A Diagnosis renders itself as a card (:mod:`.render`).

Nothing here touches the network, and no token is ever shown whole: server texts are redacted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mi_helpers.diagnosis import catalogue, dataplane
from mi_helpers.diagnosis.context import DiagnosisContext, input_error, scope_covers
from mi_helpers.diagnosis.facts import collect
from mi_helpers.diagnosis.render import Diagnosis, evidence_of
from mi_helpers.diagnosis.rules import classify, findings
from mi_helpers.diagnosis.stale import deleted_principal_ids
from mi_helpers.diagnosis.traps import Trap, environment_traps
from mi_helpers.redaction import redact_text

__all__ = [
    "DIAGNOSIS_IDS",
    "Diagnosis",
    "DiagnosisContext",
    "Trap",
    "deleted_principal_ids",
    "diagnose",
    "diagnosis_for",
    "environment_traps",
    "redact_text",
    "scope_covers",
]

catalogue.CATALOGUE.update(dataplane.RECIPES)  # the data-plane ids (Key Vault, Blob storage)

#: Every id :func:`diagnose` can answer, in catalogue order.
DIAGNOSIS_IDS: tuple[str, ...] = tuple(catalogue.CATALOGUE)


def _build(did: str, ctx: DiagnosisContext, evidence: dict[str, Any]) -> Diagnosis:
    recipe = catalogue.recipe(did)
    return Diagnosis(
        id=did,
        title=recipe.title,
        cause=recipe.cause,
        evidence=evidence,
        fix=recipe.fix,
        commands=recipe.commands(catalogue.Placeholders.from_context(ctx.as_placeholders())),
        docs=recipe.docs,
    )


def diagnose(
    exc_or_result: BaseException | str | Mapping[str, Any] | Any,
    *,
    context: DiagnosisContext | Mapping[str, Any] | None = None,
) -> Diagnosis:
    """Name the failure in ``exc_or_result`` and say how to fix it.

    Accepts an exception (its cause chain is read too), an az CLI / PowerShell / SDK message string, an
    IMDS/MSAL error dict or ARM error envelope, or a response-like object with ``status_code``. ``context``
    (a :class:`DiagnosisContext` or a dict of its fields) fills the commands with real names and settles
    what text alone cannot (propagation, off-Azure, proxies).
    """
    if isinstance(exc_or_result, Diagnosis):
        return exc_or_result
    ctx = DiagnosisContext.coerce(context)
    facts = collect(exc_or_result, ctx)
    did = classify(facts, ctx)
    extra, ctx = findings(did, facts, ctx)
    return _build(did, ctx, {**extra, **evidence_of(facts, exc_or_result)})


def diagnosis_for(
    diagnosis_id: str, *, context: Any = None, evidence: Mapping[str, Any] | None = None
) -> Diagnosis:
    """Build the :class:`Diagnosis` for a known id directly (the doctor's findings without an error)."""
    if diagnosis_id not in catalogue.CATALOGUE:
        raise input_error("diagnosis_id", "one of " + ", ".join(DIAGNOSIS_IDS))
    ev = {k: (redact_text(v) if isinstance(v, str) else v) for k, v in (evidence or {}).items()}
    return _build(diagnosis_id, DiagnosisContext.coerce(context), ev)
