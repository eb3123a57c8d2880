"""Small checks for settings, shared by attrs classes and plain constructors.

Each check takes the value and the name of the field it is for (named only
in the error), returns the value normalised (numbers as ``float``, counts as
``int``) and raises :class:`~agy_trio.errors.ConfigError` naming the field
otherwise. ``bool`` is refused although Python counts it as an ``int``: ``True`` seconds is a
mistake, not a duration. NaN and infinities are refused too.

A plain constructor calls a check directly::

    self._timeout = positive_number(timeout, "timeout")

An attrs class wraps it with :func:`attrs_validator` (and :func:`optional` for
fields that may be None)::

    timeout: float = attrs.field(validator=attrs_validator(positive_number))
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs

from agy_trio.errors import ConfigError

__all__ = [
    "as_dict",
    "as_seconds",
    "as_tuple",
    "attrs_validator",
    "enum_converter",
    "enum_validator",
    "instance_of",
    "is_number",
    "non_negative_number",
    "optional",
    "positive_int",
    "positive_number",
    "sdk_name",
    "string_map",
    "tuple_of",
    "unicode_text",
    "unique_names",
]

_T = TypeVar("_T")
_E = TypeVar("_E", bound=enum.Enum)

Check = Callable[[Any, str], object]
"""A check: takes a value and its field name, raises ConfigError when invalid."""

AttrsValidator = Callable[[Any, "attrs.Attribute[Any]", Any], None]
"""The shape of an attrs field validator."""


def is_number(value: object) -> bool:
    """Whether ``value`` is an ``int`` or ``float`` and not a ``bool``."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite_number(value: object) -> float | None:
    if not is_number(value):
        return None
    number = float(value)  # type: ignore[arg-type]  # is_number checked it
    return number if math.isfinite(number) else None


def positive_number(value: object, field: str) -> float:
    """``value`` as a float, when it is a finite number greater than zero.

    Returns:
        ``float(value)``.

    Raises:
        ConfigError: ``value`` is not a number (or is a bool), is NaN or
            infinite, or is not greater than zero.
    """
    number = _finite_number(value)
    if number is None or number <= 0:
        raise ConfigError(f"must be a finite number greater than 0, got {value!r}", field=field)
    return number


def non_negative_number(value: object, field: str) -> float:
    """``value`` as a float, when it is a finite number that is zero or more.

    Returns:
        ``float(value)``.

    Raises:
        ConfigError: ``value`` is not a number (or is a bool), is NaN or
            infinite, or is negative.
    """
    number = _finite_number(value)
    if number is None or number < 0:
        raise ConfigError(f"must be a finite number of 0 or more, got {value!r}", field=field)
    return number


def positive_int(value: object, field: str) -> int:
    """``value``, when it is an ``int`` (not a bool) greater than zero.

    Returns:
        ``value`` unchanged.

    Raises:
        ConfigError: ``value`` is not an int, is a bool, or is not greater than zero.
    """
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"must be an integer greater than 0, got {value!r}", field=field)
    return value


# The SDK's rule for the names of MCP servers, subagents and skills, which is
# also Gemini's for tool names (the harness names eager tools mcp_<server>_<tool>).
_SDK_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")


def sdk_name(value: object, field: str) -> str:
    """``value``, when it is a name the SDK takes: letters, digits, ``_`` and ``-`` only.

    Returns:
        ``value`` unchanged.

    Raises:
        ConfigError: ``value`` is not a str, or does not match ``^[a-zA-Z0-9_-]+$``.
    """
    if not isinstance(value, str) or not _SDK_NAME.match(value):
        raise ConfigError(
            f"must be letters, digits, '_' and '-' only (^[a-zA-Z0-9_-]+$), got {value!r}",
            field=field,
        )
    return value


def string_map(value: object, field: str) -> dict[str, str]:
    """``value``, when it is a dict whose keys and values are all strings (else a ConfigError)."""
    if not isinstance(value, dict) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    ):
        raise ConfigError(f"must map strings to strings, got {value!r}", field=field)
    return value


# A str may hold lone surrogates (from os.fsdecode, or a "\ud800" escape); they
# are not valid Unicode, and text holding one fails only later, when the SDK
# encodes it for the wire.
_SURROGATE = re.compile("[\ud800-\udfff]")


