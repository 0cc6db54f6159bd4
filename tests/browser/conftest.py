"""Browser fixtures: JupyterLab + the emulator (``start_lab``) driven by Debian's Chromium through Playwright.

One JupyterLab serves working copies of ``notebooks/`` in a temporary ``work/`` for the whole session, as
``mi-helpers lab`` does (the committed notebooks are never touched), and one Chromium runs for the session;
every test gets a fresh browser context whose page aborts, records and fails on any request that is not
for a loopback address. The Python network guard of
``tests/conftest.py`` covers this process, Lab and its kernels through the environment ``start_lab`` copies.

Chromium is the system one (``make chromium``; ``MI_HELPERS_CHROMIUM`` names another executable); Playwright
never downloads a browser here. ``MI_HELPERS_SCREENSHOTS=<dir>`` (``make screenshots``) keeps the PNGs the
tests take; otherwise they go to the pytest tmp dir.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Locator, Page, Route, sync_playwright

from mi_helpers.launch import jupyterlab as mi_lab
from mi_helpers.launch.jupyterlab import LabHandle

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--dns-prefetch-disable",
    "--no-proxy-server",  # loopback only: never hand a request to a proxy from the environment
    # Belt and braces under the route guard: Chromium's own resolver answers "not found" for every name
    # but localhost, so not even a DNS query for an outside name can leave (prefetch, preconnect, …).
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1 , EXCLUDE [::1]",
]
INSTALL_HINT = "install it with `make chromium` (or `sudo apt-get install -y chromium`)"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
# A whole JWT: three base64url parts, the first two JSON objects ("eyJ" = '{"').
WHOLE_JWT = re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{16,}")
STEP_TIMEOUT_MS = 60_000


def chromium_executable() -> str | None:
    """Path of the system Chromium (``MI_HELPERS_CHROMIUM`` wins), or None when none is installed."""
    chosen = os.environ.get("MI_HELPERS_CHROMIUM")
    candidates = [chosen] if chosen else [*CHROMIUM_CANDIDATES, shutil.which("chromium") or ""]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    return None


def is_loopback_url(url: str) -> bool:
    """True for requests that stay on this machine: loopback http(s)/ws(s), data:, blob:, about:."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return parts.scheme in ("http", "https", "ws", "wss") and (parts.hostname or "") in LOOPBACK_HOSTS


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The Chromium to drive; a clear failure (never a silent skip) when it is missing."""
    path = chromium_executable()
    if path is None:
        looked = os.environ.get("MI_HELPERS_CHROMIUM") or ", ".join(
            [*CHROMIUM_CANDIDATES, "chromium on PATH"]
        )
        pytest.fail(f"the browser tests need Debian's Chromium (looked for {looked}): {INSTALL_HINT}", False)
    return path


@pytest.fixture(scope="session")
def lab(_network_guard: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    """JupyterLab + emulator (healthy) over working copies of ``notebooks/`` on a free loopback port."""
    work = tmp_path_factory.mktemp("lab") / "work"
    handle = mi_lab.start_lab(NOTEBOOKS, port=0, scenario="healthy", startup_timeout=120, work_dir=work)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Browser]:
    """One headless Chromium for the session."""
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``MI_HELPERS_SCREENSHOTS`` (``make screenshots``), else the pytest tmp dir."""
    chosen = os.environ.get("MI_HELPERS_SCREENSHOTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class LabPage:
    """A Playwright page on the session's JupyterLab, with the few notebook gestures the tests need."""

    page: Page
    lab: LabHandle | None  # None for pages on static markup (``blank_page``)
    screenshot_dir: Path
    blocked: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ opening and running
    def open(self, name: str, *, wait_idle: bool = True, sidebar: bool = False) -> None:
        """Open ``notebooks/<name>.ipynb`` in a reset workspace; by default wait for its kernel to be idle.

        The file browser is collapsed unless ``sidebar`` (a learner's default view keeps it open).
        """
        assert self.lab is not None, "open() needs the lab_page fixture"
        folder = f"{self.lab.notebooks_path}/" if self.lab.notebooks_path else ""
        self.page.goto(f"{self.lab.url}lab/tree/{folder}{name}.ipynb?reset&token={self.lab.token}")
        self.page.locator(".jp-Notebook").first.wait_for(timeout=STEP_TIMEOUT_MS)
        if not sidebar:
            self.collapse_sidebar()
        if wait_idle:
            self.wait_idle()

    def collapse_sidebar(self) -> None:
        """Hide the file browser so the notebook (and its screenshots) get the full width."""
        current = self.page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
        if current.count():
            current.first.click()

    def wait_idle(self) -> None:
        """Wait until the status bar says the kernel is idle (running earlier does nothing)."""
        self.page.locator(".jp-StatusBar-TextItem:has-text('| Idle')").first.wait_for(timeout=STEP_TIMEOUT_MS)

    def menu(self, menu: str, item: str) -> None:
        """Click ``menu`` in the menu bar, then ``item`` in it."""
        self.page.click(f".lm-MenuBar-itemLabel:text-is('{menu}')")
        self.page.click(f".lm-Menu-itemLabel:text-is('{item}')")

    def code_cell(self, text: str) -> Locator:
        """The code cell whose source contains ``text``."""
        return self.page.locator(".jp-CodeCell").filter(
            has=self.page.locator(".jp-InputArea-editor", has_text=text)
        )

    def wait_executed(self, cell: Locator, timeout: float = STEP_TIMEOUT_MS) -> None:
        """Wait until ``cell`` shows an execution count (``[n]:``), i.e. it ran and finished."""
        prompt = cell.locator(".jp-InputArea-prompt")
        prompt.wait_for(timeout=timeout)
        self.page.wait_for_function(
            "el => /\\[\\d+\\]/.test(el.textContent)", arg=prompt.element_handle(), timeout=timeout
        )

    def run_all(self, last_cell_text: str) -> None:
        """Run all cells and wait until the cell containing ``last_cell_text`` finished."""
        self.menu("Run", "Run All Cells")
        self.wait_executed(self.code_cell(last_cell_text).first)

    def run_through(self, cell_text: str) -> Locator:
        """Run every cell above the one containing ``cell_text``, then that cell; return it once done."""
        cell = self.code_cell(cell_text).first
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputPrompt").first.click()  # select it in command mode
        self.menu("Run", "Run All Above Selected Cell")
        self.wait_above_executed(cell)
        self.wait_idle()
        cell.locator(".jp-InputPrompt").first.click()
        self.menu("Run", "Run Selected Cell and Do not Advance")
        self.wait_executed(cell)
        return cell

    def wait_above_executed(self, cell: Locator) -> None:
        """Wait until every code cell above ``cell`` shows an execution count (all of them ran)."""
        self.page.wait_for_function(
            """target => {
              for (const c of document.querySelectorAll('.jp-CodeCell')) {
                if (c === target) return true;
                const prompt = c.querySelector('.jp-InputArea-prompt');
                if (!prompt || !/\\[\\d+\\]/.test(prompt.textContent)) return false;
              }
              return false;
            }""",
            arg=cell.element_handle(),
            timeout=STEP_TIMEOUT_MS * 2,
        )

    def button(self, scope: Locator, name: str) -> Locator:
        """The button named ``name`` in ``scope``, by its accessible name.

        ipywidgets draws a button's icon as a Font Awesome glyph that Chromium puts in front of the name
        (e.g. "\\uf04b Run"), so leading non-word characters are allowed; the rest must match exactly.
        """
        return scope.get_by_role("button", name=re.compile(rf"^\W*{re.escape(name)}$"))

    # ------------------------------------------------------------------ checks
    def unnamed_controls(self, scope: Locator) -> tuple[int, list[str]]:
        """(how many visible widget controls were checked, those without a label / accessible name)."""
        result: dict[str, Any] = scope.evaluate(
            """root => {
              const visible = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
              const text = el => (el ? el.textContent : '').trim();
              const bad = [];
              let checked = 0;
              for (const el of root.querySelectorAll('.jupyter-widgets input, .jupyter-widgets select,'
                                                     + ' .jupyter-widgets textarea')) {
                if (!visible(el) || el.type === 'hidden') continue;
                checked += 1;
                const byAria = (el.getAttribute('aria-label') || '').trim();
                const byLabels = [...(el.labels || [])].map(text).join(' ');
                const box = el.closest('.widget-inline-hbox, .widget-inline-vbox');
                const byWidget = box ? text(box.querySelector(':scope > .widget-label')) : '';
                if (!(byAria || byLabels || byWidget)) bad.push(el.outerHTML.slice(0, 160));
              }
              for (const el of root.querySelectorAll('.jupyter-widgets button')) {
                if (!visible(el)) continue;
                checked += 1;
                const name = (el.getAttribute('aria-label') || text(el) || el.title || '').trim();
                if (!name) bad.push(el.outerHTML.slice(0, 160));
              }
              return {checked, bad};
            }"""
        )
        return int(result["checked"]), list(result["bad"])

    def assert_accessible(self, scope: Locator) -> None:
        """Every visible widget control in ``scope`` has a label / accessible name."""
        checked, unnamed = self.unnamed_controls(scope)
        assert checked, "no visible widget control to check (wrong scope, or the widgets did not render)"
        assert not unnamed, "widget controls without a label or accessible name:\n" + "\n".join(unnamed)

    def assert_no_whole_token(self) -> None:
        """No whole JWT anywhere in the page's text (outputs, widgets, tooltips are redacted)."""
        found = WHOLE_JWT.search(self.page.locator("body").inner_text())
        assert found is None, f"a whole token is visible in the page: {found.group(0)[:12]}…"

    def screenshot(self, name: str, target: Locator | None = None) -> Path:
        """Write ``<screenshot_dir>/<name>`` of ``target`` (an element) or of the page."""
        self.assert_no_whole_token()
        path = self.screenshot_dir / name
        if target is None:
            self.page.screenshot(path=path, animations="disabled", caret="hide")
            return path
        # Lab's menu and toolbars would cover an element taller than the notebook area: grow the window
        # for the shot, so the whole element is on screen, then put the window back.
        size = self.page.viewport_size or {"width": 1280, "height": 900}
        box = target.bounding_box() or {"height": 0.0}
        self.page.set_viewport_size(
            {"width": size["width"], "height": int(min(max(box["height"] + 300, size["height"]), 6000))}
        )
        try:
            self.page.mouse.move(0, 0)  # no hover highlight in the picture
            self._settle()
            target.evaluate("el => el.scrollIntoView({block: 'center'})")
            self._settle()
            target.screenshot(path=path, animations="disabled", caret="hide")
        finally:
            self.page.set_viewport_size(size)
        return path

    def _settle(self) -> None:
        """Let the browser lay out and paint (two animation frames)."""
        self.page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


@contextlib.contextmanager
def guarded_page(browser: Browser, lab: LabHandle | None, screenshot_dir: Path) -> Iterator[LabPage]:
    """A page in a fresh context whose non-loopback requests are aborted, recorded, and fail on exit."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = context.new_page()
    helper = LabPage(page=page, lab=lab, screenshot_dir=screenshot_dir)

    def guard(route: Route) -> None:
        url = route.request.url
        if is_loopback_url(url):
            route.continue_()
        else:
            helper.blocked.append(url)
            route.abort()

    page.route("**/*", guard)
    try:
        yield helper
    finally:
        context.close()
    assert not helper.blocked, "the page tried to reach non-loopback addresses:\n" + "\n".join(helper.blocked)


@pytest.fixture
def lab_page(browser: Browser, lab: LabHandle, screenshot_dir: Path) -> Iterator[LabPage]:
    """A fresh guarded page on the session's Lab; the test's kernels are shut down afterwards."""
    try:
        with guarded_page(browser, lab, screenshot_dir) as helper:
            yield helper
    finally:
        for session in lab.api("/api/sessions") or []:  # one kernel per test is enough on 2 cores
            lab.api(f"/api/sessions/{session['id']}", method="DELETE")


@pytest.fixture
def blank_page(browser: Browser, screenshot_dir: Path) -> Iterator[LabPage]:
    """A fresh guarded page without JupyterLab (for checks on static markup)."""
    with guarded_page(browser, None, screenshot_dir) as helper:
        yield helper


@pytest.fixture
def loopback_url() -> Callable[[str], bool]:
    """The route guard's test for "stays on this machine" (so its own tests can reach it)."""
    return is_loopback_url
