"""Check a JSON body against the model classes the Azure SDKs generate from the OpenAPI/TypeSpec specs.

Two generations of generated code are in use:

* TypeSpec-generated models (``azure-mgmt-compute`` 39, ``azure-mgmt-resource`` 26): classes built on
  ``_utils/model_base.py``, one ``rest_field(name=...)`` per wire key, the wire type in the attribute's
  annotation (``Optional[...]`` when the spec does not require it);
* msrest-style models (``azure-mgmt-msi``, ``azure-mgmt-authorization``, the Azure CLI's
  ``azure-mgmt-resource`` subscriptions): ``_attribute_map`` (attribute -> wire key, dotted when the spec
  nests it under ``properties``; wire type ``str``/``[T]``/``{T}``/model name) and ``_validation``
  (``required``). Those are read from the source with :mod:`ast`, so a model of another virtual environment
  (the CLI's ``.venv-az``) is checked without importing it.

Both are turned into one :class:`Schema` tree, and :func:`problems` walks a body against it: a key the spec
does not define, a primitive of the wrong type, a required property missing or null. Each problem names the
JSON path of the offending key (``$.properties.osProfile.secrets[0].vaultCertificates``).
"""

from __future__ import annotations

import ast
import datetime
import enum
import importlib
import re
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Union

__all__ = ["Schema", "from_msrest_source", "from_typespec", "problems"]

_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?(Z|[+-]\d\d:\d\d)?$")


@dataclass
class Schema:
    """The spec's shape of one JSON value.

    ``kind`` is ``object`` (``fields`` by wire key, ``required`` keys, ``extra`` = additional properties
    allowed), ``array``/``map`` (``item``), or a primitive: ``str``, ``int``, ``float``, ``bool``,
    ``datetime``, ``any``.
    """

    kind: str
    name: str = ""
    fields: dict[str, Schema] = field(default_factory=dict)
    required: set[str] = field(default_factory=set)
    item: Schema | None = None
    extra: bool = False


ANY = Schema("any")


def problems(body: Any, schema: Schema, path: str = "$") -> list[str]:
    """Every way ``body`` departs from ``schema``, each with its JSON path."""
    if schema.kind == "any":
        return []
    if schema.kind == "object":
        return _object_problems(body, schema, path)
    if schema.kind in ("array", "map"):
        container = list if schema.kind == "array" else dict
        if not isinstance(body, container):
            return [f"{path}: expected {schema.kind}, got {type(body).__name__} {body!r:.60}"]
        assert schema.item is not None
        pairs = enumerate(body) if isinstance(body, list) else body.items()
        out: list[str] = []
        for key, value in pairs:
            where = f"{path}[{key}]" if isinstance(body, list) else f"{path}[{key!r}]"
            if value is not None:
                out.extend(problems(value, schema.item, where))
        return out
    return _primitive_problems(body, schema.kind, path)


def _object_problems(body: Any, schema: Schema, path: str) -> list[str]:
    if not isinstance(body, dict):
        return [f"{path}: expected object ({schema.name}), got {type(body).__name__} {body!r:.60}"]
    out = []
    for key, value in body.items():
        sub = schema.fields.get(key)
        if sub is None:
            if not schema.extra:
                out.append(f"{path}.{key}: not defined by the spec ({schema.name})")
            continue
        if value is None:
            if key in schema.required:
                out.append(f"{path}.{key}: required by the spec ({schema.name}), but null")
            continue
        out.extend(problems(value, sub, f"{path}.{key}"))
    for key in sorted(schema.required - set(body)):
        out.append(f"{path}.{key}: required by the spec ({schema.name}), but missing")
    return out


def _primitive_problems(body: Any, kind: str, path: str) -> list[str]:
    ok = {
        "str": lambda v: isinstance(v, str),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "datetime": lambda v: isinstance(v, str) and bool(_ISO.match(v)),
    }[kind](body)
    return [] if ok else [f"{path}: expected {kind}, got {type(body).__name__} {body!r:.60}"]


# ------------------------------------------------------------------------------ TypeSpec models
def _package_models(cls: type) -> ModuleType:
    """The ``models`` package a generated class belongs to (for its ``"_models.X"`` forward references)."""
    parts = cls.__module__.split(".")
    return importlib.import_module(".".join(parts[: parts.index("models") + 1]))


def from_typespec(cls: type, _seen: dict[type, Schema] | None = None) -> Schema:
    """The schema of a ``model_base`` class (``rest_field`` attributes, annotated types)."""
    seen = {} if _seen is None else _seen
    if cls in seen:
        return seen[cls]
    schema = Schema("object", cls.__name__)
    seen[cls] = schema
    cls({})  # the generated Model computes its _attr_to_rest_field table on first construction
    module = sys.modules[cls.__module__]
    namespace = {**vars(module), "_models": _package_models(cls)}
    hints = typing.get_type_hints(cls, globalns=namespace)
    for attr, rest_field in cls._attr_to_rest_field.items():  # type: ignore[attr-defined]
        hint = hints.get(attr, Any)
        optional, inner = _unwrap_optional(hint)
        schema.fields[rest_field._rest_name] = _from_hint(inner, seen)
        if not optional:
            schema.required.add(rest_field._rest_name)
    return schema


