"""The audience table: resource IDs per cloud, friendly names, one-line errors."""

from __future__ import annotations

import pytest

from mi_helpers.clouds import CLOUDS, SERVICES, audiences, cloud_info, resource_for, scope_for, services_in
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
    text = str(exc.value)
    assert text.startswith("service: Event Hubs has no documented resource ID in the Azure China (21Vianet)")
    assert "key vault" in text and "\n" not in text  # names what is documented there instead


def test_unknown_cloud() -> None:
    with pytest.raises(InputError) as exc:
        cloud_info("mars")
    assert str(exc.value).startswith("cloud: 'mars' is not a known cloud")


def test_audiences_dataframe_lists_only_what_the_cloud_documents() -> None:
    df = audiences("public")
    assert list(df.columns) == ["service", "resource_id", "scope", "note"]
    assert len(df) == len(SERVICES)  # every service is documented in the public cloud
    assert all(s.endswith("/.default") for s in df["scope"])
    gov = audiences("usgov").set_index("service")
    assert "Event Hubs" not in gov.index and "Service Bus" not in gov.index
    assert gov.loc["Key Vault", "resource_id"] == "https://vault.usgovcloudapi.net"
    assert gov.loc["Storage", "resource_id"] == "https://storage.azure.us/"
    china = audiences("china").set_index("service")
    assert china.loc["Storage", "resource_id"] == "https://storage.azure.cn/"
    assert china.loc["Log Analytics", "resource_id"] == "https://api.loganalytics.azure.cn"
    for cloud in CLOUDS:
        table = audiences(cloud)
        assert (table["resource_id"] != "").all(), cloud
        assert [s.name for s in services_in(cloud)] == list(table["service"])
        for name in table["service"]:  # what a table or a form offers for a cloud has a scope there
            assert scope_for(name, cloud).endswith("/.default")


def test_notes_are_facts_with_a_source() -> None:
    for svc in SERVICES:
        text = f"{svc.note} {svc.source}"
        for remark in ("UNCONFIRMED", "third-party", "not listed", "US Gov"):
            assert remark.lower() not in text.lower(), (svc.name, remark)
        assert svc.source.startswith(("https://learn.microsoft.com/", "docs/protocol.md")), svc.name


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
