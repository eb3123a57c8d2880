"""Tool schemas: a JSON schema and an argument checker from a function's signature.

:func:`analyse_signature` reads a function's type hints and Google-style
docstring once, at decoration time, and returns a :class:`ToolSignature`: the
JSON schema the model sees and a :meth:`~ToolSignature.bind` that checks the
model's arguments and converts them to the annotated types (an ``Enum``
parameter receives the member, an attrs parameter the instance).

Docstrings are read with ``docstring_parser``. Types are mapped by hand rather
than with pydantic: pydantic has no attrs support, drops ``Annotated``
descriptions, and neither its strict nor its lax mode matches what a model's
JSON needs (lax turns ``"1"`` into 1 and ``True`` into 1; strict refuses the
``3.0`` models send for 3, and both let ``True`` through as ``Literal[1]``).
"""

from __future__ import annotations

import enum
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeAlias

import attrs
import docstring_parser
from docstring_parser.google import DEFAULT_SECTIONS, GoogleParser, Section, SectionType

from agy_trio.errors import ConfigError, ToolArgumentError

__all__ = ["ToolSignature", "analyse_signature", "json_schema_of"]

# JSON scalars a Literal, an Enum value or a schema default may hold.
_JSON_SCALARS = (str, int, float, bool, type(None))


# --------------------------------------------------------------------------
# Docstrings
# --------------------------------------------------------------------------

# docstring_parser's Google sections, plus the other section titles Napoleon
# knows: without them a "Note:" section would end up in the tool's description.
_GOOGLE = GoogleParser(
    sections=[
        *DEFAULT_SECTIONS,
        *(
            Section(title, "param", SectionType.MULTIPLE)
            for title in ("Keyword Args", "Keyword Arguments", "Kwargs", "Other Parameters")
        ),
        *(
            Section(title, key, SectionType.SINGULAR_OR_MULTIPLE)
            for title, key in (("Return", "returns"), ("Yield", "yields"))
        ),
        *(
            Section(title, "notes", SectionType.SINGULAR)
            for title in (
                "Note",
                "Notes",
                "Warning",
                "Warnings",
                "See Also",
                "Todo",
                "References",
            )
        ),
    ]
)


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its prose and its per-argument descriptions."""
    if not doc:
        return "", {}
    text = inspect.cleandoc(doc)
    try:
        parsed = _GOOGLE.parse(text)
    except docstring_parser.ParseError:
        # An Args entry without a colon and the like: keep the prose before
        # the first section and guess no argument descriptions, rather than
        # refuse a function over its docstring.
        first_section = _GOOGLE.titles_re.search(text)
        return (text[: first_section.start()] if first_section else text).strip(), {}
    prose = [part for part in (parsed.short_description, parsed.long_description) if part]
    separator = "\n\n" if parsed.blank_after_short_description else "\n"
    arguments = {
        # Continuation lines are folded into one line, as the model reads them.
        param.arg_name.lstrip("*"): " ".join((param.description or "").split())
        for param in parsed.params
    }
    return separator.join(prose), arguments


# --------------------------------------------------------------------------
# Types -> (JSON schema, argument converter)
# --------------------------------------------------------------------------


class _Mismatch(Exception):
    """An argument value does not fit its annotated type (``path`` says where)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


_Coerce: TypeAlias = Callable[[Any, str], Any]


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


def _expected(path: str, kind: str, value: object) -> _Mismatch:
    return _Mismatch(path, f"expected {kind}, got {_json_type(value)} {value!r}")


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


_PRIMITIVES: dict[Any, tuple[dict[str, Any], _Coerce]] = {
    str: ({"type": "string"}, _coerce_str),
    int: ({"type": "integer"}, _coerce_int),
    float: ({"type": "number"}, _coerce_float),
    bool: ({"type": "boolean"}, _coerce_bool),
    type(None): ({"type": "null"}, _coerce_none),
    None: ({"type": "null"}, _coerce_none),
    Any: ({}, _coerce_any),
}


class _Unsupported(Exception):
    """A type hint has no JSON-schema equivalent."""


def _shape(tp: Any, seen: frozenset[type] = frozenset()) -> tuple[dict[str, Any], _Coerce]:
    """The JSON schema of ``tp`` and a function that checks and converts a JSON value to it."""
    if tp in _PRIMITIVES:
        schema, coerce = _PRIMITIVES[tp]
        return dict(schema), coerce
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        schema, coerce = _shape(args[0], seen)
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
    raise _Unsupported(f"unsupported type {tp!r}")


def _union_shape(args: tuple[Any, ...], seen: frozenset[type]) -> tuple[dict[str, Any], _Coerce]:
    members = [_shape(arg, seen) for arg in args]
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
            except _Mismatch as exc:
                errors.append(exc.message)
        raise _Mismatch(path, " or ".join(dict.fromkeys(errors)))

    return schema, coerce


