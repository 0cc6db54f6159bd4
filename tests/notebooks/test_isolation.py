"""No notebook can break another: the lessons' scenarios never reach the emulator ``mi-helpers lab`` shares.

``mi-helpers lab`` runs one emulator for every kernel. Here one emulator plays that part and every kernel
gets its variables, as Lab's kernels do: notebook 04 is run halfway (through the cell of section 3 that
needs two user-assigned identities and no system identity) and stopped there, a lesson block is
interrupted in the middle, and notebook 01 then runs top to bottom and signs in as the VM's system identity.
"""

from __future__ import annotations

import os
import queue
import tempfile
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from support.notebooks import NOTEBOOKS_DIR, cell_text, kernel_env
from support.world import SYS_PRINCIPAL, UAMI_READER_PRINCIPAL
from traitlets.config import Config

from mi_helpers.emulator import Emulator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # starts kernels and executes notebooks


@pytest.fixture
def shared() -> Iterator[Emulator]:
    """The emulator `mi-helpers lab` would share between all kernels (healthy)."""
    with Emulator(scenario="healthy") as emu:
        yield emu


def _lab_kernel_env(emu: Emulator) -> dict[str, str]:
    return {**kernel_env(), **emu.environment()}


def _execute(nb: nbformat.NotebookNode, env: dict[str, str]) -> nbformat.NotebookNode:
    with tempfile.TemporaryDirectory(prefix="mi-iso-") as sockets:
        client = NotebookClient(
            nb,
            timeout=120,
            kernel_name="python3",
            resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
            config=Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "kernel")}}),
        )
        client.execute(env=env)
    return nb


def _up_to(name: str, last_cell: str) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    stop = next(i for i, c in enumerate(nb.cells) if c.get("id") == last_cell)
    nb.cells = nb.cells[: stop + 1]
    return nb


def _errors(nb: nbformat.NotebookNode) -> list[Any]:
    return [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]


def test_half_run_04_then_01_on_one_shared_emulator(shared: Emulator) -> None:
    env = _lab_kernel_env(shared)
    half = _execute(_up_to("04-user-assigned-identities.ipynb", "nb04-several"), env)
    assert not _errors(half)
    several = cell_text(half, "nb04-several")
    assert "Multiple user assigned identities exist" in several  # the lesson's world really ran …
    assert UAMI_READER_PRINCIPAL in cell_text(half, "nb04-one-uami")
    assert shared.scenario == "healthy"  # … on an emulator of its own: the shared one never switched
    assert not any("oauth2/token" in e["path"] and e["status"] == 400 for e in shared.request_log())

    first = _execute(
        nbformat.read(NOTEBOOKS_DIR / "01-sign-in-with-managed-identity.ipynb", as_version=4), env
    )
    assert not _errors(first)
    assert "scenario healthy" in cell_text(first, "nb01-setup") and "⚠" not in cell_text(first, "nb01-setup")
    token = cell_text(first, "nb01-token")
    assert SYS_PRINCIPAL in token and "Diagnosis" not in token
    assert any(e["path"].startswith("/metadata/identity/oauth2/token") for e in shared.request_log())


def _run(client: Any, code: str, timeout: float = 60) -> str:
    """Execute ``code``; return its stdout (and the error name when it raised)."""
    msg_id = client.execute(code)
    out = []
    while True:
        try:
            msg = client.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no answer from the kernel to {code!r}: {''.join(out)}") from None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.append(content["text"])
        elif kind == "error":
            out.append(f"ERROR {content['ename']}: {content['evalue']}")
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(out)


def test_an_interrupted_lesson_block_gives_the_world_back(shared: Emulator, tmp_path: Any) -> None:
    """Ctrl-C (a kernel interrupt) in the middle of a lesson's scenario: the kernel is back on the shared
    emulator and the system identity signs in again; the shared emulator never left ``healthy``."""
    km = KernelManager(kernel_name="python3", transport="ipc", ip=str(tmp_path / "kernel"))
    km.start_kernel(env=_lab_kernel_env(shared), cwd=str(NOTEBOOKS_DIR))
    client = km.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        _run(
            client, "import mi_helpers as mi\nfrom mi_helpers import notebook as nb\nt = nb.setup(quiet=True)"
        )
        block = client.execute(
            "with nb.lesson_scenario('multiple-user-assigned'):\n"
            "    print('inside', mi.target().imds_url, flush=True)\n"
            "    import time; time.sleep(60)\n"
        )
        inside, interrupted = "", False
        while True:  # until the interrupted block has ended (its cell is idle again)
            msg = client.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != block:
                continue
            if msg["msg_type"] == "stream":
                inside += msg["content"]["text"]
                if "inside" in inside and not interrupted:
                    assert shared.imds_url not in inside  # the block runs on its own emulator
                    km.interrupt_kernel()
                    interrupted = True
            elif msg["msg_type"] == "error":
                assert msg["content"]["ename"] == "KeyboardInterrupt"
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        assert interrupted
        after = _run(
            client,
            "print('target', mi.target().imds_url)\nprint('oid', nb.whoami()['oid (principal)'])\n"
            "from mi_helpers.notebook.startup import scenario_hint\n"
            "print(scenario_hint(mi.target()) or 'no hint')",
        )
        assert f"target {shared.imds_url}" in after, after
        assert f"oid {SYS_PRINCIPAL}" in after, after
        assert "no hint" in after
        assert shared.scenario == "healthy"
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)


def test_setup_names_a_switched_scenario_and_the_way_back(shared: Emulator, tmp_path: Any) -> None:
    """If something did switch the shared emulator, every notebook's first line says so and how to undo it."""
    shared.set_scenario("no-role-assignment")
    nb = _execute(_up_to("01-sign-in-with-managed-identity.ipynb", "nb01-setup"), _lab_kernel_env(shared))
    line = cell_text(nb, "nb01-setup")
    assert "scenario no-role-assignment" in line
    assert "⚠ The emulator is in scenario 'no-role-assignment', not 'healthy'" in line
    assert 'mi.use_emulator("healthy")' in line
    assert "/_emulator" not in line  # never the admin URL
