"""The ``mi-helpers`` dispatcher: one ``register(subparsers)`` per command module, one ``--param`` option."""

from __future__ import annotations

import pytest

from mi_helpers.cli import COMMANDS, build_parser
from mi_helpers.cli.params import parse_params
from mi_helpers.validate import InputError


def test_every_command_module_registers_the_same_way() -> None:
    parser = build_parser()
    for module in COMMANDS:
        assert callable(module.register), module.__name__
    for command in ("emulator", "scenarios", "tour", "lab", "doctor", "token", "whoami"):
        assert callable(parser.parse_args([command]).func), command


@pytest.mark.parametrize("command", [["emulator"], ["doctor", "--scenario", "imds-updating"]])
def test_scenario_parameters_are_one_option_with_the_old_alias(command: list[str]) -> None:
    args = build_parser().parse_args([*command, "--param", "t=5", "--set", "n=3"])
    assert parse_params(args.params) == {"t": "5", "n": "3"}
    assert build_parser().parse_args(command).params is None  # not given: no override


def test_parse_params_says_what_is_wrong_in_one_line() -> None:
    assert parse_params(["t = 1.5 ", "mode=mmds"]) == {"t": "1.5", "mode": "mmds"}
    for bad in (["novalue"], ["=3"]):
        with pytest.raises(InputError) as info:
            parse_params(bad)
        assert str(info.value).startswith("--param: ") and "KEY=VALUE" in str(info.value)