def _unwrap_optional(hint: Any) -> tuple[bool, Any]:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is Union and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return True, rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007
    return False, hint


def _from_hint(hint: Any, seen: dict[type, Schema]) -> Schema:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return ANY
    if origin is list:
        return Schema("array", item=_from_hint(args[0], seen))
    if origin is dict:
        return Schema("map", item=_from_hint(args[1], seen))
    if origin is Union:  # str or an enum, a union of models…: the first usable member decides
        members = [a for a in args if a is not type(None)]
        if any(a is str for a in members):
            return Schema("str")
        return _from_hint(members[0], seen)
    if origin is typing.Literal:
        return Schema("str") if all(isinstance(a, str) for a in args) else ANY
    return _from_class(hint, seen) if isinstance(hint, type) else ANY


def _from_class(hint: type, seen: dict[type, Schema]) -> Schema:
    for base, kind in ((bool, "bool"), (enum.Enum, "str"), (str, "str"), (int, "int"), (float, "float")):
        if issubclass(hint, base):
            return Schema(kind)
    if issubclass(hint, datetime.datetime):
        return Schema("datetime")
    if hasattr(hint, "_attr_to_rest_field") or hasattr(hint, "_is_model"):
        return from_typespec(hint, seen)
    return ANY


# ------------------------------------------------------------------------------ msrest models
@dataclass
class _MsrestClass:
    bases: list[str]
    attribute_map: dict[str, dict[str, str]]
    validation: dict[str, dict[str, Any]]


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        return {}


def _read_msrest(path: Path) -> dict[str, _MsrestClass]:
    tree = ast.parse(path.read_text("utf-8"))
    classes = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        attr_map: dict[str, dict[str, str]] = {}
        validation: dict[str, dict[str, Any]] = {}
        for stmt in node.body:
            if (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
            ):
                if stmt.targets[0].id == "_attribute_map":
                    attr_map = _literal(stmt.value)
                elif stmt.targets[0].id == "_validation":
                    validation = _literal(stmt.value)
        bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
        classes[node.name] = _MsrestClass(bases, attr_map, validation)
    return classes


def from_msrest_source(models_file: Path, class_name: str) -> Schema:
    """The schema of an msrest-style model, read from its ``_models_py3.py`` without importing it."""
    classes = _read_msrest(models_file)
    return _msrest_schema(classes, class_name, {})


def _merged(classes: dict[str, _MsrestClass], name: str) -> tuple[dict[str, dict[str, str]], dict[str, Any]]:
    """A class's attribute map and validation, its bases' included (a subclass redeclares what it keeps)."""
    cls = classes[name]
    if cls.attribute_map:
        return cls.attribute_map, cls.validation
    for base in cls.bases:
        if base in classes:
            return _merged(classes, base)
    return {}, {}


def _msrest_schema(classes: dict[str, _MsrestClass], name: str, seen: dict[str, Schema]) -> Schema:
    if name in seen:
        return seen[name]
    schema = Schema("object", name)
    seen[name] = schema
    attr_map, validation = _merged(classes, name)
    for attr, spec in attr_map.items():
        key, wire_type = spec.get("key", attr), spec.get("type", "object")
        if key == "":  # additional_properties
            schema.extra = True
            continue
        parts = [p.replace("\\.", ".") for p in re.split(r"(?<!\\)\.", key)]
        node = schema
        for part in parts[:-1]:
            node = node.fields.setdefault(part, Schema("object", f"{name}.{part}"))
        node.fields[parts[-1]] = _msrest_type(classes, wire_type, seen)
        if validation.get(attr, {}).get("required"):
            node.required.add(parts[-1])
    return schema


def _msrest_type(classes: dict[str, _MsrestClass], wire: str, seen: dict[str, Schema]) -> Schema:
    if wire.startswith("[") and wire.endswith("]"):
        return Schema("array", item=_msrest_type(classes, wire[1:-1], seen))
    if wire.startswith("{") and wire.endswith("}"):
        return Schema("map", item=_msrest_type(classes, wire[1:-1], seen))
    primitive = {
        "str": "str",
        "int": "int",
        "long": "int",
        "float": "float",
        "bool": "bool",
        "iso-8601": "datetime",
        "rfc-1123": "str",
        "duration": "str",
        "object": "any",
    }.get(wire)
    if primitive is not None:
        return ANY if primitive == "any" else Schema(primitive)
    if wire in classes:
        return _msrest_schema(classes, wire, seen)
    return ANY