def _literal_shape(values: tuple[Any, ...]) -> tuple[dict[str, Any], _Coerce]:
    for value in values:
        if not isinstance(value, _JSON_SCALARS):
            raise _Unsupported(f"Literal value {value!r} is not a JSON scalar")
    schema: dict[str, Any] = {"enum": list(values)}
    kinds = {_json_type(value) for value in values}
    if len(kinds) == 1:
        schema["type"] = kinds.pop()

    def coerce(value: Any, path: str) -> Any:
        # Compare types too: True == 1 and 1 == 1.0 would otherwise slip through.
        for allowed in values:
            if type(value) is type(allowed) and value == allowed:
                return value
        raise _Mismatch(path, f"expected one of {list(values)!r}, got {value!r}")

    return schema, coerce


def _enum_shape(cls: type[enum.Enum]) -> tuple[dict[str, Any], _Coerce]:
    values = [member.value for member in cls]
    for value in values:
        if not isinstance(value, _JSON_SCALARS):
            raise _Unsupported(f"{cls.__name__} value {value!r} is not a JSON scalar")
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
        raise _Mismatch(path, f"expected one of {values!r}, got {value!r}")

    return schema, coerce


def _list_shape(item: Any, seen: frozenset[type]) -> tuple[dict[str, Any], _Coerce]:
    item_schema, item_coerce = _shape(item, seen)
    schema: dict[str, Any] = {"type": "array"}
    if item_schema:
        schema["items"] = item_schema

    def coerce(value: Any, path: str) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise _expected(path, "an array", value)
        return [item_coerce(element, f"{path}[{i}]") for i, element in enumerate(value)]

    return schema, coerce


def _tuple_shape(args: tuple[Any, ...], seen: frozenset[type]) -> tuple[dict[str, Any], _Coerce]:
    if not args or (len(args) == 2 and args[1] is Ellipsis):
        schema, coerce_list = _list_shape(args[0] if args else Any, seen)

        def coerce_variadic(value: Any, path: str) -> tuple[Any, ...]:
            return tuple(coerce_list(value, path))

        return schema, coerce_variadic
    if args == ((),):  # tuple[()]: the empty tuple
        args = ()
    members = [_shape(arg, seen) for arg in args]
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
            raise _Mismatch(path, f"expected {len(members)} items, got {len(value)}")
        return tuple(
            member_coerce(element, f"{path}[{i}]")
            for i, ((_, member_coerce), element) in enumerate(zip(members, value, strict=True))
        )

    return schema, coerce


