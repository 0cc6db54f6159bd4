"""The widget views, driven as a learner would: set ``.value``, ``.click()``, read ``view.output.outputs``.

Runs in this process against the package's embedded emulator; the error-lab view gets its own
:class:`~mi_helpers.notebook.error_lab.ErrorLab` (a private emulator), exactly as notebook 05 does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ipywidgets as w
import pytest
from support.tokens import whole_jwts
from support.world import OTHER_VM, RG, SUB, SYS_PRINCIPAL, UAMI_READER_CLIENT, VM

from mi_helpers.notebook.error_lab import ErrorLab
from mi_helpers.notebook.widgets import DoctorView, ErrorLabView, TokenForServiceView, VmIdentityView

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def healthy(emu: Any) -> Any:
    return emu


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
        SUB,
        RG,
        VM,
    )
    view.lookup_button.click()
    assert view.principal_id == SYS_PRINCIPAL
    assert f"✓ principalId of {VM}: {SYS_PRINCIPAL}" in view.texts()
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
    view.vm_name.value = OTHER_VM
    view.lookup()
    assert view.principal_id is None
    assert f"{OTHER_VM} has no system-assigned identity" in view.texts()


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
