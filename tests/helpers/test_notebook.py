"""The notebook package's own helpers: the stack check, errors shown as lessons, set-up, input errors."""

from __future__ import annotations

from typing import Any

import pytest
from support.world import RG, SUB, SYS_PRINCIPAL, VM

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


def test_show_errors_is_two_layers_and_quiet(emu: Any, capsys, caplog):
    """The raw SDK text, then the card: no third line repeating them, no SDK log line on stderr."""
    from mi_helpers.notebook import setup, show_errors

    setup(quiet=True)  # what the first cell of every notebook does: SDK loggers get a handler of their own
    emu.set_scenario("multiple-user-assigned")
    with show_errors(expect="user-assigned-selector-required") as caught:
        mi.get_token("arm", budget=2)
    shown = capsys.readouterr()
    assert caught.diagnosis_id == "user-assigned-selector-required"
    assert shown.out.count("Multiple user assigned identities exist") >= 1
    assert "ℹ mi-helpers:" not in shown.out
    assert shown.err == ""  # the SDK's WARNING lines did not reach the cell


def test_a_principal_id_passed_as_client_id_is_recognised(emu: Any, capsys):
    from support.world import UAMI_READER, UAMI_READER_CLIENT, UAMI_READER_PRINCIPAL

    from mi_helpers.notebook import show_errors

    with show_errors() as caught:
        mi.get_token("arm", client_id=UAMI_READER_PRINCIPAL, budget=2)
    assert caught.diagnosis_id == "principal-id-as-client-id"
    card = str(caught.diagnosis)
    assert (
        f"{UAMI_READER_PRINCIPAL} is the principal (object) ID of {UAMI_READER}; "
        f"its client ID is {UAMI_READER_CLIENT}"
    ) in card
    assert f"az login --identity --client-id {UAMI_READER_CLIENT}" in card
    with show_errors() as other:  # a GUID that is nobody's: the generic card
        mi.get_token("arm", client_id="00000000-0000-4000-8000-000000000000", budget=2)
    assert other.diagnosis_id == "identity-not-assigned"
    capsys.readouterr()


def test_setup_line_names_the_scenario_and_the_way_back(emu: Any, capsys):
    from mi_helpers.notebook import setup

    setup()
    line = capsys.readouterr().out.strip()
    assert line.startswith("Target: emulator (a local emulator in this kernel, scenario healthy) — ")
    assert "/_emulator" not in line and "\n" not in line
    emu.set_scenario("imds-updating")
    setup()
    out = capsys.readouterr().out
    assert "scenario imds-updating" in out
    assert out.splitlines()[1] == (
        "⚠ The emulator is in scenario 'imds-updating', not 'healthy': some cell switched it. "
        'To get back: mi.use_emulator("healthy")'
    )


def test_private_emulator_ends_however_the_block_ends(emu: Any) -> None:
    from support.world import UAMI_READER_PRINCIPAL

    from mi_helpers.notebook import private_emulator, whoami

    before = mi.target().imds_url
    with private_emulator("user-assigned-only") as inner:
        assert mi.target().imds_url != before and inner.scenario == "user-assigned-only"
        assert whoami()["oid (principal)"] == UAMI_READER_PRINCIPAL
    for ending in (RuntimeError("a failing cell"), KeyboardInterrupt()):
        with pytest.raises(type(ending)), private_emulator("no-identity"):
            raise ending
        assert mi.target().imds_url == before  # back on the process's own emulator …
        assert emu.scenario == "healthy"  # … which never left its scenario
        assert whoami()["oid (principal)"] == SYS_PRINCIPAL
    with pytest.raises(InputError, match=r"^scenario: 'nope' is not a known scenario"):
        with private_emulator("nope"):
            pass


def test_stack_check_shows_only_the_problems(monkeypatch, capsys):
    from mi_helpers.notebook import startup

    with pytest.raises(InputError, match=r"^show: 'some' is not allowed"):
        startup.stack_check(show="some")
    table = startup.stack_check()
    assert table["ok"].all() and capsys.readouterr().out.startswith("✓ The stack is right")
