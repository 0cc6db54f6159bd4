"""Every body of the walk conforms to the spec: ARM's to the SDK models generated from the OpenAPI/TypeSpec
specs, IMDS's to the documented IMDS schema (docs/protocol.md#instance-metadata).

A key the spec does not define, a primitive of the wrong type, a required property missing: each fails
with the JSON path of the offending key. The bodies come from real HTTP requests to a running emulator
(``walk.py``), one probe per route and case, and a last test checks that every ARM route was walked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fidelity import imds_schema
from fidelity.spec import Schema, from_msrest_source, from_typespec, problems
from fidelity.walk import ARM_PROBES, IMDS_PROBES, Result, run_walk

REPO = Path(__file__).resolve().parents[2]

#: Where real ARM departs from its own spec, the emulator follows the real replies; each departure is named
#: here with its evidence and listed in docs/protocol.md#known-differences. (schema name, JSON path) -> why.
KNOWN_SPEC_GAPS: dict[tuple[str, str], str] = {
    ("SubscriptionListResult", "$.count"): "real GET /subscriptions replies carry count {type: Total, value}",
    (
        "SubscriptionListResult",
        "$.nextLink",
    ): "the spec requires nextLink; ARM sends it only when a page follows",
}


def _unexplained(found: list[str]) -> list[str]:
    """``found`` without the problems :data:`KNOWN_SPEC_GAPS` explains."""
    out = []
    for problem in found:
        where, _, what = problem.partition(": ")
        schema = what.rsplit("(", 1)[-1].rstrip(")").split(")", 1)[0] if "(" in what else ""
        if (schema, where) not in KNOWN_SPEC_GAPS:
            out.append(problem)
    return out


def _msrest(package: str, version: str, name: str, root: Path | None = None) -> Schema:
    """An msrest-style model, read from the installed package (or another venv's ``root``)."""
    if root is None:
        import importlib

        module = importlib.import_module(f"azure.mgmt.{package}.{version}.models")
        models_file = Path(str(module.__file__)).parent / "_models_py3.py"
    else:
        models_file = (
            root / "azure" / "mgmt" / package.replace(".", "/") / version / "models" / "_models_py3.py"
        )
    return from_msrest_source(models_file, name)


def _cli_site_packages() -> Path | None:
    found = sorted((REPO / ".venv-az" / "lib").glob("python3*/site-packages"))
    return found[0] if found else None


def _list_of(item: Schema) -> Schema:
    """ARM's list envelope (common-types): ``value`` and, when more pages follow, ``nextLink``."""
    fields = {"value": Schema("array", item=item), "nextLink": Schema("str")}
    return Schema("object", f"list of {item.name}", fields, {"value"})


@pytest.fixture(scope="module")
def schemas() -> dict[str, Schema]:
    from azure.mgmt.compute import models as compute
    from azure.mgmt.resource.resources import models as resources

    detail = from_typespec(resources.ErrorDetail)
    found = {
        "error": Schema("object", "ErrorResponse (common-types)", {"error": detail}, {"error"}),
        "vm": from_typespec(compute.VirtualMachine),
        "resource group": from_typespec(resources.ResourceGroup),
        "generic": from_typespec(resources.GenericResource),
        "expanded": from_typespec(resources.GenericResourceExpanded),
        "identity": _msrest("msi", "v2024_11_30", "Identity"),
        "identity list": _msrest("msi", "v2024_11_30", "UserAssignedIdentitiesListResult"),
        "assignment": _msrest("authorization", "v2022_04_01", "RoleAssignment"),
        "assignment list": _msrest("authorization", "v2022_04_01", "RoleAssignmentListResult"),
        "definition": _msrest("authorization", "v2022_04_01", "RoleDefinition"),
        "definition list": _msrest("authorization", "v2022_04_01", "RoleDefinitionListResult"),
    }
    cli = _cli_site_packages()
    if cli is not None:  # the subscriptions models ship with the Azure CLI's azure-mgmt-resource
        found["subscription"] = _msrest("resource.subscriptions", "v2022_12_01", "Subscription", cli)
        found["subscription list"] = _msrest(
            "resource.subscriptions", "v2022_12_01", "SubscriptionListResult", cli
        )
    return found


_ARM_ROUTES: list[tuple[str, str, bool]] = [
    (r"/subscriptions", "subscription list", False),
    (r"/subscriptions/[^/]+", "subscription", False),
    (r".*/resourcegroups", "resource group", True),
    (r"/subscriptions/[^/]+/resourcegroups/[^/]+", "resource group", False),
    (r".*/resources", "expanded", True),
    (r".*/providers/microsoft\.compute/virtualmachines", "vm", True),
    (r".*/providers/microsoft\.compute/virtualmachines/[^/]+", "vm", False),
    (r".*/providers/microsoft\.managedidentity/userassignedidentities", "identity list", False),
    (r".*/providers/microsoft\.managedidentity/userassignedidentities/[^/]+", "identity", False),
    (r".*/providers/microsoft\.authorization/roleassignments", "assignment list", False),
    (r".*/providers/microsoft\.authorization/roleassignments/[^/]+", "assignment", False),
    (r".*/providers/microsoft\.authorization/roledefinitions", "definition list", False),
    (r".*/providers/microsoft\.authorization/roledefinitions/[^/]+", "definition", False),
    (r".*/providers/[^/]+/[^/]+", "generic", True),
    (r".*/providers/[^/]+/[^/]+/[^/]+", "generic", False),
]


def _arm_schema(result: Result, schemas: dict[str, Schema]) -> Schema:
    if result.status >= 400:
        return schemas["error"]
    path = "/" + "/".join(p for p in result.probe.path.lower().split("/") if p)
    for pattern, name, is_list in _ARM_ROUTES:
        if re.fullmatch(pattern, path):
            if name not in schemas:
                pytest.skip(f"no model for {name!r}: run scripts/ensure-azure-cli (its SDK carries it)")
            return _list_of(schemas[name]) if is_list else schemas[name]
    raise AssertionError(f"no spec model is mapped to {path}")


@pytest.fixture(scope="module")
def arm_results(emulator_for_walk: Any) -> dict[str, Result]:
    return {r.probe.label: r for r in run_walk(emulator_for_walk, ARM_PROBES, "arm")}


@pytest.fixture(scope="module")
def imds_results(emulator_for_walk: Any) -> dict[str, Result]:
    return {r.probe.label: r for r in run_walk(emulator_for_walk, IMDS_PROBES, "imds")}


@pytest.fixture(scope="module")
def emulator_for_walk() -> Iterator[Any]:
    from mi_helpers.emulator import Emulator

    with Emulator() as emu:
        yield emu


@pytest.mark.parametrize("label", [p.label for p in ARM_PROBES])
def test_arm_body_conforms_to_the_sdk_models(label: str, arm_results: dict[str, Result], schemas) -> None:
    result = arm_results[label]
    assert result.status == result.probe.status, (result.status, result.body)
    found = _unexplained(problems(result.body, _arm_schema(result, schemas)))
    assert not found, f"{label}: {result.probe.method} {result.probe.path}\n  " + "\n  ".join(found)


def _imds_schema(result: Result) -> Schema:
    path = result.probe.path
    if isinstance(result.body, dict) and "newest-versions" in result.body:
        return imds_schema.INSTANCE_ERROR  # the api-version refusal is IMDS-wide, the token endpoint's too
    if path.startswith("/metadata/identity/oauth2/token"):
        return imds_schema.TOKEN if result.status == 200 else imds_schema.IDENTITY_ERROR
    if result.status != 200:
        return imds_schema.INSTANCE_ERROR
    if path == "/metadata/identity/info":
        return imds_schema.IDENTITY_INFO
    if path == "/metadata/versions":
        return imds_schema.VERSIONS
    schema = imds_schema.INSTANCE
    for part in path.removeprefix("/metadata/instance").strip("/").split("/"):
        if part:
            schema = schema.fields[part]
    return schema


@pytest.mark.parametrize("label", [p.label for p in IMDS_PROBES])
def test_imds_body_conforms_to_the_documented_schema(label: str, imds_results: dict[str, Result]) -> None:
    result = imds_results[label]
    assert result.status == result.probe.status, (result.status, result.body)
    found = problems(result.body, _imds_schema(result))
    assert not found, f"{label}: {result.probe.path}\n  " + "\n  ".join(found)


def test_every_arm_route_is_walked() -> None:
    """Each route of the ARM layer is matched by at least one probe of the walk."""
    from mi_helpers.emulator.arm import layer

    adapter = layer._URLS.bind("arm.local")
    walked = set()
    for probe in ARM_PROBES:
        try:
            endpoint, args = adapter.match(layer.canonical_path(probe.path.replace("<assignment>", "x")))
        except Exception:  # an error probe (unknown type) matches no route, on purpose
            continue
        walked.add((endpoint, args.get("kind")))
    missing = [
        rule.rule
        for rule in layer._URLS.iter_rules()
        if (rule.endpoint, (rule.defaults or {}).get("kind")) not in walked
    ]
    assert not missing, "routes no probe walks: " + ", ".join(missing)


def test_the_validator_reports_the_path_of_what_is_wrong(schemas: dict[str, Schema]) -> None:
    """The check is not vacuous: a stray key, a wrong type and a missing required key are each named."""
    body = {"name": "vm", "location": "westeurope", "properties": {"vmId": 7, "colour": "blue"}}
    found = problems(body, schemas["vm"])
    assert "$.properties.vmId: expected str, got int 7" in found
    assert "$.properties.colour: not defined by the spec (VirtualMachineProperties)" in found
    assert any(p.startswith("$.location") for p in problems({"name": "vm"}, schemas["vm"]))
    assert any(
        "$.properties.principalId" in p
        for p in problems({"location": "x", "properties": {"principalId": 1}}, schemas["identity"])
    )
