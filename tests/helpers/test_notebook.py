"""The notebook package's own helpers: the stack check, errors shown as lessons, set-up, input errors."""

from __future__ import annotations

from typing import Any

import pytest
from support.world import RG, SUB, VM

import mi_helpers as mi
from mi_helpers.validate import InputError


def test_stack_check_flags_a_package_that_is_too_old(monkeypatch, capsys):
    from mi_helpers import notebook
    from mi_helpers.notebook import startup

    real_version = startup.md.version

    def fake_version(name: str) -> str:
        return "1.0.0" if name == "azure-identity" else real_version(name)

    table = notebook.stack_check()
    assert "✓ The stack is right" in capsys.readouterr().out
    assert table["ok"].all()
    monkeypatch.setattr(startup.md, "version", fake_version)
    table = notebook.stack_check()
    out = capsys.readouterr().out
    assert out.startswith("✗ 1 package(s) missing or too old: azure-identity")
    row = table.set_index("package").loc["azure-identity"]
    assert row["installed"] == "1.0.0" and not row["ok"]


def test_show_errors_bad_input_is_one_line(capsys):
    from mi_helpers.notebook import show_errors

    with show_errors() as caught:
        mi.get_token("arm", client_id="not-a-guid")
    out = capsys.readouterr().out
    assert out.strip().splitlines() == [f"✗ InputError: {caught.error}"]
    assert str(caught.error).startswith("client_id: ")
    assert caught.diagnosis is None and not caught.ok


def test_show_errors_renders_raw_text_then_diagnosis_and_flags_surprises(emu: Any, capsys):
    from mi_helpers.notebook import show_errors

    with show_errors(expect="arm-wrong-audience") as caught:
        mi.vm_principal_id(SUB, RG, "vm-nope")
    out = capsys.readouterr().out
    raw_at = out.index("(ResourceNotFound)")
    card_at = out.index("[arm-resource-not-found]")
    assert raw_at < card_at  # the raw error first, then the diagnosis
    assert "expected the diagnosis 'arm-wrong-audience', got 'arm-resource-not-found'" in out
    assert caught.diagnosis_id == "arm-resource-not-found"
    with show_errors(expect="arm-resource-not-found") as fine:
        mi.vm_principal_id(SUB, RG, VM)
    assert fine.ok and "No error this time" in capsys.readouterr().out


def test_setup_rejects_an_unknown_target():
    from mi_helpers.notebook import setup

    with pytest.raises(mi.InputError, match=r"^target: 'cloud' is not a target"):
        setup("cloud")


def test_notebook_error_display_hook(capsys: pytest.CaptureFixture[str]) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    from mi_helpers.notebook import install_notebook_error_display

    shell = InteractiveShell.instance()
    try:
        assert install_notebook_error_display() is True
        assert InputError in shell.custom_exceptions
        result = shell.run_cell("from mi_helpers.validate import validate_guid\nvalidate_guid('abc')")
        assert isinstance(result.error_in_exec, InputError)
        shown = capsys.readouterr()
        text = shown.out + shown.err
        assert "client_id: 'abc' is not a GUID" in text
        assert "Traceback" not in text and "validate.py" not in text
    finally:
        shell.set_custom_exc((), None)
        InteractiveShell.clear_instance()


def test_the_package_keeps_the_hook_under_its_old_public_name() -> None:
    from mi_helpers.notebook.startup import install_notebook_error_display

    assert mi.install_notebook_error_display is install_notebook_error_display
