"""The fixtures' accessibility check itself: it flags unlabelled widget controls and nameless buttons.

Runs on static ipywidgets-like markup in the session's Chromium (no JupyterLab needed), so the checks the
notebook tests rely on are known to be able to fail.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

LABELLED = """
<div class="jupyter-widgets widget-vbox" id="ok">
  <div class="widget-inline-hbox widget-text">
    <label class="widget-label" for="t1">VM name</label><input type="text" id="t1">
  </div>
  <div class="widget-inline-hbox widget-dropdown">
    <label class="widget-label">Service</label><select><option>Key Vault</option></select>
  </div>
  <input type="text" aria-label="Scope">
  <button class="widget-button"><i class="fa fa-play"></i>Run</button>
  <button class="widget-button" title="Reset"><i class="fa fa-undo"></i></button>
</div>
"""
UNLABELLED = """
<div class="jupyter-widgets widget-vbox" id="bad">
  <div class="widget-inline-hbox widget-text">
    <label class="widget-label" for="t2"></label><input type="text" id="t2" value="no label">
  </div>
  <select><option>x</option></select>
  <button class="widget-button"><i class="fa fa-play"></i></button>
  <input type="text" style="display:none">
</div>
"""


def test_accessibility_check_accepts_labelled_controls(blank_page: Any) -> None:
    blank_page.page.set_content(LABELLED)
    checked, unnamed = blank_page.unnamed_controls(blank_page.page.locator("#ok"))
    assert (checked, unnamed) == (5, [])


def test_accessibility_check_flags_unnamed_controls(blank_page: Any) -> None:
    blank_page.page.set_content(UNLABELLED)
    checked, unnamed = blank_page.unnamed_controls(blank_page.page.locator("#bad"))
    assert checked == 3  # the hidden input is not checked
    assert len(unnamed) == 3
    assert 'id="t2"' in unnamed[0] and unnamed[1].startswith("<select") and unnamed[2].startswith("<button")
    with pytest.raises(AssertionError, match="without a label"):
        blank_page.assert_accessible(blank_page.page.locator("#bad"))
