"""The process environment as the helpers change it: blocks that restore it, and the ledger of exports."""

from __future__ import annotations

import os

import pytest

from mi_helpers.environ import ExportLedger, patched_environ, replace_environ, restored_environ


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MI_T_A", "MI_T_B", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_patched_environ_sets_unsets_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MI_T_A", "user")
    with patched_environ({"MI_T_A": None, "MI_T_B": "lesson"}):
        assert "MI_T_A" not in os.environ and os.environ["MI_T_B"] == "lesson"
    assert os.environ["MI_T_A"] == "user" and "MI_T_B" not in os.environ


def test_restored_environ_undoes_everything_the_block_did(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MI_T_A", "user")
    before = dict(os.environ)
    with restored_environ():
        os.environ["MI_T_A"] = "changed"
        os.environ["MI_T_B"] = "added"
    assert dict(os.environ) == before


def test_replace_environ_touches_only_what_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MI_T_A", "user")
    wanted = {k: v for k, v in os.environ.items() if k != "MI_T_A"} | {"MI_T_B": "b"}
    with restored_environ():
        replace_environ(wanted)
        assert dict(os.environ) == wanted


def test_the_ledger_exports_switches_and_gives_the_users_values_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MI_T_A", "user")
    monkeypatch.setenv("NO_PROXY", "corp.example")
    ledger = ExportLedger()
    ledger.export({"MI_T_A": "emulator", "MI_T_B": "scenario-extra"})
    ledger.merge_no_proxy("127.0.0.1", "corp.example")
    assert os.environ["MI_T_A"] == "emulator" and os.environ["NO_PROXY"] == "corp.example,127.0.0.1"
    assert ledger.original()["MI_T_A"] == "user" and "MI_T_B" not in ledger.original()
    assert ledger.original()["NO_PROXY"] == "corp.example" and "no_proxy" not in ledger.original()
    ledger.export({"MI_T_A": "emulator"})  # the next scenario has no MI_T_B: it goes
    assert "MI_T_B" not in os.environ
    ledger.withdraw()
    assert os.environ["MI_T_A"] == "user" and os.environ["NO_PROXY"] == "corp.example"
    assert "no_proxy" not in os.environ
