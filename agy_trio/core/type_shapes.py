"""Type hints as JSON: a hint's JSON schema, and a function checking a value against it.

:func:`type_shape` maps a type hint (``str``, ``int``, ``Literal``, an ``Enum``,
``list``/``tuple``/``dict``, unions, ``Annotated`` descriptions, attrs classes)
to the schema a model sees and a :data:`Coerce` function that checks a JSON
value against the hint and converts it (an ``Enum`` member, an attrs instance).
Types are mapped by hand rather than with pydantic: see
:mod:`agy_trio.core.tool_schema`.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeAlias

import attrs

from agy_trio.core.docstrings import parse_docstring

__all__ = ["JSON_SCALARS", "Coerce", "Mismatch", "Unsupported", "type_shape"]

JSON_SCALARS = (str, int, float, bool, type(None))
"""The JSON scalars a ``Literal``, an ``Enum`` value or a schema default may hold."""


class Mismatch(Exception):
    """An argument value does not fit its annotated type (``path`` says where)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


Coerce: TypeAlias = Callable[[Any, str], Any]
"""Checks a JSON value against a hint and converts it: ``coerce(value, path)``; raises Mismatch."""


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _expected(path: str, kind: str, value: object) -> Mismatch:
    return Mismatch(path, f"expected {kind}, got {_json_type(value)} {value!r}")


def _coerce_str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _expected(path, "a string", value)
    return value


def _coerce_int(value: Any, path: str) -> int:
    # bool is an int subclass but never what an int parameter means; models
    # sometimes send 3.0 for 3, which is harmless to accept.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _expected(path, "an integer", value)


