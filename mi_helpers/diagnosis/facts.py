"""Everything a failure shows, read out of it before any classification (:class:`Facts`).

``collect`` reads what the real clients produce: azure-identity (sync and async) exceptions and their
``__cause__``/``__context__`` chain, azure-core ``HttpResponseError`` with ``e.error.code``, MSAL/IMDS error
dicts, response objects, ``SignInError``-like wrappers (attempts, elapsed, url, selector), and az CLI / Az
PowerShell texts given as plain strings.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mi_helpers.diagnosis.context import DiagnosisContext, get_field

__all__ = ["Facts", "collect"]


@dataclass
class Facts:
    """Everything extracted from the failure, before classification."""

    texts: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    arm_code: str | None = None
    arm_message: str | None = None
    oauth_error: str | None = None
    oauth_description: str | None = None
    content_type: str | None = None
    body: str | None = None
    url: str | None = None
    attempts: list[Any] = field(default_factory=list)
    elapsed_s: float | None = None
    selector: str | None = None
    kinds: list[str] = field(default_factory=list)

    @property
    def blob(self) -> str:
        return "\n".join(self.texts)

    def has(self, *needles: str) -> bool:
        low = self.blob.lower()
        return any(n.lower() in low for n in needles)

    def type_is(self, *names: str) -> bool:
        return any(t in names for t in self.types)


_TOKEN_ERR_RE = re.compile(r"Token request error: \((?P<err>[^)]*)\) ?(?P<desc>.*)", re.S)
_ARM_CODE_RE = re.compile(r"(?:^|ERROR: )\((?P<code>[A-Za-z]+)\) |(?:^|\n)Code: (?P<code2>[A-Za-z]+)")
_UNEXPECTED_RE = re.compile(r"Unexpected response \"(?P<body>\{.*\})\"", re.S)


def _walk(exc: BaseException) -> list[BaseException]:
    """The exception, its wrapped originals and its cause/context chain, without cycles."""
    seen: list[BaseException] = []
    stack = [exc]
    while stack:
        e = stack.pop(0)
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        for attr in ("original", "sdk_exception", "exception", "inner_exception", "error_exc"):
            inner = getattr(e, attr, None)
            if isinstance(inner, BaseException):
                stack.append(inner)
        stack.extend(x for x in (e.__cause__, e.__context__) if x is not None)
    return seen


def _read_response(facts: Facts, resp: Any) -> None:
    status = getattr(resp, "status_code", None)
    if isinstance(status, int):
        facts.statuses.append(status)
    headers = getattr(resp, "headers", None) or {}
    try:
        ctype = headers.get("content-type") or headers.get("Content-Type")
    except Exception:  # pragma: no cover - exotic header objects
        ctype = None
    if ctype and not facts.content_type:
        facts.content_type = str(ctype)
    try:
        text = resp.text() if callable(getattr(resp, "text", None)) else getattr(resp, "text", None)
    except Exception:
        text = None
    if isinstance(text, str) and text and facts.body is None:
        facts.body = text
        facts.texts.append(text)
        _read_json_text(facts, text)
    req = getattr(resp, "request", None)
    url = getattr(req, "url", None)
    if isinstance(url, str) and not facts.url:
        facts.url = url


def _read_json_text(facts: Facts, text: str) -> None:
    try:
        data = json.loads(text)
    except (ValueError, TypeError):
        return
    _read_mapping(facts, data)


def _read_mapping(facts: Facts, data: Any) -> None:
    if not isinstance(data, Mapping):
        return
    err = data.get("error")
    if isinstance(err, Mapping):
        facts.arm_code = facts.arm_code or _str_or_none(err.get("code"))
        facts.arm_message = facts.arm_message or _str_or_none(err.get("message"))
        if err.get("message"):
            facts.texts.append(str(err["message"]))
    elif isinstance(err, str):
        facts.oauth_error = facts.oauth_error or err
        desc = data.get("error_description")
        if desc:
            facts.oauth_description = facts.oauth_description or str(desc)
            facts.texts.append(str(desc))
    status = data.get("status") or data.get("status_code")
    if isinstance(status, int):
        facts.statuses.append(status)


def _str_or_none(value: Any) -> str | None:
    return str(value) if value else None


def _read_text(facts: Facts, text: str) -> None:
    facts.texts.append(text)
    m = _TOKEN_ERR_RE.search(text)
    if m and not facts.oauth_error:
        facts.oauth_error = m.group("err").strip() or None
        facts.oauth_description = m.group("desc").strip() or None
    m2 = _UNEXPECTED_RE.search(text)
    if m2:
        body = m2.group("body")
        try:  # the async client quotes the body as a Python dict repr
            parsed = ast.literal_eval(body)
        except (ValueError, SyntaxError):
            parsed = None
        _read_mapping(facts, parsed)
    m3 = _ARM_CODE_RE.search(text)
    if m3 and not facts.arm_code:
        facts.arm_code = m3.group("code") or m3.group("code2")
    for status in re.findall(r"\b(?:Status: |http error: |HTTP/1\.[01] |status code:? )(\d{3})\b", text):
        facts.statuses.append(int(status))


def _read_exception(facts: Facts, exc: BaseException) -> None:
    for e in _walk(exc):
        facts.types.append(type(e).__name__)
        _read_text(facts, str(e))
        status = getattr(e, "status_code", None)
        if isinstance(status, int):
            facts.statuses.append(status)
        error = getattr(e, "error", None)
        code = getattr(error, "code", None)
        if isinstance(code, str) and code and not facts.arm_code:
            facts.arm_code = code
            facts.arm_message = getattr(error, "message", None)
        resp = getattr(e, "response", None)
        if resp is not None:
            _read_response(facts, resp)
        _read_extras(facts, e)


def _read_extras(facts: Facts, obj: Any) -> None:
    """Attributes of a SignInError-like wrapper: attempts, elapsed, url, selector, IMDS error fields."""
    attempts = get_field(obj, "attempts")
    if attempts and not facts.attempts and not isinstance(attempts, (str, bytes)):
        facts.attempts = list(attempts)
        for a in facts.attempts:
            st = get_field(a, "status")
            if isinstance(st, int):
                facts.statuses.append(st)
            kind = get_field(a, "kind")
            if isinstance(kind, str) and kind != "ok":
                facts.kinds.append(kind)
    for name in ("elapsed_s", "elapsed"):
        val = get_field(obj, name)
        if isinstance(val, (int, float)) and not isinstance(val, bool) and facts.elapsed_s is None:
            facts.elapsed_s = float(val)
    url = get_field(obj, "url")
    if isinstance(url, str) and url and not facts.url:
        facts.url = url
    sel = get_field(obj, "selector")
    if sel and not facts.selector:
        facts.selector = "=".join(map(str, sel)) if isinstance(sel, tuple) else str(sel)
    err, desc = get_field(obj, "error_code"), get_field(obj, "description")
    if not isinstance(err, str):
        err = get_field(obj, "error")  # an IMDS-style dict, or an older wrapper that used ``error``
    if isinstance(err, str) and err and not facts.oauth_error:
        facts.oauth_error = err
        if isinstance(desc, str) and desc:
            facts.oauth_description = desc
            facts.texts.append(desc)


def collect(subject: Any, ctx: DiagnosisContext) -> Facts:
    facts = Facts()
    if isinstance(subject, BaseException):
        _read_exception(facts, subject)
    elif isinstance(subject, str):
        _read_text(facts, subject)
    elif isinstance(subject, Mapping):
        facts.texts.append(json.dumps(subject, default=str)[:2000])
        _read_mapping(facts, subject)
        _read_extras(facts, subject)
    elif subject is not None:
        facts.types.append(type(subject).__name__)
        _read_response(facts, subject)
        _read_extras(facts, subject)
        for name in ("error", "exception", "diagnosis_source"):
            inner = getattr(subject, name, None)
            if isinstance(inner, BaseException):
                _read_exception(facts, inner)
    if ctx.attempts:  # the caller's history (e.g. several calls) wins over one exception's own attempts
        facts.attempts = list(ctx.attempts)
        facts.statuses.extend(s for s in (get_field(a, "status") for a in ctx.attempts) if isinstance(s, int))
        kinds = (get_field(a, "kind") for a in ctx.attempts)
        facts.kinds = [k for k in kinds if isinstance(k, str) and k != "ok"]
    if ctx.url and not facts.url:
        facts.url = ctx.url
    return facts
