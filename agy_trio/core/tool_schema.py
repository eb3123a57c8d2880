"""Tool schemas: a JSON schema and an argument checker from a function's signature.

:func:`analyse_signature` reads a function's type hints and Google-style
docstring once, at decoration time, and returns a :class:`ToolSignature`: the
JSON schema the model sees and a :meth:`~ToolSignature.bind` that checks the
model's arguments and converts them to the annotated types (an ``Enum``
parameter receives the member, an attrs parameter the instance).

Docstrings are read by :mod:`agy_trio.core.docstrings` (with
``docstring_parser``). Types are mapped by hand, in
:mod:`agy_trio.core.type_shapes`, rather than with pydantic: pydantic has no
attrs support, drops ``Annotated`` descriptions, and neither its strict nor
its lax mode matches what a model's JSON needs (lax turns ``"1"`` into 1 and
``True`` into 1; strict refuses the ``3.0`` models send for 3, and both let
``True`` through as ``Literal[1]``).
"""

from __future__ import annotations

import enum
import inspect
import math
import typing
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from agy_trio.core.docstrings import parse_docstring
from agy_trio.core.type_shapes import JSON_SCALARS, Coerce, Mismatch, Unsupported, type_shape
from agy_trio.errors import ConfigError, ToolArgumentError

__all__ = ["ToolSignature", "analyse_signature", "json_schema_of"]


@attrs.frozen
class _Parameter:
    name: str
    required: bool
    coerce: Coerce


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
            except Mismatch as exc:
                raise ToolArgumentError(tool_name, exc.message, argument=exc.path) from None
        return kwargs


def _json_default(value: object) -> tuple[bool, Any]:
    """Whether a parameter default can be shown in the schema, and as what."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, float) and not math.isfinite(value):
        return False, None
    if isinstance(value, JSON_SCALARS):
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
    description, documented = parse_docstring(inspect.getdoc(fn))
    if annotated is not fn:
        # A callable object: its class says what it is, __call__ documents the arguments.
        call_description, call_documented = parse_docstring(inspect.getdoc(annotated))
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
            schema, coerce = type_shape(hints[name])
        except Unsupported as exc:
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
        schema, _ = type_shape(cls)
    except Unsupported as exc:
        raise ConfigError(str(exc)) from None
    return schema
