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
from mi_helpers.validate import InputError

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


def test_vm_view_without_identity_gets_its_own_card(healthy):
    view = VmIdentityView(prefill=True)
    view.vm_name.value = OTHER_VM
    view.lookup()
    assert view.principal_id is None
    text = view.texts()
    assert f"{OTHER_VM} has no system-assigned identity" in text
    assert "[vm-without-identity]" in text
    assert f"az vm identity assign -g {RG} -n {OTHER_VM}" in text  # the card names the VM looked up
    assert "IMDS answered" not in text  # IMDS was never asked: ARM showed an empty identity block


def test_vm_view_enter_in_a_field_looks_up(healthy):
    view = VmIdentityView()
    view.vm_name.value = VM
    view.vm_name._handle_custom_msg({"event": "submit"}, [])  # what the front end sends on Enter
    assert view.principal_id == SYS_PRINCIPAL
    view.resource_group._handle_custom_msg({"event": "keypress"}, [])  # anything else does nothing
    assert f"principalId of {VM}" in view.texts()


def test_vm_view_fields_line_up(healthy):
    view = VmIdentityView()
    widths = {t.style.description_width for t in (view.subscription, view.resource_group, view.vm_name)}
    assert len(widths) == 1 and widths != {"initial"}


def test_vm_view_long_input_is_not_echoed_whole(healthy):
    view = VmIdentityView()
    view.vm_name.value = "a" * 300
    view.lookup()
    text = view.texts()
    assert "a" * 64 not in text  # the one-line error names the field; the 300 a's are not repeated
    assert text.strip().startswith("✗ InputError: vm_name:")


def test_vm_view_wrong_group_says_check_the_name_first(healthy):
    view = VmIdentityView()
    view.resource_group.value = "rg-nope"
    view.lookup()
    text = view.texts()
    assert "(AuthorizationFailed)" in text
    assert "[arm-scope-not-visible]" in text
    assert f"the identity can see the resource group(s) {RG}; 'rg-nope' is not among them" in text
    fix = text.split("Fix:", 1)[1]
    assert fix.index("Check the resource group name") < fix.index("grant Reader")


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


def test_token_view_offers_only_what_the_cloud_documents(healthy):
    from mi_helpers.clouds import services_in

    view = TokenForServiceView(service="Event Hubs", cloud="public")
    for cloud in ("usgov", "china", "public"):
        view.cloud.value = cloud
        assert list(view.service.options) == [s.name for s in services_in(cloud)]
        for name in view.service.options:  # every choice the form offers has a scope: no InputError
            view.service.value = name
            assert view.scope.value.endswith("/.default"), (cloud, name)
    view.service.value = "Event Hubs"
    view.cloud.value = "usgov"  # not offered there: the form says so and picks another service
    assert view.service.value == "Azure Resource Manager"
    assert "Event Hubs has no documented resource ID in the Azure US Government" in view.texts()
    with pytest.raises(InputError, match=r"^service: Event Hubs has no documented resource ID"):
        TokenForServiceView(service="Event Hubs", cloud="usgov")  # asked for in code: one line


def test_token_view_clears_the_result_when_the_choice_changes(healthy):
    view = TokenForServiceView(service="Storage")
    view.get_token()
    assert view.token is not None and "storage.azure.com" in view.texts()
    view.service.value = "Key Vault"
    assert view.token is None and view.output.outputs == ()
    view.get_token()
    texts = view.texts()
    lines = [line for line in texts.splitlines() if line.strip()]
    assert lines[1].startswith("✓ a token for https://vault.azure.net"), lines
    assert "TokenInfo(" not in texts  # a line and the claims table, not a raw repr


# --------------------------------------------------------------------------------------------------
# ErrorLabView (notebook 05) and the lab behind it
# --------------------------------------------------------------------------------------------------


def test_lab_view_run_fix_green_and_reset(lab):
    view = ErrorLabView(lab, scenario="no-role-assignment")
    _labelled(view)
    assert view.fix_button.disabled  # the fix follows a run that shows the failure
    assert view.progress.layout.display == "none"  # no bar (and no "Done") before anything ran
    children = list(view.root.children)
    assert children.index(view.status) > children.index(view.output)  # the verdict under the log
    view.run_button.click()
    assert not view.fix_button.disabled
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
    assert view.fix_button.disabled and view.progress.layout.display == "none"  # green at once: no bar
    assert "(stopped every fault" not in view.texts() and "principalId None" not in view.texts()

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
    assert view.progress.layout.display != "none" and view.progress.description == "Done"
    assert "retrying in" in view.texts()


def test_lab_view_apply_the_fix_before_run_does_nothing(lab):
    view = ErrorLabView(lab, scenario="no-role-assignment")
    assert view.apply_fix() is None
    assert "Run the program first" in view.texts()
    view.run()
    assert not view.last.ok  # the fault is still there: nothing was fixed behind the learner's back


