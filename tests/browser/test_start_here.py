"""00-start-here in JupyterLab: the token-flow sequence diagram renders (JupyterLab's mermaid support)."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


def test_mermaid_token_flow_renders(lab_page: Any) -> None:
    lab_page.open("00-start-here", wait_idle=False)  # markdown only: no cell has to run
    page = lab_page.page
    cell = page.locator(".jp-MarkdownCell").filter(has=page.locator("h2", has_text="The token flow")).first
    cell.scroll_into_view_if_needed()
    diagram = cell.locator("div.jp-RenderedMermaid img, div.jp-RenderedMermaid svg").first
    diagram.wait_for()
    rendered = diagram.evaluate(
        """el => {
          if (el.tagName.toLowerCase() === 'svg') return {loaded: true, svg: el.outerHTML};
          return {loaded: el.complete && el.naturalWidth > 0, svg: decodeURIComponent(el.src)};
        }"""
    )
    assert rendered["loaded"], "the mermaid image did not load"
    svg = rendered["svg"]
    assert "<svg" in svg and 'aria-roledescription="sequence"' in svg, svg[:300]
    assert "Syntax error" not in svg, "mermaid rendered an error instead of the diagram"
    for participant in ("IMDS", "Microsoft Entra ID", "Azure Resource Manager"):
        assert participant in svg, f"{participant!r} missing from the rendered diagram"
    lab_page.screenshot("00-mermaid.png", cell)
