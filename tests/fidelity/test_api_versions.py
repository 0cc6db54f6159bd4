"""Every api-version a pinned client sends for an emulated route is one the emulator accepts.

The emulator refuses an api-version its resource type does not have (``arm/apiversions.py``), as ARM does.
Its lists must therefore hold every version the project's clients can send: the management SDKs of
``.venv`` and the Azure CLI of ``.venv-az`` (its bundled SDKs and its own generated ``aaz`` commands). This
test reads their request builders (URL template + default api-version) and fails on a version missing
from the emulator's list for that type: upgrading a pinned client cannot silently break it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from mi_helpers.emulator.arm import apiversions as av

REPO = Path(__file__).resolve().parents[2]
_URL = re.compile(r'"(/(?:subscriptions|providers|\{scope\})[^"]*)"')
_VERSION = re.compile(r'"api-version",\s*"(\d{4}-\d{2}-\d{2}(?:-preview)?)"')
_FOLDER = re.compile(r"[/\\]v(\d{4})_(\d{2})_(\d{2})(_preview)?[/\\]")
#: URL-template endings of the emulated routes -> the emulator's api-versions of that type.
_TYPES: list[tuple[re.Pattern[str], av.TypeVersions]] = [
    (
        re.compile(r"/providers/microsoft\.compute/virtualmachines(/\{vmname\})?$"),
        av.COMPUTE_VIRTUAL_MACHINES,
    ),
    (
        re.compile(r"/providers/microsoft\.managedidentity/userassignedidentities(/\{resourcename\})?$"),
        av.MSI_USER_ASSIGNED_IDENTITIES,
    ),
    (
        re.compile(r"/providers/microsoft\.authorization/roleassignments(/\{roleassignmentname\})?$"),
        av.AUTHORIZATION_ROLE_ASSIGNMENTS,
    ),
    (
        re.compile(r"/providers/microsoft\.authorization/roledefinitions(/\{roledefinitionid\})?$"),
        av.AUTHORIZATION_ROLE_DEFINITIONS,
    ),
    (re.compile(r"^/subscriptions(/\{subscriptionid\})?$"), av.RESOURCES),
    (
        re.compile(r"^/subscriptions/\{subscriptionid\}/resourcegroups(/\{resourcegroupname\})?$"),
        av.RESOURCES,
    ),
    (
        re.compile(r"^/subscriptions/\{subscriptionid\}(/resourcegroups/\{resourcegroupname\})?/resources$"),
        av.RESOURCES,
    ),
]


def _site_packages(venv: str) -> Path | None:
    found = sorted((REPO / venv / "lib").glob("python3*/site-packages"))
    return found[0] if found else None


def _scan(roots: list[Path]) -> dict[str, set[tuple[str, str]]]:
    """URL template -> {(api-version, where)} for every request builder under ``roots``."""
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for root in roots:
        for f in root.rglob("*.py"):
            if "aio" in f.parts or f.name.startswith("test"):
                continue
            text = f.read_text("utf-8", errors="replace")
            if "api-version" not in text and "api_version" not in text:
                continue
            m = _FOLDER.search(str(f))
            folder = f"{m[1]}-{m[2]}-{m[3]}" + ("-preview" if m[4] else "") if m else None
            chunks = re.split(r"\n(?=def |class |    def )", text)
            for i, chunk in enumerate(chunks):
                for url in _URL.findall(chunk):
                    versions = _VERSION.findall(chunk) or _VERSION.findall(
                        "\n".join(chunks[max(0, i - 3) : i + 4])
                    )
                    for v in versions or ([folder] if folder else []):
                        found[url].add((v, str(f.relative_to(root))))
    return found


def _missing(roots: list[Path]) -> list[str]:
    out = []
    for url, versions in _scan(roots).items():
        low = url.lower()
        for pattern, table in _TYPES:
            if pattern.search(low):
                out += [
                    f"{url} api-version={v} ({where})"
                    for v, where in sorted(versions)
                    if not table.accepts(v)
                ]
    return out


def test_every_version_the_management_sdks_send_is_accepted() -> None:
    site = _site_packages(".venv")
    assert site is not None, "no .venv (make .venv/.installed)"
    roots = [site / "azure" / "mgmt" / p for p in ("compute", "resource", "msi", "authorization")]
    assert all(r.is_dir() for r in roots), roots
    missing = _missing(roots)
    assert not missing, "api-versions the SDKs send that the emulator refuses:\n  " + "\n  ".join(missing)


@pytest.mark.slow
def test_every_version_the_azure_cli_sends_is_accepted() -> None:
    site = _site_packages(".venv-az")
    if site is None:
        pytest.skip("the Azure CLI is not installed here (scripts/ensure-azure-cli)")
    roots = [site / "azure" / "mgmt" / p for p in ("compute", "resource", "msi", "authorization")]
    roots += [
        site / "azure" / "cli" / "command_modules" / p
        for p in ("vm", "role", "resource", "identity", "profile")
    ]
    roots += [site / "azure" / "cli" / "core"]
    missing = _missing([r for r in roots if r.is_dir()])
    assert not missing, "api-versions the Azure CLI sends that the emulator refuses:\n  " + "\n  ".join(
        missing
    )


def test_the_scan_finds_what_the_sdks_send() -> None:
    """Not vacuous: the SDK's own VM and role-assignment versions are found."""
    site = _site_packages(".venv")
    assert site is not None
    found = _scan([site / "azure" / "mgmt" / "compute", site / "azure" / "mgmt" / "authorization"])
    vm = (
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
        "/providers/Microsoft.Compute/virtualMachines/{vmName}"
    )
    assert "2026-04-01" in {v for v, _ in found[vm]}
    assert "2022-04-01" in {v for v, _ in found["/{scope}/providers/Microsoft.Authorization/roleAssignments"]}
