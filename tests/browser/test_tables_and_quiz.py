"""The learner's view at 900 px with the file browser open: every table shows its verdict column, nothing
is cut off to the right; and one "check your understanding" widget, answered and revealed.

The notebooks are the ones the walk-through found hard to read: 02 (resources by name), 03 (the audience
table and its notes), 04 (the AZURE_CLIENT_ID comparison with its result column) and 06 (the checklist).
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from mi_helpers.notebook.quiz import QUIZZES
from mi_helpers.notebook.tables import VERDICT_COLUMNS

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

NARROW = {"width": 900, "height": 900}
#: notebook -> the text of its last code cell (Run All waits for it)
NOTEBOOKS = {
    "02-query-arm-for-the-vm-identity": 'nb.check_understanding("02")',
    "03-tokens-for-azure-services": 'nb.check_understanding("03")',
    "04-user-assigned-identities": 'nb.check_understanding("04")',
    "06-troubleshooting-your-vm": 'nb.check_understanding("06")',
}

_MEASURE = """
([panelSelector, verdicts]) => {
  const panel = document.querySelector(panelSelector).getBoundingClientRect();
  const found = [];
  for (const table of document.querySelectorAll('.jp-OutputArea-output table')) {
    const heads = [...table.querySelectorAll('thead th')];
    if (!heads.length) continue;
    const first = heads[0].getBoundingClientRect();
    const box = table.getBoundingClientRect();
    const verdict = verdicts.includes(heads[0].textContent.trim().toLowerCase());
    found.push({
      heads: heads.map(h => h.textContent.trim()),
      verdict,
      verdictVisible: first.left >= panel.left - 1 && first.right <= panel.right + 1 && first.width > 0,
      fits: box.right <= panel.right + 1,
      overflow: Math.round(box.right - panel.right),
    });
  }
  return found;
}
"""


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_tables_are_readable_at_900px_with_the_file_browser_open(lab_page: Any, name: str) -> None:
    page = lab_page.page
    page.set_viewport_size(NARROW)
    lab_page.open(name, sidebar=True)
    assert page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").count(), "file browser open"
    lab_page.run_all(NOTEBOOKS[name])
    page.wait_for_timeout(500)  # let the last outputs lay out
    tables = page.evaluate(
        _MEASURE, [".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook", list(VERDICT_COLUMNS)]
    )
    assert tables, f"{name} shows no table"
    with_verdict = [t for t in tables if t["verdict"]]
    for t in with_verdict:
        assert t["verdictVisible"], t
    for t in tables:
        assert t["fits"], f"{name}: a table runs {t['overflow']} px past the notebook: {t['heads']}"
    if name.startswith("04"):  # the comparison the walk-through could not read: its result is now first
        assert any(t["heads"][0] == "result" for t in with_verdict), tables
    lab_page.screenshot(f"900px-{name[:2]}.png")


def test_check_your_understanding_reveals_its_answers(lab_page: Any) -> None:
    lab_page.open("01-sign-in-with-managed-identity")
    lab_page.run_all('nb.check_understanding("01")')
    quiz = lab_page.code_cell('nb.check_understanding("01")').first.locator(".jp-Cell-outputArea")
    first = QUIZZES["01"][0]
    wrong = next(c for c in QUIZZES["01"][1].choices if c != QUIZZES["01"][1].right)
    quiz.get_by_role("radio", name=first.right).check()
    quiz.get_by_role("radio", name=wrong).check()
    lab_page.assert_accessible(quiz)
    lab_page.button(quiz, "Check my answers").click()
    expect(quiz).to_contain_text("✓ Right")
    expect(quiz).to_contain_text("✗ Not quite")
    expect(quiz).to_contain_text("1 of 3 right.")
    lab_page.button(quiz, "Show the answers").click()
    expect(quiz).to_contain_text(f"Answer: {QUIZZES['01'][1].right}")
    lab_page.screenshot("01-quiz.png", quiz)
