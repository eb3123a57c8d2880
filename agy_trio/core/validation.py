"""Checks of option values shared by the runtime's configuration classes and backends."""

from __future__ import annotations

import math

from agy_trio.core.errors import ConfigError

__all__ = ["positive_number"]


def positive_number(value: object, field: str) -> float:
    """Check that ``value`` is a finite number greater than zero.

    Args:
        value: The value given for the option.
        field: The option's name, for the error.

    Returns:
        ``value`` as a float.

    Raises:
        ConfigError: ``value`` is not a number (booleans are not), not finite, or not above zero.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"must be a positive number, got {value!r}", field=field)
    if not math.isfinite(value):
        raise ConfigError(f"must be finite, got {value!r}", field=field)
    return float(value)
