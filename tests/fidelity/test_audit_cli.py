"""The real Azure CLI meets the audit's fixes: a typo'd resource, a tag filter, a Reader's write.

Not commands the tutorial prints (those are ``tests/azcli``), but what a learner copies from elsewhere:
``az account get-access-token --resource <typo>``, ``az resource list --tag k=v``, ``az group create``.
Each runs the CLI of ``.venv-az`` against an emulator, signed in with the VM's identity.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.azcli import AzSession, ensure_az, new_session
from support.world import SUB, VM

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    from mi_helpers.emulator import Emulator

    with Emulator(scenario="healthy") as emu:
        yield emu


@pytest.fixture(scope="module")
def az_session(emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> AzSession:
    session = new_session(ensure_az(), emulator, Path(tmp_path_factory.mktemp("az-audit")))
    done = session.run("az login --identity -o none")
    assert done.returncode == 0, done.describe()
    return session


def test_a_typo_d_resource_is_refused_with_aadsts500011(az_session: AzSession) -> None:
    result = az_session.run("az account get-access-token --resource https://managements.azure.com")
    assert result.returncode != 0, result.describe()
    assert "AADSTS500011: The resource principal named https://managements.azure.com" in result.stderr
    ok = az_session.run(
        "az account get-access-token --resource https://vault.azure.net --query tokenType -o tsv"
    )
    assert ok.returncode == 0 and ok.stdout.strip() == "Bearer", ok.describe()


def test_resource_list_by_tag(az_session: AzSession) -> None:
    result = az_session.run("az resource list --tag purpose=mi-tutorial -o json")
    assert result.returncode == 0, result.describe()
    items = json.loads(result.stdout)
    assert [i["name"] for i in items] == [VM]
    assert items[0]["tags"] is None  # filtered by tag: ARM leaves the tags out, as documented
    sent = [r for r in result.requests if r["path"].endswith(f"/subscriptions/{SUB}/resources")]
    assert sent and "tagname" in sent[0]["query"].lower()


def test_a_reader_s_group_create_is_authorization_failed(az_session: AzSession) -> None:
    result = az_session.run("az group create -n rg-new -l westeurope")
    assert result.returncode != 0, result.describe()
    assert "(AuthorizationFailed)" in result.stderr
    assert "'Microsoft.Resources/subscriptions/resourcegroups/write'" in result.stderr
