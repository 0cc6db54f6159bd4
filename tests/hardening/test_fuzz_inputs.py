"""Fuzzing the helpers' input handling: validators, scenario parameters and the widgets' value handlers.

Whatever a learner types, the answer is either an accepted value or ONE line that names the field
(``mi_helpers.validate.InputError``) — never another exception, never a traceback, never several lines.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mi_helpers import validate as v
from mi_helpers.validate import InputError

SETTINGS = settings(
    max_examples=150,
    deadline=None,  # the machine is shared; a slow example is not a failure here (speed lives in bench/)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=False,
)


def _b64(obj: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


# An unsigned JWT built at run time (no token-shaped string is committed).
_UNSIGNED_JWT = f"{_b64({'alg': 'none'})}.{_b64({'sub': 'x', 'aud': 'https://management.azure.com'})}."

# Text that looks like what people paste: GUID-ish, paths, URIs, whitespace, control and odd Unicode.
_pieces = st.sampled_from(
    [
        "1b3d5f7a-9c1e-4b3d-8f5a-7c9e1b3d5f7a",
        "/subscriptions/",
        "/resourceGroups/",
        "rg-mi-tutorial",
        "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/",
        "uami-reader",
        "https://",
        "api://",
        "management.azure.com",
        "/.default",
        " ",
        "\n",
        "\t",
        "\r\n",
        "\x00",
        "…",
        "é",
        "𝔘",
        ",",
        ";",
        ".",
        "-",
        "_",
        "(",
        ")",
        "//",
        _UNSIGNED_JWT,
    ]
)
texts = st.one_of(st.text(max_size=200), st.lists(_pieces, max_size=12).map("".join))
anything = st.one_of(
    texts,
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.binary(max_size=40),
    st.lists(texts, max_size=3),
    st.tuples(texts),
    st.dictionaries(texts, texts, max_size=2),
)


def assert_one_line_naming(exc: InputError, field: str) -> None:
    text = str(exc)
    assert "\n" not in text and "\r" not in text, text
    assert text.startswith(f"{field}"), (field, text)
    assert "Traceback" not in text
    assert exc.field.startswith(field)


VALIDATORS = [
    (v.validate_guid, "client_id"),
    (v.validate_vm_name, "vm_name"),
    (v.validate_resource_group, "resource_group"),
    (v.validate_uami_resource_id, "resource_id"),
    (v.validate_resource, "resource"),
    (v.validate_arm_scope, "scope"),
    (v.validate_scenario, "scenario"),
]


@pytest.mark.parametrize(("fn", "field"), VALIDATORS, ids=[f.__name__ for f, _ in VALIDATORS])
@SETTINGS
@given(value=anything)
def test_validators_accept_or_give_one_line(fn: Any, field: str, value: Any) -> None:
    try:
        out = fn(value)
    except InputError as exc:
        assert_one_line_naming(exc, field)
    else:
        assert isinstance(out, str) and out == out.strip() and out


@SETTINGS
@given(value=anything)
def test_validators_name_the_field_they_are_told(value: Any) -> None:
    for fn, _ in VALIDATORS:
        if fn is v.validate_scenario:
            continue
        try:
            fn(value, field="my_field")
        except InputError as exc:
            assert_one_line_naming(exc, "my_field")


@SETTINGS
@given(client_id=anything, object_id=anything, resource_id=anything)
def test_selector_accepts_at_most_one(client_id: Any, object_id: Any, resource_id: Any) -> None:
    try:
        out = v.validate_one_selector(client_id, object_id, resource_id)
    except InputError as exc:
        assert "\n" not in str(exc)
        assert exc.field in ("identity", "client_id", "object_id", "resource_id") or exc.field.startswith(
            "resource_id"
        )
    else:
        given_ = [x for x in (client_id, object_id, resource_id) if x]
        assert (out is None) == (not given_)
        if out is not None:
            assert out[0] in ("client_id", "object_id", "resource_id")


@SETTINGS
@given(name=anything, cloud=anything)
def test_scope_for_and_audiences(name: Any, cloud: Any) -> None:
    from mi_helpers import clouds as audiences

    try:
        scope = audiences.scope_for(name, cloud)
    except InputError as exc:
        assert "\n" not in str(exc)
        assert exc.field in ("service", "cloud"), str(exc)
    else:
        assert scope.endswith("/.default") or "://" in scope


@SETTINGS
@given(resource=anything)
def test_requested_scope_of_token_resources(resource: Any) -> None:
    from mi_helpers.identity import requested_scope

    try:
        scope = requested_scope(resource)
    except InputError as exc:
        assert_one_line_naming(exc, exc.field)
        assert exc.field in ("resource", "service")
    else:
        assert scope.endswith("/.default")


@SETTINGS
@given(
    scenario=st.sampled_from(
        ["imds-updating", "imds-throttled", "identity-propagating", "foreign-metadata-server", "healthy"]
    ),
    overrides=st.dictionaries(
        st.sampled_from(["n", "t", "burst", "rate", "retry_after", "mode", "token_lifetime", "bogus"]),
        anything,
        max_size=3,
    ),
)
def test_scenario_parameters(scenario: str, overrides: dict[str, Any]) -> None:
    from mi_helpers.emulator.scenarios import build_faults, get_scenario, resolve_params

    sc = get_scenario(scenario)
    try:
        params = resolve_params(sc, overrides)
    except InputError as exc:
        assert "\n" not in str(exc)
        assert exc.field in overrides, (exc.field, overrides)
        return
    # Accepted parameters must build faults without blowing up later, inside a request thread.
    try:
        build_faults(sc, params)
    except InputError as exc:  # acceptable only as the same one-line error
        assert "\n" not in str(exc)


@SETTINGS
@given(context=st.dictionaries(texts, anything, max_size=3))
def test_diagnose_context_keys(context: dict[str, Any]) -> None:
    from mi_helpers.diagnosis import DiagnosisContext, diagnose

    known = set(DiagnosisContext.__dataclass_fields__)
    unknown = sorted(set(context) - known)
    try:
        d = diagnose("ManagedIdentityCredential authentication unavailable.", context=context)
    except InputError as exc:
        assert "\n" not in str(exc)
        if unknown:  # rejected for an unknown key (the message lists the known ones)
            assert exc.field == "context" and "expected keys among" in str(exc), (exc, unknown)
        else:  # all keys known: rejected only for a bad value of one of them (a list expected)
            assert exc.field.startswith("context."), exc
            assert exc.field.removeprefix("context.") in context
    else:
        assert not unknown, f"unknown keys accepted: {unknown}"
        assert d.id


@SETTINGS
@given(text=texts)
def test_diagnose_any_text(text: str) -> None:
    """Any message text (pasted az/PowerShell output) gets a diagnosis with a known id, never an error."""
    from mi_helpers.diagnosis import DIAGNOSIS_IDS, diagnose

    d = diagnose(text)
    assert d.id in DIAGNOSIS_IDS
    str(d)


# ------------------------------------------------------------------------------------------------ widgets


def _one_line_error(view: Any, field_names: tuple[str, ...]) -> None:
    shown = view.texts()
    assert "Traceback" not in shown
    lines = [ln for ln in shown.splitlines() if "InputError" in ln]
    assert len(lines) == 1, shown
    assert any(f in lines[0] for f in field_names), lines[0]


@settings(SETTINGS, max_examples=80)
@given(
    sub=st.one_of(
        st.just("3c9e6f1a-52d8-4b7e-a1c4-9d8e7f6a5b4c"),
        st.just(" 00000000-0000-0000-0000-000000000000 "),
        texts,
    ),
    rg=st.one_of(st.sampled_from(["rg-mi-tutorial", "RG-MI-TUTORIAL", "rg-missing"]), texts),
    vm=st.one_of(st.sampled_from(["vm-mi-tutorial", "vm-build-agent", "vm-missing"]), texts),
)
def test_vm_view_values(hardening_emulator: Any, sub: str, rg: str, vm: str) -> None:
    """The VM look-up view: any field values → a principal id, or one line naming a field, or a diagnosis."""
    from mi_helpers.notebook.widgets import VmIdentityView
    from mi_helpers.validate import validate_guid, validate_resource_group, validate_vm_name

    view = VmIdentityView(prefill=False)
    view.subscription.value, view.resource_group.value, view.vm_name.value = sub, rg, vm
    view.lookup()
    shown = view.texts()
    assert "Traceback" not in shown
    try:
        validate_guid(sub.strip(), "subscription_id")
        validate_resource_group(rg.strip())
        validate_vm_name(vm.strip())
    except InputError:
        _one_line_error(view, ("subscription_id", "resource_group", "vm_name"))
    else:  # valid-looking input reached ARM: a principal id, "no identity", or the raw error + diagnosis
        assert (
            (view.principal_id and f"principalId of {vm.strip()}: {view.principal_id}" in shown)
            or "has no system-assigned identity" in shown
            or ("Error (raw text" in shown and "Diagnosis [" in shown)
        ), shown


@SETTINGS
@given(budget=anything)
def test_doctor_view_budget(budget: Any) -> None:
    """A bad budget typed into the doctor view shows one line naming ``budget``, and no checks run."""
    from mi_helpers.notebook.widgets import DoctorView
    from mi_helpers.validate import validate_seconds

    try:
        validate_seconds(budget, "budget")  # numbers and numeric text ("1") are valid budgets
    except InputError:
        pass
    else:
        return  # a valid budget would run the whole checklist: covered by the fault matrix
    view = DoctorView(budget=budget)
    view.run()
    _one_line_error(view, ("budget",))
    assert view.report is None


@SETTINGS
@given(scenario=anything)
def test_doctor_scenario_names(scenario: Any) -> None:
    import mi_helpers
    from mi_helpers.emulator import SCENARIOS

    if scenario is None or (isinstance(scenario, str) and scenario.strip() in SCENARIOS):
        return  # no scenario / a real one would run the checklist: covered by the fault matrix
    with pytest.raises(InputError) as info:
        mi_helpers.doctor(scenario=scenario, budget=1)
    assert_one_line_naming(info.value, "scenario")


@SETTINGS
@given(
    budget=anything,
    read_timeout=anything,
    resource=st.one_of(texts, st.just("arm")),
)
def test_get_token_arguments(budget: Any, read_timeout: Any, resource: Any) -> None:
    """Bad arguments to get_token are refused before any request: one line naming the argument."""
    import mi_helpers
    from mi_helpers.validate import validate_seconds

    def ok_seconds(x: Any) -> bool:  # numbers and numeric text ("1") are valid, as validate_seconds says
        try:
            validate_seconds(x, "x")
        except InputError:
            return False
        return True

    if ok_seconds(budget) and ok_seconds(read_timeout):
        return  # all valid: it would sign in (covered by the fault matrix)
    with pytest.raises(InputError) as info:
        mi_helpers.get_token(resource, budget=budget, read_timeout=read_timeout, progress=False)
    assert "\n" not in str(info.value)
    assert info.value.field in ("budget", "read_timeout", "resource", "service")
