"""docs/snippets.md: the Python and curl snippets run against the emulator; az/PowerShell use current names.

The snippets are written for a real VM. Here they run unchanged except for the hosts: every
IMDS URL (the link-local address) becomes the emulator's IMDS URL and the ARM endpoint given as a base URL
(``"https://management.azure.com"`` / ``https://management.azure.com${…}``) becomes the emulator's ARM URL;
the emulator's CA comes through ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``. Token audiences such as
``https://management.azure.com/.default`` are left alone: the emulator issues tokens for the real ones.

Every python/bash block of the page is matched to exactly one expectation below, so a new snippet
without a test (or a test whose snippet disappeared) fails the suite.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.env import child_environ
from support.world import (
    HELLO_BLOB,
    SECRET_VALUES,
    STORAGE_ACCOUNT,
    SYS_PRINCIPAL,
    UAMI_READER_CLIENT,
    UAMI_READER_PRINCIPAL,
)

from mi_helpers.constants import EnvironmentVariables as EnvVar
from mi_helpers.constants import Imds

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = ROOT / "docs" / "snippets.md"

SECRET = SECRET_VALUES["db-password"][-1]  # the current version's value in the default world
HELLO = HELLO_BLOB.strip()
_ARM_BASE = re.compile(r"https://management\.azure\.com(?=[\"$])")  # a base URL, not an audience


@dataclass(frozen=True)
class Block:
    """One fenced code block: the section heading it is under, its language, its index there, its code."""

    section: str
    lang: str
    index: int
    code: str

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.section, self.lang, self.index)


def parse_blocks(text: str) -> list[Block]:
    """Fenced blocks of the page, keyed by the number of their ``## N.`` section (or its title)."""
    blocks: list[Block] = []
    section = ""
    counts: dict[tuple[str, str], int] = {}
    fence = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.S | re.M)
    pos = 0
    for m in fence.finditer(text):
        for heading in re.findall(r"^## (.+)$", text[pos : m.start()], re.M):
            number = re.match(r"(\d+)\.", heading)
            section = number.group(1) if number else heading.strip()
        pos = m.end()
        lang = m.group(1)
        i = counts.get((section, lang), 0)
        counts[(section, lang)] = i + 1
        blocks.append(Block(section, lang, i, m.group(2)))
    return blocks


BLOCKS = parse_blocks(SNIPPETS.read_text(encoding="utf-8"))


def by_lang(*langs: str) -> list[Block]:
    return [b for b in BLOCKS if b.lang in langs]


# --- the emulator and the substitution ----------------------------------------------------------------


@dataclass
class Env:
    imds: str
    arm: str
    vars: dict[str, str]
    keyvault: str = ""
    blob: str = ""

    def localise(self, code: str) -> str:
        code = code.replace(f"http://{Imds.ADDRESS}", self.imds)
        code = _ARM_BASE.sub(self.arm, code)
        # The data planes: the vault is the emulator's Key Vault listener, the account path-style on the Blob
        # listener (as the SDK addresses an IP host), and the one documented emulator adjustment of the Key
        # Vault client (its challenge names vault.azure.net, which 127.0.0.1 does not end with).
        code = code.replace("https://<vault-name>.vault.azure.net", self.keyvault)
        code = code.replace("https://<account>.blob.core.windows.net", f"{self.blob}/{STORAGE_ACCOUNT}")
        code = (
            code.replace(
                "credential=ManagedIdentityCredential())",
                "credential=ManagedIdentityCredential(), verify_challenge_resource=False)",
            )
            if "SecretClient(" in code
            else code
        )
        return code.replace("<uami-client-id>", UAMI_READER_CLIENT)


@pytest.fixture(scope="module")
def emu_env() -> Iterator[Env]:
    from mi_helpers.emulator import Emulator

    emu = Emulator(scenario="healthy")
    emu.start()
    try:
        env = child_environ(venv_first=True, **emu.environment())  # python3 = this venv
        env["CURL_CA_BUNDLE"] = emu.ca_bundle
        urls = emu.environment()
        yield Env(
            emu.imds_url.rstrip("/"),
            emu.arm_url.rstrip("/"),
            env,
            urls[EnvVar.MI_HELPERS_KEYVAULT_URL].rstrip("/"),
            urls[EnvVar.MI_HELPERS_BLOB_URL].rstrip("/"),
        )
    finally:
        emu.stop()


