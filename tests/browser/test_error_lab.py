"""05-error-handling-lab in JupyterLab: no-role-assignment → 403 + diagnosis → apply the fix → success.

Running the whole notebook would walk every scenario and close the lab's emulator at the end, so the test
runs the cells above the lab form and the form's cell only: the form starts as a learner finds it.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Locator, expect

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


def _choose(dropdown: Locator, scenario: str) -> None:
    """Select the option whose label ends with ``(scenario)``."""
    label = dropdown.locator("option").filter(has_text=f"({scenario})").first.inner_text()
    dropdown.select_option(label=label)


def test_no_role_assignment_diagnosed_and_fixed(lab_page: Any) -> None:
    lab_page.open("05-error-handling-lab")
    form = lab_page.run_through("ErrorLabView(lab").locator(".jp-Cell-outputArea")
    scenario = form.get_by_role("combobox", name="Scenario")
    output = form.locator(".widget-output")
    expect(scenario).to_be_visible()
    lab_page.assert_accessible(form)

    _choose(scenario, "imds-unreachable")  # switch away and back: the dropdown really drives the lab
    expect(output).to_contain_text("Scenario imds-unreachable")
    _choose(scenario, "no-role-assignment")
    expect(output).to_contain_text("Scenario no-role-assignment")
    expect(form).to_contain_text("press Run")

    lab_page.button(form, "Run").click()
    card = output.locator(".mi-diagnosis")
    expect(output).to_contain_text("AuthorizationFailed")
    expect(output).to_contain_text("403")
    expect(card).to_contain_text("[arm-authorization-failed]")
    expect(card).to_contain_text("Cause:")
    expect(card).to_contain_text("Fix:")
    expect(form).to_contain_text("✗ FAILED")
    lab_page.screenshot("05-no-role-error.png", form)

    lab_page.button(form, "Apply the fix").click()
    expect(output).to_contain_text("Fix applied")
    expect(form).to_contain_text("✓ OK")
    expect(form).not_to_contain_text("✗ FAILED")
    lab_page.assert_accessible(form)
    lab_page.screenshot("05-no-role-fixed.png", form)


def test_storage_data_role_missing_diagnosed_and_fixed_as_the_operator(lab_page: Any) -> None:
    """A data-plane exercise: the program downloads a blob; Contributor is no data role; the fix grants
    Storage Blob Data Reader through ARM and the lab retries while the role propagates."""
    lab_page.open("05-error-handling-lab")
    form = lab_page.run_through("ErrorLabView(lab").locator(".jp-Cell-outputArea")
    scenario = form.get_by_role("combobox", name="Scenario")
    output = form.locator(".widget-output")
    _choose(scenario, "storage-data-role-missing")
    expect(output).to_contain_text("Scenario storage-data-role-missing")

    lab_page.button(form, "Run").click()
    card = output.locator(".mi-diagnosis")
    expect(output).to_contain_text("AuthorizationPermissionMismatch")
    expect(card).to_contain_text("[storage-data-role-missing]")
    expect(card).to_contain_text('az role assignment create --role "Storage Blob Data Reader"')
    expect(form).to_contain_text("✗ FAILED")

    lab_page.button(form, "Apply the fix").click()
    expect(output).to_contain_text("granted Storage Blob Data Reader")
    expect(form).to_contain_text("✓ OK")
    expect(output).to_contain_text("downloaded blob data/hello.txt")
    lab_page.assert_accessible(form)
    lab_page.screenshot("05-storage-data-role-fixed.png", form)
