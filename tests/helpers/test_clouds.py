"""The audience table: resource IDs per cloud, friendly names, one-line errors."""

from __future__ import annotations

import pytest

from mi_helpers.clouds import CLOUDS, SERVICES, audiences, cloud_info, resource_for, scope_for
from mi_helpers.validate import InputError


@pytest.mark.parametrize("name", ["key vault", "keyvault", "KV", "Key-Vault", "  key   vault "])
def test_key_vault_aliases(name: str) -> None:
    assert scope_for(name) == "https://vault.azure.net/.default"


def test_sovereign_ids() -> None:
    assert scope_for("arm") == "https://management.azure.com/.default"
    assert scope_for("arm", "usgov") == "https://management.core.usgovcloudapi.net/.default"
    assert scope_for("arm", "AzureChinaCloud") == "https://management.chinacloudapi.cn/.default"
    assert scope_for("key vault", "china") == "https://vault.azure.cn/.default"
    assert resource_for("graph", "usgov") == "https://graph.microsoft.us/"
    assert scope_for("storage") == "https://storage.azure.com/.default"  # trailing slash folded


def test_arm_row_matches_cloud_table() -> None:
    for key, cloud in CLOUDS.items():
        assert scope_for("arm", key) == cloud.arm_scope


def test_unknown_service_lists_known_names() -> None:
    with pytest.raises(InputError) as exc:
        scope_for("blockchain")
    text = str(exc.value)
    assert "\n" not in text
    assert text.startswith("service: 'blockchain' is not a known service")
    assert "key vault" in text and "arm" in text


def test_service_without_id_in_cloud() -> None:
    with pytest.raises(InputError) as exc:
        scope_for("event hubs", "china")
    assert "no resource ID is documented for Event Hubs" in str(exc.value)


def test_unknown_cloud() -> None:
    with pytest.raises(InputError) as exc:
        cloud_info("mars")
    assert str(exc.value).startswith("cloud: 'mars' is not a known cloud")


def test_audiences_dataframe() -> None:
    df = audiences("public")
    assert list(df.columns) == ["service", "resource_id", "scope", "cloud", "note"]
    assert len(df) == len(SERVICES)
    assert set(df["cloud"]) == {"public"}
    row = df.set_index("service").loc["Cognitive Services / Azure AI"]
    assert "UNCONFIRMED" in row["note"]
    assert all(s.endswith("/.default") for s in df["scope"] if s)
    gov = audiences("usgov").set_index("service")
    assert gov.loc["Event Hubs", "resource_id"] == ""
    assert "no resource ID documented" in gov.loc["Event Hubs", "note"]
    assert gov.loc["Key Vault", "resource_id"] == "https://vault.usgovcloudapi.net"


def test_every_alias_resolves_to_its_service() -> None:
    for svc in SERVICES:
        for alias in svc.aliases:
            if svc.public:
                assert resource_for(alias) == svc.public


def test_arm_audiences_per_cloud() -> None:
    from mi_helpers.clouds import CLOUDS
    from mi_helpers.constants import Arm

    assert CLOUDS["public"].arm_audiences == set(Arm.AUDIENCES)  # ARM's own error text lists these four
    for cloud in CLOUDS.values():
        assert cloud.arm_scope.removesuffix("/.default") in cloud.arm_audiences, cloud.name
        assert cloud.cli_resource in cloud.arm_audiences, cloud.name
    assert CLOUDS["usgov"].arm_audiences.isdisjoint(CLOUDS["china"].arm_audiences)