def run_python(env: Env, code: str) -> str:
    localised = env.localise(code)
    assert f"{Imds.ADDRESS}" not in localised and 'management.azure.com"' not in localised
    proc = subprocess.run(
        [sys.executable, "-c", localised], env=env.vars, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def run_bash(env: Env, code: str, extra: dict[str, str] | None = None) -> str:
    localised = env.localise(code)
    assert f"http://{Imds.ADDRESS}" not in localised
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", localised],
        env={**env.vars, **(extra or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- expectations: one per python/bash block ----------------------------------------------------------

Check = Callable[[Env, Block], None]


def sign_in(env: Env, block: Block) -> None:
    out = run_python(env, block.code)
    assert re.fullmatch(r"signed in: token eyJ\S{5}… \(\d{3,} chars\), expires at \d{10}\n", out), out


def principal_id(env: Env, block: Block) -> None:
    runner = run_python if block.lang == "python" else run_bash
    assert runner(env, block.code).splitlines() == [SYS_PRINCIPAL]


def vault_token_python(env: Env, block: Block) -> None:
    assert run_python(env, block.code).split() == ["https://vault.azure.net", SYS_PRINCIPAL]


def vault_token_curl(env: Env, block: Block) -> None:
    resource, expires_in = run_bash(env, block.code).split()
    assert resource == "https://vault.azure.net" and 0 < int(expires_in) <= 86400


def uami_python(env: Env, block: Block) -> None:
    assert run_python(env, block.code).split() == [UAMI_READER_PRINCIPAL]


def uami_curl(env: Env, block: Block) -> None:
    client_id, expires_in = run_bash(env, block.code).split()
    assert client_id == UAMI_READER_CLIENT and 0 < int(expires_in) <= 86400


def imds_with_header(env: Env, block: Block) -> None:
    token_type, expires_in, resource, head = run_bash(env, block.code).split()
    assert token_type == "Bearer" and 0 < int(expires_in) <= 86400
    assert resource == "https://management.azure.com/" and head.startswith("eyJ") and head.endswith("…")


def imds_without_header(env: Env, block: Block) -> None:
    out = run_bash(env, block.code)
    assert "Required metadata header not specified" in out and "access_token" not in out


def no_proxy_trap(env: Env, block: Block) -> None:
    # A proxy that refuses every connection, as a broken corporate proxy would from the VM's point of view.
    proxy = f"http://127.0.0.1:{_closed_port()}"
    proxied = {k: proxy for k in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy")}
    proxied.update({"NO_PROXY": "", "no_proxy": ""})
    assert run_bash(env, block.code, proxied).strip() == "200"
    without_fix = "\n".join(
        line for line in block.code.splitlines() if not line.startswith("export NO_PROXY")
    )
    assert without_fix != block.code
    assert run_bash(env, without_fix + " || true", proxied).strip() != "200"  # the trap is real


def secret_python(env: Env, block: Block) -> None:
    out = run_python(env, block.code)
    assert out == f"db-password {SECRET[:3]}… ({len(SECRET)} chars)\n" and SECRET not in out


def blob_python(env: Env, block: Block) -> None:
    assert run_python(env, block.code) == HELLO + "\n"


def data_planes_curl(env: Env, block: Block) -> None:
    out = run_bash(env, block.code)
    assert out == f"{SECRET[:3]}… ({len(SECRET)} chars)\n{HELLO}\n" and SECRET not in out


def emulator_setup(env: Env, block: Block) -> None:
    """The 'run them against the emulator' block starts a standalone emulator and exports its file."""
    import tempfile

    with tempfile.TemporaryDirectory() as cwd:
        code = block.code + (
            '\ncurl -s -o /dev/null -w "%{http_code}\\n" -H Metadata:true '
            '"$AZURE_POD_IDENTITY_AUTHORITY_HOST/metadata/instance/compute?api-version=2021-02-01"'
            '\necho "$MI_HELPERS_TARGET"\nkill %1\nwait\n'
        )
        clean = {k: v for k, v in env.vars.items() if not k.startswith(("AZURE_POD", "MI_HELPERS_"))}
        proc = subprocess.run(
            ["bash", "-c", code], cwd=cwd, env=clean, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.split()[-2:] == ["200", "emulator"]


EXPECTATIONS: dict[tuple[str, str, int], Check] = {
    ("1", "python", 0): sign_in,
    ("2", "python", 0): principal_id,
    ("2", "bash", 0): principal_id,
    ("3", "python", 0): vault_token_python,
    ("3", "bash", 0): vault_token_curl,
    ("4", "python", 0): uami_python,
    ("4", "bash", 0): uami_curl,
    ("5", "bash", 0): imds_with_header,
    ("5", "bash", 1): imds_without_header,
    ("6", "bash", 0): no_proxy_trap,
    ("7", "python", 0): secret_python,
    ("7", "python", 1): blob_python,
    ("7", "bash", 0): data_planes_curl,
    ("Run them against the local emulator", "bash", 0): emulator_setup,
}


def test_every_python_and_curl_snippet_has_exactly_one_expectation() -> None:
    assert {b.key for b in by_lang("python", "bash")} == set(EXPECTATIONS)


@pytest.mark.parametrize("block", by_lang("python", "bash"), ids=lambda b: f"{b.section}-{b.lang}-{b.index}")
def test_snippet_runs_against_the_emulator(block: Block, emu_env: Env) -> None:
    EXPECTATIONS[block.key](emu_env, block)


def test_snippets_never_print_a_whole_token() -> None:
    """No block prints an access token as a whole: it is sliced, measured or kept in a variable."""
    for block in by_lang("python", "bash", "powershell"):
        for line in block.code.splitlines():
            if "access_token" in line and "print" in line:
                assert re.search(r"access_token\"\]\[:\d+\]", line) or "print(json.load(sys.stdin)" in line, (
                    line
                )
            if "token.token" in line:
                assert re.search(r"token\.token\[:\d+\]|len\(token\.token\)|token\.token\.split", line), line
    # A block that extracts the raw token keeps it in a shell variable or function, used as a header only.
    extracting = [b for b in by_lang("bash") if 'print(json.load(sys.stdin)["access_token"])' in b.code]
    assert len(extracting) == 2
    for block in extracting:
        assert block.code.startswith(("token=$(", "token() {")), block.code
        uses = re.findall(r".{0,24}\$\(?token\b", block.code)
        assert uses and all("Authorization: Bearer $" in use for use in uses), uses


# --- az and PowerShell: current parameter names ------------------------------------------------------

# Parameters of the commands the page uses, from the current az CLI (2.6x+) reference.
AZ_PARAMETERS = {
    "login": {"--identity", "--client-id", "--object-id", "--resource-id", "--allow-no-subscriptions"},
    "account show": {"--query", "-o", "--output"},
    "account get-access-token": {"--resource", "--scope", "--query", "-o", "--output"},
    "vm identity show": {"--resource-group", "-g", "--name", "-n", "--query", "-o", "--output"},
    "role assignment create": {"--role", "--assignee-object-id", "--assignee-principal-type", "--scope"},
}
PS_PARAMETERS = {
    "Connect-AzAccount": {"-Identity", "-AccountId", "-Subscription", "-Tenant"},
    "Get-AzContext": set(),
    "Format-List": set(),
    "Get-AzVM": {"-ResourceGroupName", "-Name"},
    "Get-AzAccessToken": {"-ResourceUrl", "-ResourceTypeName"},
    "Invoke-RestMethod": {"-NoProxy", "-WebSession", "-Headers", "-Method", "-Uri"},
    "New-Object": set(),
    "New-AzRoleAssignment": {"-ObjectId", "-RoleDefinitionName", "-Scope"},
}


def _az_commands(block: Block) -> list[str]:
    code = block.code.replace("\\\n", " ")
    return [line.strip() for line in code.splitlines() if re.match(r"\s*az\s", line)]


def test_az_snippets_use_current_flags() -> None:
    blocks = by_lang("azurecli")
    assert blocks, "no az blocks found"
    seen: set[str] = set()
    for block in blocks:
        for command in _az_commands(block):
            words = command.split()[1:]
            group = next(
                (g for g in sorted(AZ_PARAMETERS, key=len, reverse=True) if command.startswith("az " + g)),
                None,
            )
            assert group is not None, f"unexpected az command: {command}"
            seen.add(group)
            flags = {w for w in words if re.fullmatch(r"--?[a-z][\w-]*", w)}
            assert flags <= AZ_PARAMETERS[group], (command, flags - AZ_PARAMETERS[group])
            assert "--msi" not in command and "--username" not in command and " -u " not in f" {command} "
    assert seen == set(AZ_PARAMETERS)
    text = "\n".join(b.code for b in blocks)
    assert "az login --identity\n" in text
    assert "az login --identity --client-id <uami-client-id>" in text


def test_powershell_snippets_use_current_cmdlets_and_parameters() -> None:
    blocks = by_lang("powershell")
    assert blocks, "no PowerShell blocks found"
    seen: set[str] = set()
    for block in blocks:
        code = block.code.replace("`\n", " ")
        assert "AzureRm" not in code and "-MSI" not in code and "-ManagedService" not in code
        for cmdlet, rest in re.findall(r"\b([A-Z][a-z]+-[A-Za-z]+)\b([^|;\n)]*)", code):
            assert cmdlet in PS_PARAMETERS, f"unexpected cmdlet {cmdlet}"
            seen.add(cmdlet)
            params = set(re.findall(r"(?<![\w$])(-[A-Z][A-Za-z]+)", rest))
            assert params <= PS_PARAMETERS[cmdlet], (cmdlet, params - PS_PARAMETERS[cmdlet])
    assert seen == set(PS_PARAMETERS)
    text = "\n".join(b.code for b in blocks)
    assert "Connect-AzAccount -Identity\n" in text
    assert "Connect-AzAccount -Identity -AccountId <uami-client-id>" in text
    assert 'Invoke-RestMethod -NoProxy -Headers @{Metadata="true"}' in text
    assert 'Invoke-RestMethod -WebSession $s -Headers @{Metadata="true"}' in text  # Windows PowerShell 5.1
    assert f'$env:NO_PROXY = "{Imds.ADDRESS},localhost,127.0.0.1"' in text


def test_every_section_offers_python_az_and_powershell() -> None:
    for section in ("1", "2", "3", "4"):
        langs = {b.lang for b in BLOCKS if b.section == section}
        assert {"python", "azurecli", "powershell"} <= langs, (section, langs)
    curl_sections = {b.section for b in by_lang("bash") if "curl" in b.code}
    assert {"2", "3", "4", "5", "6"} <= curl_sections
    imds = [b for b in by_lang("bash") if "curl" in b.code and f"{Imds.ADDRESS}" in b.code]
    assert all('--noproxy "*"' in b.code or "export NO_PROXY" in b.code for b in imds)


def test_the_az_recipe_signs_in_offline_with_the_real_cli(emu_env: Env, tmp_path: Path) -> None:
    """The page's az set-up, run as printed with the real CLI (``.venv-az``): it signs in with the emulated
    identity and reaches nothing but loopback (the network guard covers the CLI's Python too)."""
    from mi_helpers.launch.azure_cli import find_az

    az = find_az()
    if az is None:
        pytest.fail("the az CLI is not installed: run `make azure-cli` (scripts/ensure-azure-cli)", False)
    block = next(b for b in by_lang("azurecli") if "mi_helpers.launch.azure_cli" in b.code)
    code = block.code.replace(".venv/bin/python", sys.executable)
    code += '\naz account show --query "[user.name, name]" -o tsv\n'
    env = {**emu_env.vars, "HOME": str(tmp_path), "PATH": f"{az.parent}:{emu_env.vars['PATH']}"}
    proc = subprocess.run(["bash", "-e", "-c", code], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[-3:-1] == ["systemAssignedIdentity", "Emulated Subscription"], proc.stdout
    assert (tmp_path / ".azure-emulator" / "versionCheck.json").is_file()  # no online version check needed