def _dict_shape(args: tuple[Any, ...], seen: frozenset[type]) -> tuple[dict[str, Any], _Coerce]:
    key, value_type = args if args else (str, Any)
    if key is not str:
        raise _Unsupported(f"dict keys must be str for JSON, not {key!r}")
    value_schema, value_coerce = _shape(value_type, seen)
    schema: dict[str, Any] = {"type": "object"}
    if value_schema:
        schema["additionalProperties"] = value_schema

    def coerce(value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise _expected(path, "an object", value)
        result: dict[str, Any] = {}
        for name, element in value.items():
            if not isinstance(name, str):
                raise _Mismatch(path, f"object keys must be strings, got {name!r}")
            result[name] = value_coerce(element, f"{path}[{name!r}]")
        return result

    return schema, coerce


def _attrs_shape(cls: type, seen: frozenset[type]) -> tuple[dict[str, Any], _Coerce]:
    if cls in seen:
        raise _Unsupported(f"{cls.__name__} refers to itself; recursive types are not supported")
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception as exc:
        raise _Unsupported(f"cannot resolve the type hints of {cls.__name__}: {exc}") from exc
    properties: dict[str, Any] = {}
    required: list[str] = []
    fields: list[tuple[str, _Coerce]] = []
    for field in attrs.fields(cls):
        if not field.init:
            continue
        if field.name not in hints:
            raise _Unsupported(f"{cls.__name__}.{field.name} has no type hint")
        properties[field.alias], field_coerce = _shape(hints[field.name], seen | {cls})
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
    summary, _ = _parse_docstring(cls.__doc__)
    if summary:
        schema["description"] = summary

    def coerce(value: Any, path: str) -> Any:
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise _expected(path, f"an object ({cls.__name__})", value)
        unknown = sorted(set(value) - set(properties))
        if unknown:
            raise _Mismatch(path, f"unknown field(s) {unknown!r} for {cls.__name__}")
        missing = [name for name in required if name not in value]
        if missing:
            raise _Mismatch(path, f"missing field(s) {missing!r} for {cls.__name__}")
        kwargs = {
            alias: field_coerce(value[alias], f"{path}.{alias}")
            for alias, field_coerce in fields
            if alias in value
        }
        try:
            return cls(**kwargs)
        except Exception as exc:
            raise _Mismatch(path, f"invalid {cls.__name__}: {exc}") from exc

    return schema, coerce


# --------------------------------------------------------------------------
# Signatures
# --------------------------------------------------------------------------


@attrs.frozen
class _Parameter:
    name: str
    required: bool
    coerce: _Coerce


@attrs.frozen
class ToolSignature:
    """What :func:`analyse_signature` learned from a function.

    Attributes:
        schema: The JSON schema (an ``object`` schema) of the arguments.
        description: The docstring's text before its first section.
        parameters: Each parameter's name, whether it is required, and the
            function that checks and converts its value.
    """

    schema: dict[str, Any]
    description: str
    parameters: tuple[_Parameter, ...]

    def bind(self, tool_name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Check the model's arguments and convert them to the annotated types.

        Args:
            tool_name: The tool's name, for error messages.
            arguments: The arguments by name, as decoded from the model's JSON.

        Returns:
            The keyword arguments to call the function with. A parameter the
            model left out is left out here too, so the function's own default
            applies.

        Raises:
            ToolArgumentError: ``arguments`` is not a mapping, or an argument is
                unknown, missing or of the wrong type.
        """
        if not isinstance(arguments, Mapping):
            raise ToolArgumentError(tool_name, f"arguments must be an object, got {arguments!r}")
        known = {parameter.name for parameter in self.parameters}
        unknown = sorted(str(name) for name in arguments if name not in known)
        if unknown:
            raise ToolArgumentError(
                tool_name, f"unknown argument(s) {unknown!r}", argument=unknown[0]
            )
        kwargs: dict[str, Any] = {}
        for parameter in self.parameters:
            if parameter.name not in arguments:
                if parameter.required:
                    raise ToolArgumentError(
                        tool_name, "missing required argument", argument=parameter.name
                    )
                # The function's own default applies; it is never copied, so a
                # default shared between calls behaves as the author wrote it.
                continue
            try:
                kwargs[parameter.name] = parameter.coerce(arguments[parameter.name], parameter.name)
            except _Mismatch as exc:
                raise ToolArgumentError(tool_name, exc.message, argument=exc.path) from None
        return kwargs


def _json_default(value: object) -> tuple[bool, Any]:
    """Whether a parameter default can be shown in the schema, and as what."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, float) and not math.isfinite(value):
        return False, None
    if isinstance(value, _JSON_SCALARS):
        return True, value
    return False, None


def analyse_signature(fn: Callable[..., Any], tool_name: str) -> ToolSignature:
    """Read a function's signature, type hints and docstring into a :class:`ToolSignature`.

    Args:
        fn: A function, or an object whose class has a ``__call__`` method (its
            class docstring then describes the tool, ``__call__``'s ``Args:``
            section the arguments).
        tool_name: The tool's name, for error messages.

    Returns:
        The schema and the argument converters.

    Raises:
        ConfigError: The signature has ``*args``, ``**kwargs``, a positional-only
            parameter, a parameter without a type hint, or a type with no JSON
            equivalent (``field`` names the parameter), or its hints cannot be
            resolved.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot read the signature of {fn!r}: {exc}", field=tool_name) from exc
    # A callable object keeps its annotations on its class's __call__.
    annotated = fn if inspect.isroutine(fn) else getattr(type(fn), "__call__", fn)  # noqa: B004
    try:
        hints = typing.get_type_hints(annotated, include_extras=True)
    except Exception as exc:
        raise ConfigError(
            f"cannot resolve the type hints of {tool_name!r}: {exc}", field=tool_name
        ) from exc
    description, documented = _parse_docstring(inspect.getdoc(fn))
    if annotated is not fn:
        # A callable object: its class says what it is, __call__ documents the arguments.
        call_description, call_documented = _parse_docstring(inspect.getdoc(annotated))
        description = description or call_description
        documented = {**documented, **call_documented}
    properties: dict[str, Any] = {}
    required: list[str] = []
    parameters: list[_Parameter] = []
    for parameter in signature.parameters.values():
        name = parameter.name
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ConfigError(
                "*args and **kwargs cannot be described to a model; list each argument",
                field=name,
            )
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise ConfigError(
                "positional-only parameters cannot be passed by name; remove the '/'",
                field=name,
            )
        if name not in hints:
            raise ConfigError(f"parameter of tool {tool_name!r} has no type hint", field=name)
        try:
            schema, coerce = _shape(hints[name])
        except _Unsupported as exc:
            raise ConfigError(f"parameter of tool {tool_name!r}: {exc}", field=name) from None
        if name in documented and "description" not in schema:
            schema["description"] = documented[name]
        has_default = parameter.default is not parameter.empty
        if has_default:
            shown, default = _json_default(parameter.default)
            if shown:
                schema["default"] = default
        else:
            required.append(name)
        properties[name] = schema
        parameters.append(_Parameter(name, not has_default, coerce))
    schema = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    return ToolSignature(schema, description, tuple(parameters))


def json_schema_of(cls: type) -> dict[str, Any]:
    """The JSON schema of an attrs class, as a tool parameter of that type would show it.

    Args:
        cls: An attrs class whose fields have type hints this module maps.

    Raises:
        ConfigError: A field's type has no JSON equivalent, or the hints cannot be resolved.
    """
    try:
        schema, _ = _shape(cls)
    except _Unsupported as exc:
        raise ConfigError(str(exc)) from None
    return schema
