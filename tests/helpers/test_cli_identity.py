"""``mi-helpers token`` and ``mi-helpers whoami`` in this process against the package's embedded emulator:
redacted output, one-line errors followed by the diagnosis, exit codes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.world import SYS_PRINCIPAL, UAMI_READER_CLIENT, UAMI_READER_PRINCIPAL, UAMI_READER_RESOURCE_ID

import mi_helpers as mi


def test_cli_token(emu: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from mi_helpers.cli import main

    assert main(["token", "--resource", "key vault", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "audience    https://vault.azure.net" in out
    assert SYS_PRINCIPAL in out and "oid" in out
    assert "…(" in out  # the redacted token
    assert main(["token", "--client-id", UAMI_READER_CLIENT, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["principal_id"] == UAMI_READER_PRINCIPAL and data["client_id"] == UAMI_READER_CLIENT
    assert data["token"].endswith(" chars)") and len(data["token"]) < 30
    assert data["claims"]["appid"] == UAMI_READER_CLIENT


def test_cli_token_failure_is_one_line_plus_diagnosis(emu: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from mi_helpers.cli import main

    mi.use_emulator("no-identity")
    assert main(["token", "--quiet"]) == 1
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("mi-helpers token:")]
    assert len(lines) == 1 and "Identity not found" in lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert "[identity-not-assigned]" in captured.out  # the diagnosis follows the one-line error


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["token", "--client-id", "abc"], "client_id"),
        (["token", "--resource", "management.azure.com"], "resource"),
        (["token", "--budget", "0"], "budget"),
    ],
)
def test_cli_token_bad_usage(
    emu: Any, capsys: pytest.CaptureFixture[str], argv: list[str], field: str
) -> None:
    from mi_helpers.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith(f"mi-helpers token: error: {field}: ")


def test_cli_whoami(emu: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from mi_helpers.cli import main

    assert main(["whoami", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["token_principal_id"] == data["arm_principal_id"] == SYS_PRINCIPAL
    assert data["matches"] is True and data["arm_identity"] == "system-assigned"
    assert main(["whoami", "--resource-id", UAMI_READER_RESOURCE_ID, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.count(UAMI_READER_PRINCIPAL) >= 2  # token side and ARM side
    assert "match" in out and "yes" in out


def test_cli_whoami_arm_failure(emu: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from mi_helpers.cli import main

    mi.use_emulator("no-role-assignment")
    assert main(["whoami", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "AuthorizationFailed" in err
    assert "Traceback" not in err


def test_cli_whoami_reads_arm_as_the_chosen_identity(emu: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Two user-assigned identities and no system one: the ARM read must use --client-id's identity too
    (a plain credential would get 'Multiple user assigned identities exist')."""
    import json

    from mi_helpers.cli import main

    mi.use_emulator("multiple-user-assigned")
    assert main(["whoami", "--client-id", UAMI_READER_CLIENT, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["token_principal_id"] == data["arm_principal_id"] == UAMI_READER_PRINCIPAL