def unicode_text(value: object, field: str) -> str:
    """``value``, when it is a string of valid Unicode (no lone surrogates).

    Returns:
        ``value`` unchanged.

    Raises:
        ConfigError: ``value`` is not a str, or holds a surrogate code point
            (which UTF-8 cannot encode).
    """
    if not isinstance(value, str):
        raise ConfigError(f"must be a string, got {type(value).__name__}", field=field)
    if not value.isascii() and (found := _SURROGATE.search(value)):
        raise ConfigError(
            f"holds the lone surrogate {found.group()!r} at index {found.start()}, which is "
            "not valid Unicode (decode bytes with errors='replace', or send them as a BlobPart)",
            field=field,
        )
    return value


def instance_of(kind: type[_T]) -> Callable[[Any, str], _T]:
    """A check that the value is an instance of ``kind``.

    Args:
        kind: The class the value must be an instance of.
    """
    article = "an" if kind.__name__[:1] in "AEIOU" else "a"

    def check_instance(value: object, field: str) -> _T:
        if not isinstance(value, kind):
            raise ConfigError(f"must be {article} {kind.__name__}, got {value!r}", field=field)
        return value

    check_instance.__name__ = f"instance_of_{kind.__name__}"
    return check_instance


def optional(check: Callable[[Any, str], _T]) -> Callable[[Any, str], _T | None]:
    """``check``, letting None through unchanged.

    Args:
        check: One of the checks of this module (or any with the same shape).
    """

    def check_unless_none(value: object, field: str) -> _T | None:
        return None if value is None else check(value, field)

    check_unless_none.__name__ = f"optional_{getattr(check, '__name__', 'check')}"
    return check_unless_none


def attrs_validator(check: Check) -> AttrsValidator:
    """An attrs field validator that runs ``check`` with the field's name.

    Args:
        check: One of the checks of this module (or any with the same shape).
    """

    def validate(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        check(value, attribute.name)

    validate.__name__ = getattr(check, "__name__", "validate")
    return validate


def enum_converter(kind: type[_E]) -> Callable[[object], object]:
    """An attrs converter to enum ``kind``: a member, or its value; anything else passes.

    What passes unconverted is left for :func:`enum_validator` to refuse by field name.
    """

    def convert(value: object) -> object:
        if value is None or isinstance(value, kind):
            return value
        try:
            return kind(value)
        except ValueError:
            return value

    return convert


def enum_validator(kind: type[_E]) -> AttrsValidator:
    """An attrs validator: None or a member of ``kind``, else a ConfigError listing its values."""

    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None and not isinstance(value, kind):
            raise ConfigError(
                f"must be one of {[member.value for member in kind]} or None, got {value!r}",
                field=attribute.name,
            )

    return check


def tuple_of(kind: type, label: str, *, non_empty: bool = False) -> AttrsValidator:
    """An attrs validator: a tuple of ``kind`` instances (what :func:`as_tuple` makes of a list).

    Args:
        kind: The class every item must be an instance of.
        label: What the items are, for the error (``"tool names"``).
        non_empty: Refuse empty items too (for strings).
    """

    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, tuple):
            raise ConfigError(f"must be a list of {label}, got {value!r}", field=attribute.name)
        for item in value:
            if not isinstance(item, kind) or (non_empty and not item):
                raise ConfigError(
                    f"must be a list of {label}, got item {item!r}", field=attribute.name
                )

    return check


def unique_names(what: str) -> AttrsValidator:
    """An attrs validator: no two items of the tuple have the same ``name``.

    Args:
        what: What the items are, for the error (``"tool"``: "tool names must be unique").
    """

    def check(_instance: object, attribute: attrs.Attribute[Any], value: Iterable[Any]) -> None:
        names = [item.name for item in value]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ConfigError(
                f"{what} names must be unique, repeated: {repeated}", field=attribute.name
            )

    return check


def as_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    """An attrs converter: an iterable as a tuple.

    A lone string, a mapping, None or anything not iterable passes unchanged,
    for the field's validator to refuse by name: ``tuple("abc")`` would
    silently become ``("a", "b", "c")``, and a mapping its keys.
    """
    if isinstance(value, str | Mapping) or not isinstance(value, Iterable):
        return value  # type: ignore[return-value]
    return tuple(value)


def as_dict(value: Mapping[str, Any]) -> dict[str, Any]:
    """An attrs converter: a mapping as a (new) dict; anything else passes, for the validator."""
    return dict(value) if isinstance(value, Mapping) else value


def as_seconds(value: float) -> float:
    """An attrs converter: a number of seconds as a float (``10`` and ``10.0`` are one config).

    Anything else passes unchanged, for the field's validator to refuse by name.
    """
    return float(value) if is_number(value) else value
