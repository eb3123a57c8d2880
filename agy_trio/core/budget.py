"""Budgets: limits on what one agent may spend, enforced by the backend.

:class:`Budget` carries the fields of the SDK's ``BudgetConfig`` under the
same names. A turn that runs into a limit ends with the matching
:class:`~agy_trio.core.events.StopReason` (``MAX_MODEL_CALLS_EXCEEDED`` and
the like), never as a normal end.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from agy_trio.errors import ConfigError

__all__ = ["MAX_INT32", "MAX_INT64", "Budget", "BudgetScope"]

MAX_INT32 = 2**31 - 1
"""The largest call count the SDK accepts."""

MAX_INT64 = 2**63 - 1
"""The largest token count the SDK accepts."""


class BudgetScope(enum.Enum):
    """What a :class:`Budget` counts against (the SDK's ``BudgetScope``)."""

    LIFETIME = "LIFETIME"
    """Everything the conversation spent since its first step."""
    FORWARD_LOOKING = "FORWARD_LOOKING"
    """What it spent since the budget was configured or the conversation resumed."""


def _limit(maximum: int) -> Any:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None:
            return
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
            raise ConfigError(
                f"must be an integer from 1 to {maximum} or None, got {value!r}",
                field=attribute.name,
            )

    return check


def _as_scope(value: BudgetScope | str) -> BudgetScope:
    if isinstance(value, str):
        try:
            return BudgetScope(value.upper())
        except ValueError:
            pass
    return value  # type: ignore[return-value]  # the validator names the field


def _check_scope(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, BudgetScope):
        raise ConfigError(
            f"must be one of {[scope.value for scope in BudgetScope]}, got {value!r}",
            field=attribute.name,
        )


@attrs.frozen
class Budget:
    """Limits on one agent's spending; None leaves a quantity unlimited.

    Attributes:
        max_model_calls: Model calls allowed within the scope.
        max_tool_calls: Tool calls allowed within the scope, whatever the tool.
        max_input_tokens: Net input tokens (prompt minus cached) allowed.
        max_output_tokens: Output tokens (answer and thoughts) allowed.
        max_total_tokens: Net input plus output tokens allowed.
        scope: What the limits count against (default: the whole conversation).
    """

    max_model_calls: int | None = attrs.field(default=None, validator=_limit(MAX_INT32))
    max_tool_calls: int | None = attrs.field(default=None, validator=_limit(MAX_INT32))
    max_input_tokens: int | None = attrs.field(default=None, validator=_limit(MAX_INT64))
    max_output_tokens: int | None = attrs.field(default=None, validator=_limit(MAX_INT64))
    max_total_tokens: int | None = attrs.field(default=None, validator=_limit(MAX_INT64))
    scope: BudgetScope = attrs.field(
        default=BudgetScope.LIFETIME, converter=_as_scope, validator=_check_scope
    )
