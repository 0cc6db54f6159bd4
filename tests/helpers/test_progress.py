"""BudgetBar: drawn only once opened, seconds of the budget and a message, never an error from drawing."""

from __future__ import annotations

import pytest

from mi_helpers.progress import BudgetBar


def test_nothing_is_drawn_until_the_bar_is_opened(capsys: pytest.CaptureFixture[str]) -> None:
    bar = BudgetBar("token for x", 20.0)
    bar.say("attempt 1")
    bar.close()
    assert capsys.readouterr().err == "" and not bar.is_open


def test_an_opened_bar_shows_the_budget_and_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    bar = BudgetBar("retrying", 8.0)
    bar.open()
    bar.say("imds-server-error: retrying in 1.0 s")
    bar.close()
    err = capsys.readouterr().err
    assert "retrying:" in err and "/8 s" in err and "retrying in 1.0 s" in err


def test_a_broken_display_never_reaches_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    import tqdm.auto

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no display here")

    monkeypatch.setattr(tqdm.auto, "tqdm", broken)
    bar = BudgetBar("x", 1.0)
    bar.open()
    bar.say("still fine")
    bar.close()
    assert not bar.is_open
