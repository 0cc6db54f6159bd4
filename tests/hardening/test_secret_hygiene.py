"""Secret hygiene: no whole access token in CLI output, logs, reprs, the emulator's request log or notebooks.

A token is found by shape and content (three base64url segments whose first two decode to JSON objects:
``support.tokens.whole_jwts``), not by a fixed prefix, so a token printed in any form is caught. Each test
first makes sure a real token was issued during it, so "no token found" cannot come from "no token existed".
"""

from __future__ import annotations

import json
import logging
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from support.env import child_environ
from support.notebooks import NOTEBOOKS, NOTEBOOKS_DIR
from support.tokens import whole_jwts
from support.world import UAMI_READER_CLIENT, VM_RESOURCE_ID

import mi_helpers as mi
from mi_helpers.emulator import AdminClient, Emulator
from mi_helpers.identity import SignInError, TokenInfo

VM_PATH = f"{VM_RESOURCE_ID}?api-version=2024-07-01"

pytestmark = pytest.mark.timeout(240)


def _raw_token(emu: Any) -> str:
    with requests.Session() as s:
        s.trust_env = False
        r = s.get(
            f"{emu.imds_url}/metadata/identity/oauth2/token",
            params={"api-version": "2018-02-01", "resource": "https://management.azure.com"},
            headers={"Metadata": "true"},
            timeout=10,
        )
    r.raise_for_status()
    tok = str(r.json()["access_token"])
    assert whole_jwts(tok), "the scanner must recognise the emulator's tokens"
    return tok


def test_the_scanner_finds_tokens_in_any_dress(hardening_emulator: Any) -> None:
    tok = _raw_token(hardening_emulator)
    for dressed in (tok, f"Bearer {tok}", json.dumps({"t": tok}), f"x={tok}&y=1", repr(tok)):
        assert whole_jwts(dressed), dressed[:20]
    assert whole_jwts(mi.redact(tok)) == []
    assert whole_jwts("management.azure.com and mi_helpers.emulator.scenarios") == []


# ------------------------------------------------------------------------------------------ the CLI


@pytest.fixture(scope="module")
def cli_emulator() -> Any:
    with Emulator(scenario="healthy") as emu:
        yield emu


