"""The widget views, driven as a learner would: set ``.value``, ``.click()``, read ``view.output.outputs``.

Runs in this process against the embedded emulator (``mi.use_emulator``); the lab views get their own
:class:`~mi_helpers.notebook.error_lab.ErrorLab` (a private emulator), exactly as notebook 05 does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import ipywidgets as w
import pytest
from support.targets import own_emulator
from support.tokens import whole_jwts
from support.world import RG as RESOURCE_GROUP
from support.world import SUB as SUBSCRIPTION
from support.world import SYS_PRINCIPAL as SYSTEM_PRINCIPAL
from support.world import UAMI_READER_CLIENT
from support.world import VM as VM_NAME

import mi_helpers as mi
from mi_helpers.notebook.error_lab import ErrorLab
from mi_helpers.notebook.widgets import DoctorView, ErrorLabView, TokenForServiceView, VmIdentityView

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def emulator() -> Iterator[object]:
    """This process on an embedded emulator of its own in ``healthy`` (target state isolated)."""
    with own_emulator("healthy") as control:
        yield control


@pytest.fixture
def healthy(emulator) -> object:
    emulator.set_scenario("healthy")
    return emulator


@pytest.fixture(scope="module")
def lab() -> Iterator[ErrorLab]:
    with ErrorLab(budget=6.0) as the_lab:
        yield the_lab


def _kinds(view) -> list[str]:
    return [o["output_type"] for o in view.output.outputs]


def _all_widgets(root: w.Widget) -> list[w.Widget]:
    out = [root]
    for child in getattr(root, "children", ()):
        out.extend(_all_widgets(child))
    return out


def _labelled(view) -> None:
    for widget in _all_widgets(view.root):
        if isinstance(widget, w.Button):
            assert widget.description.strip(), "every button has text"
        elif isinstance(widget, (w.Text, w.Dropdown)):
            assert widget.description.strip(), "every input has a label"


# --------------------------------------------------------------------------------------------------
# VmIdentityView (notebook 02)
# --------------------------------------------------------------------------------------------------


def test_vm_view_prefills_from_instance_metadata_and_looks_up(healthy):
    view = VmIdentityView()
    _labelled(view)
    assert (view.subscription.value, view.resource_group.value, view.vm_name.value) == (
        SUBSCRIPTION,
        RESOURCE_GROUP,
        VM_NAME,
    )
    view.lookup_button.click()
    assert view.principal_id == SYSTEM_PRINCIPAL
    assert f"✓ principalId of {VM_NAME}: {SYSTEM_PRINCIPAL}" in view.texts()
    assert set(_kinds(view)) == {"stream"}


def test_vm_view_wrong_name_shows_raw_error_then_diagnosis(healthy):
    view = VmIdentityView()
    view.vm_name.value = "vm-nope"
    view.lookup_button.click()
    assert view.principal_id is None
    kinds = _kinds(view)
    assert kinds == ["stream", "display_data", "display_data"]  # request line, raw error, diagnosis card
    raw, card = (o["data"] for o in view.output.outputs[1:])
    assert "(ResourceNotFound)" in raw["text/plain"] and "vm-nope" in raw["text/plain"]
    assert "[arm-resource-not-found]" in card["text/plain"]
    assert "Diagnosis" in card["text/html"] and "Fix" in card["text/html"]  # text, not colour only


def test_vm_view_bad_name_is_one_line_without_a_request(healthy):
    healthy.clear_log()
    view = VmIdentityView()
    view.vm_name.value = "bad name!"
    view.lookup_button.click()
    lines = [ln for ln in view.texts().splitlines() if ln.strip()]
    assert lines[-1].startswith("✗ InputError: vm_name:")
    assert "Traceback" not in view.texts() and "Diagnosis" not in view.texts()
    log = healthy.request_log()
    assert any(r["path"].startswith("/metadata/instance") for r in log)  # the prefill was recorded …
    assert [r for r in log if "virtualMachines/bad" in r["path"]] == []  # … the bad name never sent


def test_vm_view_without_identity(healthy):
    view = VmIdentityView(prefill=True)
    view.vm_name.value = "vm-build-agent"
    view.lookup()
    assert view.principal_id is None
    assert "vm-build-agent has no system-assigned identity" in view.texts()


# --------------------------------------------------------------------------------------------------
# TokenForServiceView (notebook 03)
# --------------------------------------------------------------------------------------------------


def test_token_view_shows_the_audience_of_the_chosen_service(healthy):
    view = TokenForServiceView()
    _labelled(view)
    view.service.value = "Key Vault"
    view.cloud.value = "public"
    assert view.scope.value == "https://vault.azure.net/.default"
    view.get_button.click()
    assert view.token is not None
    assert view.token.claims["aud"] == "https://vault.azure.net"
    table = view.output.outputs[-1]["data"]["text/html"]
    assert "https://vault.azure.net" in table and "<td>aud</td>" in table
    assert whole_jwts(view.texts() + table) == []


def test_token_view_cloud_changes_the_scope(healthy):
    view = TokenForServiceView(service="kv", cloud="usgov")  # aliases name the same service
    assert view.service.value == "Key Vault"
    assert view.scope.value == "https://vault.usgovcloudapi.net/.default"
    view.cloud.value = "china"
    assert view.scope.value == "https://vault.azure.cn/.default"


def test_token_view_service_missing_in_a_cloud_is_one_line(healthy):
    view = TokenForServiceView(service="Event Hubs", cloud="usgov")
    assert view.scope.value.startswith("(none:")
    view.get_button.click()
    assert view.token is None
    text = view.texts()
    assert text.strip().startswith("✗ InputError: service:")
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------------------
# ErrorLabView (notebook 05) and the lab behind it
# --------------------------------------------------------------------------------------------------


def test_lab_view_run_fix_green_and_reset(lab):
    view = ErrorLabView(lab, scenario="no-role-assignment")
    _labelled(view)
    view.run_button.click()
    assert view.last is not None and not view.last.ok
    assert view.status_text.startswith("✗ FAILED")
    outputs = view.output.outputs
    raw = next(o["data"]["text/plain"] for o in outputs if o["output_type"] == "display_data")
    assert raw.startswith(
        "✗ Error (raw text, exactly as the SDK shows it)\nHttpResponseError: (AuthorizationFailed)"
    )
    assert any("[arm-authorization-failed]" in o.get("data", {}).get("text/plain", "") for o in outputs)

    view.fix_button.click()
    assert view.last.ok, view.texts()
    assert view.status_text.startswith("✓ OK")
    assert "Fix applied: grant Reader" in view.texts()

    view.reset_button.click()
    assert "back to its broken state" in view.texts()
    view.run_button.click()
    assert not view.last.ok  # the fault is armed again


def test_lab_view_transient_error_retries_with_progress(lab):
    view = ErrorLabView(lab, scenario="imds-server-error")
    view.run()
    assert view.last.diagnosis_id == "imds-server-error"
    assert "(unknown) Failed to retrieve token from the Active directory" in view.texts()
    view.apply_fix()
    assert view.last.ok and view.last.tries >= 2
    assert view.progress.value == 1.0
    assert "retrying in" in view.texts()


def test_lab_view_client_side_fix_names_the_identity(lab):
    view = ErrorLabView(lab)
    view.scenario.value = "multiple-user-assigned"  # selecting re-arms the scenario
    view.run()
    assert view.last.diagnosis_id == "user-assigned-selector-required"
    view.apply_fix()
    assert view.last.ok
    assert f"client_id={UAMI_READER_CLIENT}" in view.last.summary


def test_lab_walk_reports_one_row_per_scenario(lab):
    table = lab.walk(["legacy-extension-endpoint", "expired-token"])
    assert list(table["scenario"]) == ["legacy-extension-endpoint", "expired-token"]
    assert list(table["diagnosis id"]) == ["legacy-extension-endpoint", "arm-token-expired"]
    assert table["fixed"].tolist() == [True, True]
    # The refused connection names the old extension's endpoint: port 50342, or the reserved stand-in the
    # emulator uses when another process on this machine already holds 50342.
    seen = table["error seen"].iloc[0]
    assert "Connection refused" in seen
    assert re.search(r"host='localhost', port=\d+\)", seen), seen
    assert "MSI_ENDPOINT" not in os.environ  # the scenario's client variables never leak out of a run


def test_lab_rejects_unknown_scenarios_in_one_line(lab):
    with pytest.raises(mi.InputError, match=r"^scenario: 'nope' is not a lab scenario"):
        lab.walk(["nope"])


def test_lab_uses_its_own_emulator(lab, healthy):
    assert lab.emulator is not healthy
    assert lab.emulator.imds_url != mi.target().imds_url


# --------------------------------------------------------------------------------------------------
# DoctorView (notebook 06)
# --------------------------------------------------------------------------------------------------


def test_doctor_view_renders_the_checklist(healthy):
    view = DoctorView(budget=10)
    _labelled(view)
    view.run_button.click()
    assert view.report is not None and view.report.ok
    html = view.output.outputs[-1]["data"]["text/html"]
    assert "✓" in html and "pass" in html
    assert whole_jwts(html) == []


def test_doctor_view_shows_a_failing_check_with_its_diagnosis(healthy):
    healthy.set_scenario("no-role-assignment")
    view = DoctorView(budget=10)
    view.run()
    assert view.report is not None and not view.report.ok
    html = view.output.outputs[-1]["data"]["text/html"]
    assert "✗" in html and "fail" in html and "arm-authorization-failed" in html


# --------------------------------------------------------------------------------------------------
# The notebook helpers the views and notebooks share (mi_helpers.notebook)
# --------------------------------------------------------------------------------------------------


def test_stack_check_flags_a_package_that_is_too_old(monkeypatch, capsys):
    from mi_helpers import notebook

    real_version = notebook.md.version

    def fake_version(name: str) -> str:
        return "1.0.0" if name == "azure-identity" else real_version(name)

    table = notebook.stack_check()
    assert "✓ The stack is right" in capsys.readouterr().out
    assert table["ok"].all()
    monkeypatch.setattr(notebook.md, "version", fake_version)
    table = notebook.stack_check()
    out = capsys.readouterr().out
    assert out.startswith("✗ 1 package(s) missing or too old: azure-identity")
    row = table.set_index("package").loc["azure-identity"]
    assert row["installed"] == "1.0.0" and not row["ok"]


def test_show_errors_bad_input_is_one_line(capsys):
    from mi_helpers.notebook import show_errors

    with show_errors() as caught:
        mi.get_token("arm", client_id="not-a-guid")
    out = capsys.readouterr().out
    assert out.strip().splitlines() == [f"✗ InputError: {caught.error}"]
    assert str(caught.error).startswith("client_id: ")
    assert caught.diagnosis is None and not caught.ok


def test_show_errors_renders_raw_text_then_diagnosis_and_flags_surprises(healthy, capsys):
    from mi_helpers.notebook import show_errors

    with show_errors(expect="arm-wrong-audience") as caught:
        mi.vm_principal_id(SUBSCRIPTION, RESOURCE_GROUP, "vm-nope")
    out = capsys.readouterr().out
    raw_at = out.index("(ResourceNotFound)")
    card_at = out.index("[arm-resource-not-found]")
    assert raw_at < card_at  # the raw error first, then the diagnosis
    assert "expected the diagnosis 'arm-wrong-audience', got 'arm-resource-not-found'" in out
    assert caught.diagnosis_id == "arm-resource-not-found"
    with show_errors(expect="arm-resource-not-found") as fine:
        mi.vm_principal_id(SUBSCRIPTION, RESOURCE_GROUP, VM_NAME)
    assert fine.ok and "No error this time" in capsys.readouterr().out


def test_setup_rejects_an_unknown_target():
    from mi_helpers.notebook import setup

    with pytest.raises(mi.InputError, match=r"^target: 'cloud' is not a target"):
        setup("cloud")
