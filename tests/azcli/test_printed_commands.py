"""Every az command the project prints is executed by the real Azure CLI against the emulator.

The commands come from the README, docs/snippets.md, the notebooks and the diagnosis/fix catalogue
(:mod:`azcli.printed`); their outcomes are recorded in ``commands.yaml`` (:mod:`azcli.outcomes`). A printed
command without a recorded outcome fails, and so does a recorded one that is no longer printed: nothing
printed goes untested. The writes run too (docs/protocol.md#arm-writes): as the VM's identity they get ARM's
403, as the operator they succeed and the VM's identity sees the effect next. A command the emulator does not
serve yet (a VM extension's delete) is checked for the requests it sends, and its future outcome is recorded
beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.azcli import AzResult, AzSession, debug_requests

from azcli import outcomes
from azcli.printed import Printed, all_printed, by_key, fill, unknown_placeholders
from azcli.report import NOT_RUN, TIMINGS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

PRINTED = by_key(all_printed())
RECORDED = outcomes.load()
RUNNABLE = sorted(k for k, e in RECORDED.items() if "runs" in e and k in PRINTED)
PENDING = sorted(k for k, e in RECORDED.items() if "pending" in e and k in PRINTED)


def _where(key: str) -> str:
    return ", ".join(p.source for p in PRINTED[key])


def test_every_printed_command_has_exactly_one_recorded_outcome() -> None:
    missing = [k for k in PRINTED if k not in RECORDED and not PRINTED[k][0].needs_azure]
    stale = [k for k in RECORDED if k not in PRINTED]
    assert not missing, "printed az commands with no recorded outcome in commands.yaml:\n" + "\n".join(
        f"  {k!r}  ({_where(k)})" for k in missing
    )
    assert not stale, "commands.yaml records commands nobody prints any more:\n" + "\n".join(
        f"  {k!r}" for k in stale
    )
    for key, entry in RECORDED.items():
        kinds = [k for k in ("runs", "pending", "needs_azure") if k in entry]
        assert len(kinds) == 1, f"{key!r}: needs exactly one of runs / pending / needs_azure, has {kinds}"
        assert not unknown_placeholders(key), f"{key!r}: placeholders the world cannot fill"
        if "pending" in entry:
            assert entry["pending"] in outcomes.PENDING_KINDS, key
            assert entry.get("sends") and entry.get("once_served"), key
        if "runs" in entry:
            assert entry["runs"], key
            for raw in entry["runs"]:
                outcomes.Run.parse(raw)


def test_commands_that_cannot_run_off_azure_are_listed_with_their_reason() -> None:
    """Marked in the source (``# needs Azure: …``) or, until the source says so, in commands.yaml."""
    listed = []
    for key, printed in PRINTED.items():
        reason = printed[0].needs_azure or RECORDED.get(key, {}).get("needs_azure")
        if reason:
            assert len(reason.strip()) > 10, f"{key!r}: say why it cannot run off Azure"
            listed.append((key, _where(key), reason.strip()))
    NOT_RUN[:] = listed
    assert all(isinstance(r, str) for _, _, r in listed)


def _script(printed: Printed, run: outcomes.Run) -> str:
    parts = [outcomes.TIME_COMPRESSION] if run.time_compressed else []
    parts += list(printed.context)
    parts.append(fill(printed.printed))
    if run.append:
        parts.append(fill(run.append))
    return "\n".join(parts)


def _prepare(
    run: outcomes.Run, session_for: Callable[[str], AzSession], emulator: Any, tmp_path: Path
) -> AzSession:
    # The session first: signing in for the first time switches the emulator to healthy.
    session = session_for(run.login).clone(tmp_path / f"run-{len(list(tmp_path.iterdir()))}")
    emulator.set_scenario(run.scenario, **run.params)
    for grant in run.grant:
        emulator.apply_fix("add-role-assignment", **outcomes.fill_tokens(grant, {}))
    for line in run.setup:
        done = session.run(fill(line))
        assert done.returncode == 0, "set-up failed:\n" + done.describe()
    return session


def _tokens(emulator: Any) -> dict[str, str]:
    return {"<arm>": emulator.arm_url.rstrip("/")}


def _shown_output_problem(printed: list[Printed], result: AzResult) -> str | None:
    """A ``$ az …`` line shown with its output (``…`` = the rest is cut): the real output must agree."""
    for p in printed:
        if not p.shown_output:
            continue
        output = (result.stdout + result.stderr).strip()
        for line in p.shown_output.splitlines():
            want = line.strip().removesuffix("…").strip()
            if want and not any(want in got for got in output.splitlines()):
                return f"{p.source} shows {line.strip()!r}, the CLI printed {output[:600]!r}"
    return None


@pytest.mark.parametrize("key", RUNNABLE)
def test_printed_command_has_its_documented_outcome(
    key: str, session_for: Callable[[str], AzSession], emulator: Any, tmp_path: Path
) -> None:
    printed = PRINTED[key]
    try:
        for index, raw in enumerate(RECORDED[key]["runs"]):
            run = outcomes.Run.parse(raw)
            session = _prepare(run, session_for, emulator, tmp_path)
            result = session.run(_script(printed[0], run))
            TIMINGS.append((key, result.seconds))
            problems = outcomes.check(run.expect, result, _tokens(emulator))
            if index == 0 and (shown := _shown_output_problem(printed, result)):
                problems.append(shown)
            assert not problems, (
                f"{key}\n  printed in {_where(key)}\n"
                f"  run {index} in scenario {run.scenario} as {run.login}:\n  "
                + "\n  ".join(problems)
                + "\n"
                + result.describe()
            )
    finally:
        emulator.set_scenario("healthy")


def _observed_calls(result: AzResult) -> list[dict[str, Any]]:
    """The ARM/Graph requests of a run (IMDS token requests left out), with the bodies ``--debug`` logged."""
    bodies = [r for r in debug_requests(result.stderr) if r["method"]]
    calls = []
    for entry in result.requests:
        if entry["listener"] == "imds":
            continue
        body = None
        for i, logged in enumerate(bodies):
            if logged["method"] == entry["method"] and entry["path"].lower() in logged["url"].lower():
                body = logged["body"]
                del bodies[i]
                break
        query = dict(part.partition("=")[::2] for part in entry["query"].split("&") if part)
        calls.append({**entry, "api-version": query.get("api-version", ""), "body": body})
    return calls


@pytest.mark.parametrize("key", PENDING)
def test_pending_command_sends_the_recorded_requests(
    key: str, session_for: Callable[[str], AzSession], emulator: Any, tmp_path: Path
) -> None:
    """The recorded ``sends`` are what the CLI sends, in order, up to what the emulator cannot serve yet.

    They are the specification of the emulator work that will make this command succeed (``once_served``
    records that outcome). Only the requests are asserted here, never the emulator's present refusal.
    """
    entry = RECORDED[key]
    run = outcomes.Run.parse({k: entry[k] for k in ("scenario", "params", "login", "setup") if k in entry})
    try:
        session = _prepare(run, session_for, emulator, tmp_path)
        result = session.run(fill(PRINTED[key][0].printed) + " --debug")
        TIMINGS.append((key, result.seconds))
    finally:
        emulator.set_scenario("healthy")
    calls = _observed_calls(result)
    tokens = _tokens(emulator)
    for index, want in enumerate(entry["sends"]):
        method, path, api_version = outcomes.sends_pattern(want, tokens)
        assert index < len(calls), (
            f"{key}: request {index} ({method} {want['path']}) not sent\n{result.describe()}"
        )
        got = calls[index]
        assert (got["method"], api_version) == (method, got["api-version"]) and path.match(got["path"]), (
            f"{key}: request {index} is {got['method']} {got['path']} api-version={got['api-version']}, "
            f"recorded {method} {want['path']} api-version={api_version}"
        )
        if "body" in want:
            expected = outcomes.fill_tokens(want["body"], tokens)
            assert got["body"] == expected, f"{key}: request {index} body {got['body']!r} != {expected!r}"
