"""The recorded outcome of every printed az command (``commands.yaml``) and how a run is checked.

``commands.yaml`` lists each command key (``command``, see :mod:`azcli.printed`) with exactly one of:

* ``runs``: runs against the emulator now, each ``{scenario, params, login, grant, setup, append,
  time_compressed, expect}``; ``expect`` holds ``exit`` (default 0) and any of ``stdout`` (exact),
  ``stdout_re`` (full match), ``json`` (the parsed stdout contains this), ``stderr`` (substrings), ``paths``
  (``"METHOD /path"`` prefixes the emulator must have seen, in order);
* ``pending`` (``write`` or ``graph``): the emulator does not serve it yet. ``sends`` is the request
  sequence the CLI sends (checked now, up to the first request the emulator cannot serve yet) and
  ``once_served`` the outcome it must have then: the specification of that emulator work;
* ``needs_azure``: the reason it cannot run off Azure, for a command whose source has no
  ``# needs Azure: …`` marker yet.

Strings may use the canonical placeholders (``<sub>``, ``<rg>``, ``<principalId>``, …), ``<arm>`` (the
emulator's ARM URL, no trailing slash) and ``<guid>`` (in ``sends`` paths: any GUID).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from azcli.printed import FILL

DATA = Path(__file__).with_name("commands.yaml")
LOGINS = ("none", "system", "uami-reader", "operator")
PENDING_KINDS = ("write", "graph")
_GUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def load() -> dict[str, dict[str, Any]]:
    """``commands.yaml`` as ``{key: entry}`` (each entry once: a key recorded twice is an error)."""
    data = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    out: dict[str, dict[str, Any]] = {}
    for entry in data["commands"]:
        key = " ".join(str(entry.pop("command")).split())
        assert key not in out, f"commands.yaml records {key!r} twice"
        out[key] = entry
    return out


def fill_tokens(value: Any, extra: Mapping[str, str]) -> Any:
    """Fill placeholders in every string of ``value`` (nested lists and dicts too)."""
    if isinstance(value, str):
        for token, text in {**FILL, **extra}.items():
            value = value.replace(token, text)
        return value
    if isinstance(value, list):
        return [fill_tokens(v, extra) for v in value]
    if isinstance(value, dict):
        return {fill_tokens(k, extra): fill_tokens(v, extra) for k, v in value.items()}
    return value


@dataclass
class Run:
    """One run of a command: where, as whom, and what must come out."""

    scenario: str = "healthy"
    params: dict[str, Any] = field(default_factory=dict)
    login: str = "system"
    #: Role assignments made before the run, through the emulator's admin API (set-up, not the lesson):
    #: ``{principal_id, role, scope}`` each.
    grant: list[dict[str, str]] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)
    append: str = ""
    time_compressed: bool = False
    expect: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Run:
        unknown = set(raw) - set(cls.__dataclass_fields__)
        assert not unknown, f"unknown run keys {sorted(unknown)}"
        run = cls(**raw)
        assert run.login in LOGINS, f"login {run.login!r} not in {LOGINS}"
        return run


#: A shell prelude that compresses waits: ``sleep 60`` sleeps 0.1 s (time compressed: 60 s -> 0.1 s).
TIME_COMPRESSION = "sleep() { command sleep 0.1; }\n"


def is_subset(expected: Any, actual: Any) -> bool:
    """``expected`` is contained in ``actual`` (dict keys recursively, lists element-wise, equal scalars)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and is_subset(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(is_subset(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return bool(expected == actual)


def _output_problems(exp: Mapping[str, Any], result: Any) -> list[str]:
    problems = []
    out = result.stdout.strip()
    if "stdout" in exp and out != str(exp["stdout"]).strip():
        problems.append(f"stdout {out!r} is not {exp['stdout']!r}")
    if "stdout_re" in exp and not re.fullmatch(exp["stdout_re"], out, re.S):
        problems.append(f"stdout {out!r} does not match {exp['stdout_re']!r}")
    if "json" in exp:
        try:
            parsed = json.loads(out)
        except ValueError:
            problems.append("stdout is not JSON")
        else:
            if not is_subset(exp["json"], parsed):
                problems.append(f"stdout JSON {parsed!r} does not contain {exp['json']!r}")
    problems += [f"stderr lacks {text!r}" for text in exp.get("stderr", []) if text not in result.stderr]
    if "stderr" not in exp and result.returncode == 0 and result.stderr.strip():
        problems.append(f"unexpected stderr {result.stderr.strip()[:300]!r}")
    return problems


def _path_problems(wanted: list[str], requests: list[dict[str, Any]]) -> list[str]:
    seen = [f"{r['method']} {r['path']}" for r in requests]
    pos = 0
    for want in wanted:
        while pos < len(seen) and not seen[pos].startswith(want):
            pos += 1
        if pos == len(seen):
            return [f"no request {want!r} (in order) among {seen}"]
        pos += 1
    return []


def check(expect: Mapping[str, Any], result: Any, tokens: Mapping[str, str]) -> list[str]:
    """What differs between ``expect`` and an :class:`support.azcli.AzResult` (empty: it matches)."""
    exp = fill_tokens(dict(expect), tokens)
    problems = []
    if result.returncode != exp.get("exit", 0):
        problems.append(f"exit {result.returncode}, expected {exp.get('exit', 0)}")
    problems += _output_problems(exp, result)
    problems += _path_problems(exp.get("paths", []), result.requests)
    return problems


def sends_pattern(item: Mapping[str, Any], tokens: Mapping[str, str]) -> tuple[str, re.Pattern[str], str]:
    """``(method, path regex, api-version)`` of one recorded request (``<guid>`` matches any GUID)."""
    path = fill_tokens(item["path"], tokens)
    regex = re.escape(path).replace(re.escape("<guid>"), _GUID)
    return item["method"], re.compile(regex + "$", re.IGNORECASE), str(item.get("api-version", ""))
