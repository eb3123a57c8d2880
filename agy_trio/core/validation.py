"""Checks for configuration values shared across agy_trio, raising ConfigError."""

from __future__ import annotations

import math

from agy_trio.core.errors import ConfigError

__all__ = ["positive_number"]


def positive_number(value: object, field: str, *, finite: bool = False) -> float:
    """Check that ``value`` is a positive number and return it as a float.

    Args:
        value: The value to check (a duration in seconds, a rate, ...).
        field: The name of the setting, for the error.
        finite: Refuse infinity too (for values that must be written to JSON
            or TOML, or that must end).

    Returns:
        ``value`` as a float.

    Raises:
        ConfigError: ``value`` is not an int or a float (a bool is refused: it
            is an int to Python but never a quantity), is NaN or not above
            zero, or is infinite while ``finite`` is True.
    """
    # `not value > 0` is also true for NaN.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not value > 0
        or (finite and math.isinf(value))
    ):
        kind = "finite positive" if finite else "positive"
        raise ConfigError(f"must be a {kind} number, got {value!r}", field=field)
    return float(value)