def test_lab_view_says_when_time_is_compressed(lab):
    view = ErrorLabView(lab, scenario="imds-updating")
    assert "(time compressed: 70 s → 1.5 s)" in view.texts()


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


# --------------------------------------------------------------------------------------------------
# Check your understanding (every notebook)
# --------------------------------------------------------------------------------------------------


def test_every_notebook_has_a_quiz_with_one_right_answer_each():
    from mi_helpers.notebook.quiz import QUIZZES

    assert sorted(QUIZZES) == ["00", "01", "02", "03", "04", "05", "06", "07"]
    for key, questions in QUIZZES.items():
        assert len(questions) >= 3, key
        for q in questions:
            assert 0 <= q.answer < len(q.choices) and len(set(q.choices)) == len(q.choices), q.prompt
            assert q.why and q.prompt.endswith("?"), q.prompt


def test_quiz_answers_that_are_package_facts_are_the_packages():
    from mi_helpers.clouds import CLOUDS, scope_for
    from mi_helpers.notebook.quiz import QUIZZES

    assert QUIZZES["03"][0].right == scope_for("key vault") == "https://vault.azure.net/.default"
    assert QUIZZES["03"][2].right == CLOUDS["usgov"].arm_scope


def test_quiz_view_checks_and_reveals():
    from mi_helpers.notebook import check_understanding

    quiz = check_understanding("01")
    _labelled_quiz = [b.description for b in (quiz.check_button, quiz.reveal_button)]
    assert all(_labelled_quiz)
    assert quiz.check() == 0 and "– no answer yet" in quiz.texts()
    first, second = quiz.questions[0], quiz.questions[1]
    quiz.choices[0].value = first.right
    quiz.choices[1].value = next(c for c in second.choices if c != second.right)
    assert quiz.check() == 1
    marks = quiz.texts().splitlines()
    assert marks[0].startswith("✓ Right") and marks[1].startswith("✗ Not quite")
    assert "1 of 3 right." in quiz.texts()
    quiz.reveal()
    assert quiz.texts().splitlines()[1].startswith(f"Answer: {second.right}")
    with pytest.raises(InputError, match=r"^notebook: '99' has no quiz"):
        check_understanding("99")


def test_vm_view_cards_name_what_the_fields_say(healthy):
    view = VmIdentityView()
    view.vm_name.value = "vm-nope"
    view.lookup()
    card = view.output.outputs[-1]["data"]["text/plain"]
    assert f"az vm list -g {RG} -o table" in card and "az resource list -n vm-nope -o table" in card
    assert "<rg>" not in card and "<vm>" not in card


def test_lab_view_check_again_after_fixing_it_yourself_as_the_operator(lab):
    """The learner makes the fix (here: the Python SDK as the operator), then presses "Check again"."""
    from azure.identity import ClientSecretCredential
    from azure.mgmt.authorization import AuthorizationManagementClient
    from azure.mgmt.authorization.models import RoleAssignmentCreateParameters

    from mi_helpers.constants import EnvironmentVariables as Env

    view = ErrorLabView(lab, scenario="no-role-assignment")
    assert view.check_button.disabled
    view.run_button.click()
    assert not view.last.ok and not view.check_button.disabled
    view.check_button.click()
    assert not view.last.ok  # nothing fixed yet: the same 403
    env = lab.emulator.environment()
    operator = ClientSecretCredential(
        env[Env.MI_HELPERS_TENANT_ID],
        env[Env.MI_HELPERS_OPERATOR_CLIENT_ID],
        env[Env.MI_HELPERS_OPERATOR_CLIENT_SECRET],
        authority=env[Env.MI_HELPERS_ENTRA_URL],
        disable_instance_discovery=True,
        connection_verify=lab.emulator.ca_bundle,
    )
    world = lab.emulator.world_dict()
    host = next(v for v in world["virtual_machines"] if v["name"] == world["host_vm"]["name"])
    sub, rg = host["subscription_id"], host["resource_group"]
    client = AuthorizationManagementClient(
        operator, sub, base_url=lab.emulator.arm_url, connection_verify=lab.emulator.ca_bundle
    )
    client.role_assignments.create(
        f"/subscriptions/{sub}/resourceGroups/{rg}",
        "6a1f0c9e-0000-4000-8000-0000000000c1",
        RoleAssignmentCreateParameters(
            role_definition_id=f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/"
            "acdd72a7-3385-48ef-bd42-f606fba81ae7",
            principal_id=host["system_identity"]["principal_id"],
            principal_type="ServicePrincipal",
        ),
    )
    view.check_button.click()
    assert view.last.ok, view.texts()
    assert view.check_button.disabled and view.status_text.startswith("✓ OK")
