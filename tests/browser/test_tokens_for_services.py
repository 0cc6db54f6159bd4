"""03-tokens-for-azure-services in JupyterLab: pick Key Vault, get a token, read ``aud`` in the claims."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

VAULT = "https://vault.azure.net"


def test_key_vault_token_claims(lab_page: Any) -> None:
    lab_page.open("03-tokens-for-azure-services")
    lab_page.run_all(last_cell_text="read_vm_with_token_for(")
    form = lab_page.code_cell("TokenForServiceView(").first.locator(".jp-Cell-outputArea")
    service = form.get_by_role("combobox", name="Service")
    scope = form.get_by_role("textbox", name="Scope")
    output = form.locator(".widget-output")
    expect(service).to_be_visible()
    lab_page.assert_accessible(form)

    service.select_option(label="Key Vault")
    expect(scope).to_have_value(f"{VAULT}/.default")
    lab_page.button(form, "Get token").click()
    aud = output.locator("tr").filter(has=lab_page.page.locator("td", has_text=re.compile(r"^\s*aud\s*$")))
    expect(aud).to_have_count(1)
    expect(aud).to_contain_text(VAULT)
    expect(output).to_contain_text("get_token('https://vault.azure.net/.default')")
    expect(output).not_to_contain_text("storage.azure.com")  # the notebook's own Storage run was cleared
    lab_page.screenshot("03-key-vault-token.png", form)
