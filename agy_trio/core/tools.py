"""Custom tools: the ``@tool`` decorator, JSON schemas from signatures, safe invocation.

A tool is a plain Python function, sync or Trio async, whose type hints and
Google-style docstring describe it to the model::

    @tool
    def get_weather(city: str, unit: Literal["C", "F"] = "C") -> str:
        '''Look up the current weather.'''

The docstring's text before its first section becomes the tool's description;
its ``Args:`` section describes each parameter.

Everything that can go wrong with a signature goes wrong at decoration time
(:class:`~agy_trio.core.errors.ConfigError`), not when the model first calls the
tool. Arguments from the model are checked and converted to the annotated types
(an ``Enum`` parameter receives the member, an attrs parameter the instance)
before the function runs.

Tools are referred to by import path (``"package.module:qualname"``) when a
configuration is written to disk or a tool is pickled, so a tool must live at
module level to be serialised.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import importlib
import inspect
import math
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeAlias, overload

import attrs
import trio

from agy_trio.core.errors import AgyError, ConfigError

__all__ = [
    "Tool",
    "ToolArgumentError",
    "ToolNotFound",
    "import_path_of",
    "is_async_callable",
    "resolve_import_path",
    "resolve_tool",
    "run_callable",
    "tool",
]

# Function-calling APIs (Gemini, OpenAI) accept this alphabet and length for names.
_TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")

# JSON scalars a Literal, an Enum value or a schema default may hold.
_JSON_SCALARS = (str, int, float, bool, type(None))


class ToolArgumentError(AgyError, ValueError):
    """The arguments a tool was called with do not fit its signature.

    Attributes:
        tool: The name of the tool.
        message: What is wrong.
        argument: The offending argument (a path such as ``items[2]`` for nested
            values), or None when the problem is not tied to one argument.
    """

    def __init__(self, tool: str, message: str, *, argument: str | None = None) -> None:
        where = f"argument {argument!r}: " if argument else ""
        super().__init__(f"tool {tool!r}: {where}{message}")
        self.tool = tool
        self.message = message
        self.argument = argument

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_argument_error, (self.tool, self.message, self.argument))


def _rebuild_argument_error(tool: str, message: str, argument: str | None) -> ToolArgumentError:
    return ToolArgumentError(tool, message, argument=argument)


class ToolNotFound(AgyError, LookupError):
    """No tool with the requested name is registered for the agent.

    Attributes:
        tool: The name that was asked for.
        known: The names that do exist.
    """

    def __init__(self, tool: str, known: Sequence[str] = ()) -> None:
        self.tool = tool
        self.known = tuple(sorted(known))
        choices = ", ".join(self.known) or "none"
        super().__init__(f"no tool named {tool!r} (known tools: {choices})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.tool, self.known))


# --------------------------------------------------------------------------
# Calling user code from Trio
# --------------------------------------------------------------------------


def is_async_callable(fn: object) -> bool:
    """Whether calling ``fn`` returns a coroutine (``async def`` function or ``__call__``).

    Args:
        fn: Any object.

    Returns:
        True for coroutine functions, partials of them and objects whose
        ``__call__`` is a coroutine function.
    """
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 (we ask about __call__ itself, not callability)
    )


async def run_callable(fn: Callable[..., Any], *args: Any, in_thread: bool = True) -> Any:
    """Call user code from Trio without ever blocking the Trio thread.

    Trio async callables are awaited. Sync callables run in a worker thread
    (unless ``in_thread`` is False). If the caller is cancelled while a worker
    thread runs, the thread is abandoned: it finishes in the background and its
    result is dropped, so a stuck callback can never hold up a cancellation or a
    timeout. A sync callable that returns an awaitable has it awaited in Trio.

    Args:
        fn: The callable.
        *args: Positional arguments for ``fn``.
        in_thread: Run a sync callable in a worker thread (True) or inline.

    Returns:
        What ``fn`` returned.
    """
    if is_async_callable(fn):
        return await fn(*args)
    if in_thread:

        def call_boxed() -> tuple[Any]:
            # Boxed: Trio rejects a coroutine returned straight from a worker thread.
            return (fn(*args),)

        (result,) = await trio.to_thread.run_sync(call_boxed, abandon_on_cancel=True)
    else:
        result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


# --------------------------------------------------------------------------
# Import paths
# --------------------------------------------------------------------------


def resolve_import_path(path: str) -> Any:
    """Import the object named by ``"package.module:qualname"``.

    Args:
        path: The import path.

    Returns:
        The object.

    Raises:
        ConfigError: The path is malformed, the module cannot be imported or has
            no such attribute.
    """
    module_name, sep, qualname = path.partition(":")
    if not sep or not module_name or not qualname:
        raise ConfigError(f"not an import path of the form 'package.module:qualname': {path!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {module_name!r} for {path!r}: {exc}") from exc
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{path!r}: {module_name!r} has no attribute {qualname!r}") from None
    return obj


def import_path_of(obj: object) -> str:
    """The ``"package.module:qualname"`` under which ``obj`` can be imported again.

    Args:
        obj: A module-level function, class or other named object.

    Returns:
        The import path; :func:`resolve_import_path` maps it back to ``obj``.

    Raises:
        ConfigError: ``obj`` is a lambda, a local (nested) function, or otherwise
            cannot be found again under its module and qualified name.
    """
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise ConfigError(f"{obj!r} has no module and qualified name, so it cannot be serialized")
    if "<lambda>" in qualname:
        raise ConfigError(
            f"a lambda ({module}:{qualname}) cannot be serialized; use a module-level function"
        )
    if "<locals>" in qualname:
        raise ConfigError(
            f"a local function ({module}:{qualname}) cannot be serialized; "
            "define it at module level"
        )
    path = f"{module}:{qualname}"
    try:
        found = resolve_import_path(path)
    except ConfigError as exc:
        raise ConfigError(f"{obj!r} cannot be imported back from {path!r}: {exc}") from exc
    # Bound methods are recreated on each attribute access, hence == and not only `is`.
    if found is not obj and found != obj:
        raise ConfigError(f"{path!r} names a different object than {obj!r}")
    return path


# --------------------------------------------------------------------------
# Docstrings
# --------------------------------------------------------------------------

_SECTION = re.compile(
    r"(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Kwargs|Returns?|"
    r"Yields?|Raises|Examples?|Notes?|Attributes|See Also|Warnings?|Todo|References)\s*:\s*"
)
_ARG_SECTIONS = frozenset(
    {"Args", "Arguments", "Parameters", "Params", "Keyword Args", "Keyword Arguments", "Kwargs"}
)
_ARG_ENTRY = re.compile(r"\*{0,2}(?P<name>\w+)\s*(?:\([^)]*\))?\s*:(?P<text>.*)")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its prose and its per-argument descriptions."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    prose: list[str] = []
    arguments: dict[str, str] = {}
    index = 0
    while index < len(lines) and not _SECTION.fullmatch(lines[index]):
        prose.append(lines[index])
        index += 1
    while index < len(lines):
        header = _SECTION.fullmatch(lines[index])
        index += 1
        body: list[str] = []
        while index < len(lines) and (not lines[index].strip() or _indent(lines[index]) > 0):
            body.append(lines[index])
            index += 1
        if header and header.group(1) in _ARG_SECTIONS:
            arguments.update(_parse_arguments(body))
        # Anything that is neither a section nor indented under one ends the
        # sections; it cannot be told apart from a section we do not know.
        while index < len(lines) and not _SECTION.fullmatch(lines[index]):
            index += 1
    return "\n".join(prose).strip(), arguments


def _parse_arguments(body: list[str]) -> dict[str, str]:
    entries = [line for line in body if line.strip()]
    if not entries:
        return {}
    base = _indent(entries[0])
    parsed: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in entries:
        match = _ARG_ENTRY.fullmatch(line.strip()) if _indent(line) == base else None
        if match:
            current = parsed.setdefault(match.group("name"), [])
            current.append(match.group("text").strip())
        elif current is not None:
            current.append(line.strip())
    return {name: " ".join(part for part in parts if part) for name, parts in parsed.items()}


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
class _Signature:
    """What the decorator learned from a function: schema and argument converters."""

    schema: dict[str, Any]
    description: str
    parameters: tuple[_Parameter, ...]

    def bind(self, tool_name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
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


def _analyse(fn: Callable[..., Any], tool_name: str) -> _Signature:
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
    return _Signature(schema, description, tuple(parameters))


# --------------------------------------------------------------------------
# Tool
# --------------------------------------------------------------------------


@attrs.frozen
class Tool:
    """A function the model may call, with the JSON schema that describes it.

    Create tools with :func:`tool`; do not call this class directly. Two tools
    made from the same function with the same options compare equal.

    Attributes:
        name: The name the model calls the tool by.
        description: What the tool does, for the model.
        parameters: The JSON schema (an ``object`` schema) of the arguments.
            Treat it as read-only.
        function: The original function.
        is_async: Whether ``function`` is a (Trio) coroutine function.
        blocking: Whether a sync ``function`` runs in a worker thread (True) or
            inline on the Trio thread (False, for quick non-blocking code).
    """

    name: str
    description: str
    parameters: dict[str, Any] = attrs.field(hash=False)
    function: Callable[..., Any]
    is_async: bool
    blocking: bool = True
    _signature: _Signature = attrs.field(eq=False, hash=False, repr=False, kw_only=True)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the original function directly, as if it had not been decorated."""
        return self.function(*args, **kwargs)

    async def invoke(self, arguments: Mapping[str, Any]) -> Any:
        """Check the model's arguments, then run the tool in Trio and return its result.

        Async tools are awaited. Sync tools run in a worker thread unless they
        were declared ``blocking=False``, so a slow tool never stalls Trio (see
        :func:`run_callable` for what happens on cancellation).

        Args:
            arguments: The arguments by name, as decoded from the model's JSON.

        Returns:
            What the function returned.

        Raises:
            ToolArgumentError: An argument is unknown, missing or of the wrong type.
        """
        kwargs = self._signature.bind(self.name, arguments)
        call = functools.partial(self.function, **kwargs)
        if self.is_async:
            return await call()
        return await run_callable(call, in_thread=self.blocking)

    @property
    def import_path(self) -> str:
        """The ``"package.module:qualname"`` that :func:`resolve_tool` turns back into this tool.

        Raises:
            ConfigError: The tool cannot be re-created by importing: its function
                is a lambda or a local function that no module-level name holds,
                or the path leads to a tool with other options.
        """
        module_name = getattr(self.function, "__module__", None)
        qualname = getattr(self.function, "__qualname__", None)
        if isinstance(module_name, str) and isinstance(qualname, str):
            path = f"{module_name}:{qualname}"
            with contextlib.suppress(ConfigError):
                if resolve_tool(path) == self:
                    return path
        # `name = tool(fn, name=...)` at module level: the tool is importable
        # under its own variable even though `fn` itself is not.
        module = sys.modules.get(module_name) if isinstance(module_name, str) else None
        for attribute, value in list(vars(module).items()) if module else ():
            if isinstance(value, Tool) and value == self:
                return f"{module_name}:{attribute}"
        import_path_of(self.function)  # raises the precise reason when there is one
        raise ConfigError(
            f"{module_name}:{qualname} imports as a different tool than {self.name!r}; "
            "declare the tool at module level with @tool(...)",
            field=self.name,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # The decorator replaces the module attribute with the Tool, so pickle
        # cannot find the bare function by name: pickle the tool by import path
        # when it has one, else rebuild it from the function and its options.
        try:
            return (resolve_tool, (self.import_path,))
        except ConfigError:
            return (_rebuild_tool, (self.function, self.name, self.description, self.blocking))


def _rebuild_tool(
    function: Callable[..., Any], name: str, description: str, blocking: bool
) -> Tool:
    return tool(function, name=name, description=description, blocking=blocking)


def resolve_tool(path: str) -> Tool:
    """Import a tool by ``"package.module:qualname"``.

    Args:
        path: The import path of a :class:`Tool`, or of a plain function that is
            then wrapped with :func:`tool` and its default options.

    Returns:
        The tool.

    Raises:
        ConfigError: The path cannot be imported or names neither a tool nor a function.
    """
    obj: object = resolve_import_path(path)
    if isinstance(obj, Tool):
        return obj
    if callable(obj) and not isinstance(obj, type):
        return tool(obj)
    raise ConfigError(f"{path!r} is neither a Tool nor a function")


@overload
def tool(
    fn: Callable[..., Any],
    /,
    *,
    name: str | None = ...,
    description: str | None = ...,
    blocking: bool | None = ...,
) -> Tool: ...


@overload
def tool(
    fn: None = ...,
    /,
    *,
    name: str | None = ...,
    description: str | None = ...,
    blocking: bool | None = ...,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    blocking: bool | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a function into a :class:`Tool`; use as ``@tool`` or ``@tool(...)``.

    Parameters must be passable by name and carry type hints: ``str``,
    ``int``, ``float``, ``bool``, ``None``, ``Any``, ``X | None``, unions,
    ``list[X]``, ``dict[str, X]``, ``tuple[...]``, ``Literal[...]``, ``Enum``
    subclasses, attrs classes and ``Annotated[X, "description"]``. Parameters
    with defaults are optional.

    Args:
        fn: The function (sync, or a Trio ``async def``), or a :class:`Tool`
            to re-decorate with other options.
        name: The tool's name; defaults to the function's ``__name__``.
        description: What the tool does; defaults to the docstring's text before
            its first section. Per-argument descriptions always come from the
            docstring's ``Args:`` section.
        blocking: For sync functions: run in a worker thread (True or None, the
            default) or inline on the Trio thread (False; only for code that
            never blocks). For a :class:`Tool`, None keeps its setting.

    Returns:
        The tool, or a decorator producing it when ``fn`` is omitted.

    Raises:
        ConfigError: ``fn`` is not callable, or its signature cannot be described
            (``field`` names the offending parameter).
    """

    def decorate(function: Callable[..., Any]) -> Tool:
        if isinstance(function, Tool):
            # Re-decorating keeps the tool's own options unless new ones are given.
            return tool(
                function.function,
                name=function.name if name is None else name,
                description=function.description if description is None else description,
                blocking=function.blocking if blocking is None else blocking,
            )
        if not callable(function) or isinstance(function, type):
            raise ConfigError(f"a tool must be a function, not {function!r}", field=name)
        if inspect.isasyncgenfunction(function) or inspect.isgeneratorfunction(function):
            raise ConfigError("a tool cannot be a generator", field=name)
        tool_name = name if name is not None else getattr(function, "__name__", None)
        if tool_name is None:
            raise ConfigError(f"{function!r} has no __name__; pass name=...", field="name")
        if not isinstance(tool_name, str) or not _TOOL_NAME.fullmatch(tool_name):
            raise ConfigError(
                f"tool name {tool_name!r} must start with a letter or '_' and hold at most "
                "64 letters, digits, '_', '.' or '-'",
                field="name",
            )
        signature = _analyse(function, tool_name)
        return Tool(
            name=tool_name,
            description=signature.description if description is None else description,
            parameters=signature.schema,
            function=function,
            is_async=is_async_callable(function),
            blocking=blocking is not False,
            signature=signature,
        )

    if fn is None:
        return decorate
    return decorate(fn)
