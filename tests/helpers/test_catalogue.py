"""The fix-recipe catalogue: every id documented, every recipe with commands for each shell, placeholders
filled from the context (and readable when it is not known), transient ids marked."""

from __future__ import annotations

from support.world import RG, SUB, SYS_PRINCIPAL, UAMI_READER_CLIENT, VM

from mi_helpers.diagnosis import DIAGNOSIS_IDS, diagnose
from mi_helpers.diagnosis.catalogue import CATALOGUE, Placeholders, recipe

REQUIRED_IDS = {
    "not-on-azure",
    "imds-unreachable",
    "imds-timeout",
    "missing-metadata-header",
    "identity-not-assigned",
    "user-assigned-selector-required",
    "identity-propagating",
    "imds-updating",
    "imds-throttled",
    "imds-server-error",
    "non-imds-response",
    "proxy-intercepts-imds",
    "legacy-extension-endpoint",
    "arm-authorization-failed",
    "role-propagating",
    "arm-wrong-audience",
    "arm-token-expired",
    "arm-resource-not-found",
    "arm-resource-group-not-found",
    "arm-subscription-not-found",
    "arm-throttled",
    "tls-untrusted",
    "unknown",
}


def test_catalogue_covers_required_ids() -> None:
    assert REQUIRED_IDS <= set(DIAGNOSIS_IDS)
    for did, entry in CATALOGUE.items():
        assert entry.docs.startswith("https://learn.microsoft.com/"), did
        assert entry.fix and entry.cause and entry.title, did
        cmds = entry.commands(Placeholders())
        assert set(cmds) == {"portal", "az", "powershell"}, did
        assert all(cmds.values()), did


def test_placeholders_without_context() -> None:
    d = diagnose("ERROR: Identity not found")
    assert "az vm identity assign -g <rg> -n <vm>" in d.commands["az"]
    d2 = diagnose("(AuthorizationFailed) nope\nCode: AuthorizationFailed")
    assert "--assignee-object-id <principalId>" in d2.commands["az"]


def test_commands_are_filled_from_the_context() -> None:
    context = {"subscription_id": SUB, "resource_group": RG, "vm_name": VM, "principal_id": SYS_PRINCIPAL}
    d = diagnose("(AuthorizationFailed) nope\nCode: AuthorizationFailed", context=context)
    assert f"--assignee-object-id {SYS_PRINCIPAL}" in d.commands["az"]
    assert f"--scope /subscriptions/{SUB}/resourceGroups/{RG}" in d.commands["az"]
    selector = recipe("user-assigned-selector-required").commands(Placeholders(client=UAMI_READER_CLIENT))
    assert f"--client-id {UAMI_READER_CLIENT}" in selector["az"]


def test_unknown_ids_fall_back_to_the_unknown_recipe() -> None:
    assert recipe("no-such-id") is CATALOGUE["unknown"]


def test_transient_ids_are_the_ones_that_pass_by_themselves() -> None:
    transient = {did for did, r in CATALOGUE.items() if r.transient}
    assert transient == {
        "identity-propagating",
        "role-propagating",
        "imds-updating",
        "imds-server-error",
        "imds-throttled",
        "arm-throttled",
        "imds-timeout",
        "data-role-propagating",
    }