def _cli(emu: Emulator, *args: str) -> subprocess.CompletedProcess[str]:
    env = child_environ(**emu.environment())
    return subprocess.run(
        [sys.executable, "-m", "mi_helpers.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


CLI_RUNS = [
    ("token", "--json"),
    ("token", "--quiet"),
    ("token", "--json", "--resource", "storage"),
    ("token", "--json", "--client-id", UAMI_READER_CLIENT),
    ("whoami",),
    ("whoami", "--json"),
    ("doctor", "--json"),
    ("doctor",),
    ("doctor", "--json", "--scenario", "expired-token"),
    ("doctor", "--json", "--scenario", "no-role-assignment"),
]


@pytest.mark.parametrize("args", CLI_RUNS, ids=[" ".join(a) for a in CLI_RUNS])
def test_cli_output_holds_no_token(cli_emulator: Emulator, args: tuple[str, ...]) -> None:
    cli_emulator.set_scenario("healthy")
    cli_emulator.clear_log()
    proc = _cli(cli_emulator, *args)
    expect_ok = "--scenario" not in args
    assert (proc.returncode == 0) == expect_ok, proc.stderr[-2000:]
    issued = [e for e in cli_emulator.request_log() if "oauth2/token" in e["path"] and e["status"] == 200]
    assert issued, "the command must have obtained a token"
    out = proc.stdout + proc.stderr
    assert whole_jwts(out) == [], out[:500]
    if args[0] == "token":
        shown = json.loads(proc.stdout)["token"] if "--json" in args else proc.stdout
        assert "…(" in shown and "chars)" in shown  # the redacted form is what people see


def test_cli_failure_output_holds_no_token(cli_emulator: Emulator) -> None:
    cli_emulator.set_scenario("no-identity")
    try:
        proc = _cli(cli_emulator, "token", "--json")
    finally:
        cli_emulator.set_scenario("healthy")
    assert proc.returncode == 1
    assert "identity" in (proc.stdout + proc.stderr).lower()
    assert whole_jwts(proc.stdout + proc.stderr) == []


def test_the_lab_banner_and_what_it_suggests_print_no_token(cli_emulator: Emulator, tmp_path: Path) -> None:
    """``mi-helpers lab``'s start-up banner, and every command it suggests for a terminal, run as printed."""
    from mi_helpers.launch.jupyterlab import LabHandle, banner

    cli_emulator.set_scenario("healthy")
    cli_emulator.clear_log()
    env = child_environ(**cli_emulator.environment(), CURL_CA_BUNDLE=cli_emulator.ca_bundle)
    handle = LabHandle(
        url="http://127.0.0.1:1/",
        token="jupyter-server-token",
        port=1,
        root_dir=tmp_path,
        run_dir=tmp_path,
        env=env,
        process=None,  # type: ignore[arg-type]
        emulator=cli_emulator,
        notebooks_path="notebooks",
    )
    text = banner(handle, "healthy")
    suggested = [line.strip() for line in text.splitlines() if line.startswith("  curl")]
    assert suggested, text
    out = ""
    for command in suggested:
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        out += done.stdout + done.stderr
    issued = [e for e in cli_emulator.request_log() if "oauth2/token" in e["path"] and e["status"] == 200]
    assert issued, "the banner's command must obtain a token"
    assert "…(" in out and "chars)" in out  # what is shown: the redacted form
    assert whole_jwts(text + out) == []


# ------------------------------------------------------------------------------------------ request log


def test_request_log_redacts_authorization_and_tokens(cli_emulator: Emulator) -> None:
    cli_emulator.set_scenario("healthy")
    cli_emulator.clear_log()
    tok = _raw_token(cli_emulator)
    with requests.Session() as s:
        s.trust_env = False
        r = s.get(
            cli_emulator.arm_url + VM_PATH,
            headers={"Authorization": f"Bearer {tok}", "User-Agent": f"agent {tok}"},
            verify=cli_emulator.ca_bundle,
            timeout=10,
        )
        assert r.status_code == 200
        # A token pasted where it does not belong: in the query, the path, a header the log keeps.
        s.get(
            f"{cli_emulator.imds_url}/metadata/identity/oauth2/token",
            params={"api-version": "2018-02-01", "resource": tok},
            headers={"Metadata": "true", "User-Agent": tok},
            timeout=10,
        )
        s.get(
            f"{cli_emulator.arm_url}/subscriptions/{tok}",
            headers={"Authorization": tok},
            verify=cli_emulator.ca_bundle,
            timeout=10,
        )
    log = cli_emulator.request_log()
    arm = [e for e in log if e["listener"] == "arm" and e["status"] == 200]
    assert arm and arm[0]["authorization"].startswith("Bearer eyJ") and "…(" in arm[0]["authorization"]
    assert whole_jwts(json.dumps(log)) == []
    remote = AdminClient(cli_emulator.admin_url, cli_emulator.admin_key).request_log()
    assert len(remote) >= len(arm) and whole_jwts(json.dumps(remote)) == []


# ------------------------------------------------------------------------------------------ objects


def _renderings(obj: Any) -> str:
    parts = [repr(obj), str(obj), format(obj)]
    for name in ("_repr_html_", "_repr_markdown_", "to_json", "summary"):
        fn = getattr(obj, name, None)
        if callable(fn):
            value = fn()
            parts.append(value if isinstance(value, str) else json.dumps(value, default=str))
    if hasattr(obj, "to_dict"):
        parts.append(json.dumps(obj.to_dict(), default=str))
    return "\n".join(parts)


def test_token_info_shows_only_a_redacted_token(hardening_emulator: Any) -> None:
    tok = mi.get_token("arm", progress=False)
    assert isinstance(tok, TokenInfo) and whole_jwts(tok.secret())
    text = _renderings(tok)
    text += tok.claims_table().to_string() + tok.claims_table().to_html()
    text += json.dumps([a.as_dict() for a in tok.attempts], default=str)
    assert whole_jwts(text) == []
    assert tok.redacted in repr(tok)
    with pytest.raises(TypeError):
        pickle.dumps(tok)


def test_sign_in_error_and_diagnosis_redact(hardening_emulator: Any) -> None:
    tok = _raw_token(hardening_emulator)
    mi.use_emulator("no-identity")
    try:
        with pytest.raises(SignInError) as info:
            mi.get_token("arm", budget=3, progress=False)
    finally:
        mi.use_emulator("healthy")
    exc = info.value
    text = _renderings(exc) + repr(exc.args) + json.dumps([a.as_dict() for a in exc.attempts], default=str)
    text += _renderings(mi.diagnose(exc))
    # An error text that carries a whole token (a log line pasted into diagnose, an SDK message …)
    leaky = ValueError(f"401 for Authorization: Bearer {tok} (token {tok})")
    text += _renderings(mi.diagnose(leaky)) + _renderings(mi.diagnose(f"access_token: {tok}"))
    text += _renderings(mi.diagnose({"error": "invalid_request", "error_description": tok}))
    assert whole_jwts(text) == []


def test_input_errors_redact_the_value(hardening_emulator: Any) -> None:
    tok = _raw_token(hardening_emulator)
    from mi_helpers.validate import InputError, validate_guid, validate_resource

    for fn in (validate_guid, validate_resource):
        with pytest.raises(InputError) as info:
            fn(f"{tok} extra")
        assert whole_jwts(str(info.value) + repr(info.value)) == []


def test_reports_views_and_controls_redact(hardening_emulator: Any) -> None:
    from mi_helpers.launch.jupyterlab import LabHandle
    from mi_helpers.notebook.widgets import TokenForServiceView

    mi.use_emulator("healthy")
    rep = mi.doctor(budget=15)
    assert rep.ok
    text = _renderings(rep)
    view = TokenForServiceView(service="Azure Resource Manager")
    assert view.get_token() is not None
    text += view.texts() + json.dumps(view.output.outputs, default=str)
    # The error lab's attempts (a success and a failure), with their own private emulator.
    from mi_helpers.notebook.error_lab import ErrorLab

    with ErrorLab(budget=4) as lab:
        bad = lab.run("no-role-assignment")
        lab.apply_fix()
        ok = lab.retry_until_green()
    assert ok.ok and not bad.ok
    text += _renderings(ok) + _renderings(bad) + bad.error_text
    assert whole_jwts(text) == []
    # Controls that hold other secrets keep them out of their repr.
    emu = hardening_emulator
    assert emu.admin_key not in repr(emu) + str(emu)
    client = AdminClient(emu.admin_url, emu.admin_key)
    assert emu.admin_key not in repr(client)
    handle = LabHandle(
        url="http://127.0.0.1:1/",
        token="jupyter-server-token-123",
        port=1,
        root_dir=Path("."),
        run_dir=Path("."),
        env={"X": "jupyter-server-token-123"},
        process=None,  # type: ignore[arg-type]
        emulator=None,
    )
    assert "jupyter-server-token-123" not in repr(handle)


def test_logs_at_debug_hold_no_token(hardening_emulator: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Everything any logger (ours, azure-core, azure-identity, msal, urllib3) emits at DEBUG."""
    mi.use_emulator("healthy")
    root = logging.getLogger()
    with caplog.at_level(logging.DEBUG):
        for name in ("azure", "msal", "urllib3", "mi_helpers"):
            logging.getLogger(name).setLevel(logging.DEBUG)
        try:
            from mi_helpers.identity import clear_credential_cache

            clear_credential_cache()
            tok = mi.get_token("arm", progress=False)
            mi.vm_principal_id()
            mi.doctor(budget=15)
        finally:
            for name in ("azure", "msal", "urllib3", "mi_helpers"):
                logging.getLogger(name).setLevel(logging.NOTSET)
    assert root is logging.getLogger()
    assert whole_jwts(tok.secret())
    assert caplog.records, "DEBUG logging produced nothing: the check would be empty"
    text = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert whole_jwts(text) == []


# ------------------------------------------------------------------------------------------ notebooks


def _executed_copies(base: Path) -> dict[str, list[Path]]:
    """Executed notebooks left by tests/notebooks' session fixture (papermill copies, not redacted)."""
    found: dict[str, list[Path]] = {}
    for p in sorted(base.glob("executed-notebooks*/*.ipynb")):
        for name in NOTEBOOKS:
            if p.name == name or p.name.startswith(name.removesuffix(".ipynb") + "-"):
                found.setdefault(name, []).append(p)
    return found


@pytest.mark.slow  # runs the tour for notebooks tests/notebooks did not execute
def test_executed_notebooks_hold_no_token(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """Every notebook's executed copy: reused from tests/notebooks when it ran in this session (this test
    is moved to the end of the run for that), otherwise executed here through the tour."""
    from mi_helpers.launch.tour import run_tour

    copies = _executed_copies(tmp_path_factory.getbasetemp())
    missing = [n for n in NOTEBOOKS if n not in copies]
    if missing:
        report = run_tour(NOTEBOOKS_DIR, tmp_path / "tour", only=[n.removesuffix(".ipynb") for n in missing])
        # The tour fails a notebook that shows a whole token (and redacts it before writing the copy).
        assert report.ok, [(r.name, r.detail) for r in report.results if not r.ok]
        for r in report.results:
            assert r.output is not None
            copies.setdefault(r.name, []).append(r.output)
    assert sorted(copies) == NOTEBOOKS
    for name, paths in copies.items():
        for p in paths:
            text = p.read_text(encoding="utf-8")
            cells = json.loads(text)["cells"]
            assert any(c.get("outputs") for c in cells if c["cell_type"] == "code"), f"{p} was not executed"
            assert whole_jwts(text) == [], f"{name}: {p}"
            leaked = [v for v in world_secret_values() if v in text]
            assert leaked == [], f"{name}: {p} shows a Key Vault secret of the world whole"


# --- the data planes: no secret value of the world, whole, in outputs, logs or the tree ---------------


def world_secret_values() -> list[str]:
    """Every secret value the default world's key vaults hold (what a lesson may read, never show)."""
    from mi_helpers.emulator.world import World

    return [
        v.value
        for vault in World.default().data_plane.vaults
        for versions in vault.secrets.values()
        for v in versions
    ]


def test_the_world_has_secret_values_to_look_for() -> None:
    assert len(world_secret_values()) >= 3 and all(len(v) >= 16 for v in world_secret_values())


def test_no_tracked_file_but_the_world_holds_a_secret_value() -> None:
    import subprocess

    root = Path(__file__).resolve().parents[2]
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout
    allowed = {"mi_helpers/emulator/default_world.yaml", "tests/support/world.py"}
    values = world_secret_values()
    for rel in tracked.split():
        path = root / rel
        if rel in allowed or not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        text = path.read_text("utf-8", errors="ignore")
        assert not [v for v in values if v in text], f"{rel} holds a secret value of the world"


def test_reading_secrets_leaves_no_value_in_the_log_or_reprs() -> None:
    import mi_helpers as mi

    try:
        control = mi.use_emulator("healthy")
        shown = [repr(mi.read_secret(name)) for name in ("db-password", "api-key")]
        log = json.dumps(control.request_log())
    finally:
        mi.reset_target()
    assert '"keyvault"' in log
    for value in world_secret_values():
        assert value not in log and all(value not in s for s in shown)
