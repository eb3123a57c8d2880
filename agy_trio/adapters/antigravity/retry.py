"""When a turn whose model request failed is tried again: :class:`RetryPolicy` (opt-in)."""

from __future__ import annotations

from typing import Any

import attrs

from agy_trio.core.validation import positive_number
from agy_trio.errors import BackendError, ConfigError, EndpointUnreachable, QuotaExceeded

__all__ = ["RetryPolicy"]


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    positive_number(value, attribute.name)


def _at_least_one(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"must be an integer >= 1, got {value!r}", field=attribute.name)


def _boolean(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"must be True or False, got {value!r}", field=attribute.name)


@attrs.frozen
class RetryPolicy:
    """Retrying a turn whose model request failed transiently (opt-in).

    A retried turn resumes where it failed: the SDK session is reopened (its
    history kept), and the turn is sent again, so the caller sees one turn
    with one answer. If the failure came before the turn produced anything,
    the prompt is sent again (the model then sees it twice in a row, which
    :meth:`history` shows once); if it came after (text streamed, tools run),
    an empty continuation is sent so nothing is repeated.

    Attributes:
        attempts: Tries in all, the first included (1 disables retrying).
        initial_backoff: Seconds before the first retry.
        multiplier: Growth of the backoff from one retry to the next.
        max_backoff: Longest backoff, in seconds.
        max_retry_after: Longest delay an endpoint may ask for (by
            ``Retry-After`` in its error) and still be waited out; beyond it
            the error is raised at once for the runtime's quota backoff.
        statuses: HTTP statuses that count as transient.
        unreachable: Whether an endpoint that could not be reached
            (:class:`~agy_trio.errors.EndpointUnreachable`: DNS failure,
            refused connection) counts as transient too.
    """

    attempts: int = attrs.field(default=3, validator=_at_least_one)
    initial_backoff: float = attrs.field(default=0.5, validator=_positive)
    multiplier: float = attrs.field(default=2.0, validator=_positive)
    max_backoff: float = attrs.field(default=30.0, validator=_positive)
    max_retry_after: float = attrs.field(default=60.0, validator=_positive)
    statuses: frozenset[int] = attrs.field(
        default=frozenset({429, 500, 502, 503, 504}), converter=frozenset
    )
    unreachable: bool = attrs.field(default=True, validator=_boolean)

    def delay(self, attempt: int, error: BaseException) -> float | None:
        """Seconds to wait before retrying after failed attempt number ``attempt`` (0-based).

        Returns:
            None when the error is not transient or no attempt is left.
        """
        if attempt + 1 >= self.attempts or not isinstance(error, BackendError):
            return None
        if isinstance(error, EndpointUnreachable):
            if not self.unreachable:
                return None
        elif error.status not in self.statuses:
            return None
        backoff = min(self.max_backoff, self.initial_backoff * self.multiplier**attempt)
        if isinstance(error, QuotaExceeded) and error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            backoff = max(backoff, error.retry_after)
        return backoff
