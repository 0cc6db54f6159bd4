"""The ``$filter`` of ARM's resource lists (``GET /subscriptions/{sub}[/resourcegroups/{rg}]/resources``).

The documented grammar (resources.json ``Resources_List``, reproduced in the SDK's docstrings;
docs/protocol.md#resources-and-bodies):

* ``<property> eq|ne '<value>'`` for ``name``, ``resourceType``, ``resourceGroup``, ``location``,
  ``identity``, ``identity/principalId``, ``plan``, ``plan/publisher``, ``plan/product``, ``plan/name``,
  ``plan/version``, ``plan/promotionCode``;
* ``substringof('<value>', name|resourceGroup)``;
* ``tagName eq '<name>' [and tagValue eq '<value>']`` and ``startswith(tagName, '<prefix>')`` -- "when you
  filter by a tag name and value, the tags for each resource are not returned in the results";
* terms joined by ``and``/``or`` (``and`` binds tighter), parentheses, quotes doubled inside a value.

Property names are case-insensitive (the Azure CLI sends ``tagname``/``tagvalue``), and so are names, types,
groups, locations and IDs; a tag value compares exactly (tag values are case-sensitive, Learn "Use tags to
organize your Azure resources"). ``identity eq '<type>'`` compares the identity's ``type``. Anything else is
400 ``InvalidFilterInQueryString``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mi_helpers.emulator.errors import arm_invalid_filter

__all__ = ["ResourceFilter", "parse_filter"]

#: One list entry as the filter sees it: lower-case property -> value, plus ``tags``.
Item = dict[str, Any]
Predicate = Callable[[Item], bool]

_PROPERTIES = frozenset(
    {
        "name",
        "resourcetype",
        "resourcegroup",
        "location",
        "identity",
        "identity/principalid",
        "plan",
        "plan/publisher",
        "plan/product",
        "plan/name",
        "plan/version",
        "plan/promotioncode",
    }
)
_SUBSTRING_PROPERTIES = frozenset({"name", "resourcegroup"})
_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<punct>[(),])|(?P<word>[A-Za-z][A-Za-z0-9/_.]*))")


@dataclass(frozen=True)
class ResourceFilter:
    """A parsed ``$filter``: the predicate, and whether it filters by tag (then ``tags`` are left out)."""

    matches: Predicate
    by_tag: bool


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._tokenize(text)
        self.pos = 0
        self.by_tag = False

    def _tokenize(self, text: str) -> list[tuple[str, str]]:
        out, i = [], 0
        while i < len(text):
            if text[i:].strip() == "":
                break
            m = _TOKEN.match(text, i)
            if m is None:
                raise arm_invalid_filter(self.text)
            kind = m.lastgroup or ""
            value = m.group(kind)
            out.append((kind, value[1:-1].replace("''", "'") if kind == "str" else value))
            i = m.end()
        return out

    def fail(self) -> Exception:
        return arm_invalid_filter(self.text)

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str, value: str | None = None) -> str:
        tok = self.peek()
        if tok is None or tok[0] != kind or (value is not None and tok[1].lower() != value):
            raise self.fail()
        self.pos += 1
        return tok[1]

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and tok[0] == "word" and tok[1].lower() == word:
            self.pos += 1
            return True
        return False

    # or_expr := and_expr ('or' and_expr)* ; and_expr := term ('and' term)*
    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.keyword("or"):
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda item: any(p(item) for p in parts))

    def and_expr(self) -> Predicate:
        terms = [self.term()]
        while self.keyword("and"):
            terms.append(self.term())
        return _tag_pairs(terms)

    def term(self) -> Any:
        tok = self.peek()
        if tok == ("punct", "("):
            self.pos += 1
            inner = self.or_expr()
            self.take("punct", ")")
            return inner
        word = self.take("word").lower()
        if word == "substringof":
            return self._substringof()
        if word == "startswith":
            return self._startswith()
        op = self.take("word").lower()
        if op not in ("eq", "ne"):
            raise self.fail()
        value = self.take("str")
        if word in ("tagname", "tagvalue"):
            self.by_tag = True
            if op != "eq":
                raise self.fail()
            return _TagTerm(word, value)
        if word not in _PROPERTIES:
            raise self.fail()
        want = value.lower()
        if op == "eq":
            return lambda item: str(item.get(word, "")).lower() == want
        return lambda item: str(item.get(word, "")).lower() != want

    def _substringof(self) -> Predicate:
        self.take("punct", "(")
        needle = self.take("str").lower()
        self.take("punct", ",")
        prop = self.take("word").lower()
        self.take("punct", ")")
        if prop not in _SUBSTRING_PROPERTIES:
            raise self.fail()
        return lambda item: needle in str(item.get(prop, "")).lower()

    def _startswith(self) -> Predicate:
        self.take("punct", "(")
        if self.take("word").lower() != "tagname":
            raise self.fail()
        self.take("punct", ",")
        prefix = self.take("str").lower()
        self.take("punct", ")")
        self.by_tag = True
        return lambda item: any(k.lower().startswith(prefix) for k in item.get("tags", {}))


@dataclass(frozen=True)
class _TagTerm:
    """``tagName eq`` or ``tagValue eq``: joined into one tag test by the ``and`` they appear in."""

    kind: str
    value: str

    def __call__(self, item: Item) -> bool:
        tags: dict[str, str] = item.get("tags", {})
        if self.kind == "tagname":
            return any(k.lower() == self.value.lower() for k in tags)
        return self.value in tags.values()


def _tag_pairs(terms: list[Any]) -> Predicate:
    """The ``and`` of ``terms``, where ``tagName eq 'k' and tagValue eq 'v'`` means one tag ``k`` = ``v``."""
    names = [t for t in terms if isinstance(t, _TagTerm) and t.kind == "tagname"]
    values = [t for t in terms if isinstance(t, _TagTerm) and t.kind == "tagvalue"]
    others = [t for t in terms if not isinstance(t, _TagTerm)]
    if len(names) == 1 and len(values) == 1:
        key, value = names[0].value.lower(), values[0].value

        def pair(item: Item) -> bool:
            return any(k.lower() == key and v == value for k, v in item.get("tags", {}).items())

        others.append(pair)
    else:
        others.extend(names + values)
    if len(others) == 1:
        single: Predicate = others[0]
        return single
    return lambda item: all(p(item) for p in others)


def parse_filter(text: str | None) -> ResourceFilter | None:
    """The ``$filter`` of a resource list, or None when it is absent or empty (the CLI sends ``$filter=``)."""
    if text is None or not text.strip():
        return None
    parser = _Parser(text)
    predicate = parser.or_expr()
    if parser.peek() is not None:
        raise parser.fail()
    return ResourceFilter(predicate, parser.by_tag)
