"""02-query-arm-for-the-vm-identity in JupyterLab: the VM-identity form, a missing VM, then the real one."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

MISSING_VM = "vm-does-not-exist"


def test_vm_identity_form_not_found_then_principal_id(lab_page: Any, lab: Any) -> None:
    host = lab.emulator.world_dict()["host_vm"]["name"]
    vm = next(v for v in lab.emulator.world_dict()["virtual_machines"] if v["name"] == host)
    principal_id = vm["system_identity"]["principal_id"]

    lab_page.open("02-query-arm-for-the-vm-identity")
    lab_page.run_all(last_cell_text='vm_name="my vm!"')
    form = lab_page.code_cell("view = VmIdentityView()").first.locator(".jp-Cell-outputArea")
    vm_name = form.get_by_role("textbox", name="VM name")
    button = lab_page.button(form, "Look up principal id")
    output = form.locator(".widget-output")
    expect(vm_name).to_have_value(host)  # prefilled from instance metadata
    expect(form.get_by_role("textbox", name="Resource group")).to_have_value(vm["resource_group"])
    expect(form.get_by_role("textbox", name="Subscription ID")).to_have_value(vm["subscription_id"])
    lab_page.assert_accessible(form)

    vm_name.fill(MISSING_VM)
    button.click()
    card = output.locator(".mi-diagnosis")
    expect(card).to_contain_text("[arm-resource-not-found]")
    expect(output).to_contain_text("ResourceNotFound")  # the raw ARM error comes before the card
    expect(card).to_contain_text("Cause:")
    expect(card).to_contain_text("Fix:")
    expect(output).not_to_contain_text(principal_id)
    lab_page.screenshot("02-not-found.png", form)

    vm_name.fill(host)
    button.click()
    expect(output).to_contain_text(f"principalId of {host}: {principal_id}")
    expect(card).to_have_count(0)  # each press starts from a clean output
    lab_page.assert_accessible(form)
    lab_page.screenshot("02-principal-id.png", form)