def _coerce_float(value: Any, path: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise _expected(path, "a number", value)


def _coerce_bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _expected(path, "a boolean", value)
    return value


def _coerce_none(value: Any, path: str) -> None:
    if value is not None:
        raise _expected(path, "null", value)


def _coerce_any(value: Any, _path: str) -> Any:
    return value


_PRIMITIVES: dict[Any, tuple[dict[str, Any], Coerce]] = {
    str: ({"type": "string"}, _coerce_str),
    int: ({"type": "integer"}, _coerce_int),
    float: ({"type": "number"}, _coerce_float),
    bool: ({"type": "boolean"}, _coerce_bool),
    type(None): ({"type": "null"}, _coerce_none),
    None: ({"type": "null"}, _coerce_none),
    Any: ({}, _coerce_any),
}


class Unsupported(Exception):
    """A type hint has no JSON-schema equivalent."""


def type_shape(tp: Any, seen: frozenset[type] = frozenset()) -> tuple[dict[str, Any], Coerce]:
    """The JSON schema of ``tp`` and a function that checks and converts a JSON value to it."""
    if tp in _PRIMITIVES:
        schema, coerce = _PRIMITIVES[tp]
        return dict(schema), coerce
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        schema, coerce = type_shape(args[0], seen)
        notes = [note for note in args[1:] if isinstance(note, str)]
        if notes:
            schema["description"] = " ".join(notes)
        return schema, coerce
    if origin is typing.Union or origin is types.UnionType:
        return _union_shape(args, seen)
    if origin is Literal:
        return _literal_shape(args)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_shape(tp)
    if tp is list or origin is list:
        return _list_shape(args[0] if args else Any, seen)
    if tp is tuple or origin is tuple:
        return _tuple_shape(args, seen)
    if tp is dict or origin is dict:
        return _dict_shape(args, seen)
    if isinstance(tp, type) and attrs.has(tp):
        return _attrs_shape(tp, seen)
    raise Unsupported(f"unsupported type {tp!r}")


def _union_shape(args: tuple[Any, ...], seen: frozenset[type]) -> tuple[dict[str, Any], Coerce]:
    members = [type_shape(arg, seen) for arg in args]
    schemas = [schema for schema, _ in members]
    coercers = [coerce for _, coerce in members]
    types_ = [schema.get("type") for schema in schemas]
    if all(isinstance(t, str) for t in types_) and all(len(s) == 1 for s in schemas):
        # Plain scalar unions (the common `X | None`) read best as a type list.
        schema: dict[str, Any] = {"type": list(dict.fromkeys(typing.cast(list[str], types_)))}
    else:
        schema = {"anyOf": schemas}

    def coerce(value: Any, path: str) -> Any:
        # None first: otherwise a null could never reach the null member.
        errors: list[str] = []
        ordered = sorted(coercers, key=lambda c: c is not _coerce_none)
        for member in ordered:
            try:
                return member(value, path)
            except Mismatch as exc:
                errors.append(exc.message)
        raise Mismatch(path, " or ".join(dict.fromkeys(errors)))

    return schema, coerce


def _literal_shape(values: tuple[Any, ...]) -> tuple[dict[str, Any], Coerce]:
    for value in values:
        if not isinstance(value, JSON_SCALARS):
            raise Unsupported(f"Literal value {value!r} is not a JSON scalar")
    schema: dict[str, Any] = {"enum": list(values)}
    kinds = {_json_type(value) for value in values}
    if len(kinds) == 1:
        schema["type"] = kinds.pop()

    def coerce(value: Any, path: str) -> Any:
        # Compare types too: True == 1 and 1 == 1.0 would otherwise slip through.
        for allowed in values:
            if type(value) is type(allowed) and value == allowed:
                return value
        raise Mismatch(path, f"expected one of {list(values)!r}, got {value!r}")

    return schema, coerce


def _enum_shape(cls: type[enum.Enum]) -> tuple[dict[str, Any], Coerce]:
    values = [member.value for member in cls]
    for value in values:
        if not isinstance(value, JSON_SCALARS):
            raise Unsupported(f"{cls.__name__} value {value!r} is not a JSON scalar")
    schema: dict[str, Any] = {"enum": values}
    kinds = {_json_type(value) for value in values}
    if len(kinds) == 1:
        schema["type"] = kinds.pop()

    def coerce(value: Any, path: str) -> enum.Enum:
        if isinstance(value, cls):
            return value
        for member in cls:
            if type(member.value) is type(value) and member.value == value:
                return member
        raise Mismatch(path, f"expected one of {values!r}, got {value!r}")

    return schema, coerce


def _list_shape(item: Any, seen: frozenset[type]) -> tuple[dict[str, Any], Coerce]:
    item_schema, item_coerce = type_shape(item, seen)
    schema: dict[str, Any] = {"type": "array"}
    if item_schema:
        schema["items"] = item_schema

    def coerce(value: Any, path: str) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise _expected(path, "an array", value)
        return [item_coerce(element, f"{path}[{i}]") for i, element in enumerate(value)]

    return schema, coerce


def _tuple_shape(args: tuple[Any, ...], seen: frozenset[type]) -> tuple[dict[str, Any], Coerce]:
    if not args or (len(args) == 2 and args[1] is Ellipsis):
        schema, coerce_list = _list_shape(args[0] if args else Any, seen)

        def coerce_variadic(value: Any, path: str) -> tuple[Any, ...]:
            return tuple(coerce_list(value, path))

        return schema, coerce_variadic
    if args == ((),):  # tuple[()]: the empty tuple
        args = ()
    members = [type_shape(arg, seen) for arg in args]
    schema = {
        "type": "array",
        "prefixItems": [member_schema for member_schema, _ in members],
        "minItems": len(members),
        "maxItems": len(members),
    }

    def coerce(value: Any, path: str) -> tuple[Any, ...]:
        if not isinstance(value, list | tuple):
            raise _expected(path, "an array", value)
        if len(value) != len(members):
            raise Mismatch(path, f"expected {len(members)} items, got {len(value)}")
        return tuple(
            member_coerce(element, f"{path}[{i}]")
            for i, ((_, member_coerce), element) in enumerate(zip(members, value, strict=True))
        )

    return schema, coerce


def _dict_shape(args: tuple[Any, ...], seen: frozenset[type]) -> tuple[dict[str, Any], Coerce]:
    key, value_type = args if args else (str, Any)
    if key is not str:
        raise Unsupported(f"dict keys must be str for JSON, not {key!r}")
    value_schema, value_coerce = type_shape(value_type, seen)
    schema: dict[str, Any] = {"type": "object"}
    if value_schema:
        schema["additionalProperties"] = value_schema

    def coerce(value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise _expected(path, "an object", value)
        result: dict[str, Any] = {}
        for name, element in value.items():
            if not isinstance(name, str):
                raise Mismatch(path, f"object keys must be strings, got {name!r}")
            result[name] = value_coerce(element, f"{path}[{name!r}]")
        return result

    return schema, coerce


def _attrs_shape(cls: type, seen: frozenset[type]) -> tuple[dict[str, Any], Coerce]:
    if cls in seen:
        raise Unsupported(f"{cls.__name__} refers to itself; recursive types are not supported")
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception as exc:
        raise Unsupported(f"cannot resolve the type hints of {cls.__name__}: {exc}") from exc
    properties: dict[str, Any] = {}
    required: list[str] = []
    fields: list[tuple[str, Coerce]] = []
    for field in attrs.fields(cls):
        if not field.init:
            continue
        if field.name not in hints:
            raise Unsupported(f"{cls.__name__}.{field.name} has no type hint")
        properties[field.alias], field_coerce = type_shape(hints[field.name], seen | {cls})
        fields.append((field.alias, field_coerce))
        if field.default is attrs.NOTHING:
            required.append(field.alias)
    schema: dict[str, Any] = {
        "type": "object",
        "title": cls.__name__,
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    summary, _ = parse_docstring(cls.__doc__)
    if summary:
        schema["description"] = summary

    def coerce(value: Any, path: str) -> Any:
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise _expected(path, f"an object ({cls.__name__})", value)
        unknown = sorted(set(value) - set(properties))
        if unknown:
            raise Mismatch(path, f"unknown field(s) {unknown!r} for {cls.__name__}")
        missing = [name for name in required if name not in value]
        if missing:
            raise Mismatch(path, f"missing field(s) {missing!r} for {cls.__name__}")
        kwargs = {
            alias: field_coerce(value[alias], f"{path}.{alias}")
            for alias, field_coerce in fields
            if alias in value
        }
        try:
            return cls(**kwargs)
        except Exception as exc:
            raise Mismatch(path, f"invalid {cls.__name__}: {exc}") from exc

    return schema, coerce
