"""Retrying a turn whose model request never got through: :class:`ConnectionRetry` (on by default).

The harness's HTTP client reports a request that failed at the connection
level (the endpoint refused the connection while it restarts, reset it, or
closed a kept-alive connection the client then reused: "use of closed network
connection", seen with hundreds of conversations on one harness) or whose
answer broke off before its first byte of content, as an execution error
without an HTTP status. If the turn has produced nothing yet (no text, no
tool call), nothing was delivered: asking again is safe, and the caller should
not have to. Such a failure is retried, a few times with a growing pause, and
logged; a failure after output follows the opt-in
:class:`~agy_trio.adapters.antigravity.retry.RetryPolicy`. A refused
connection is retried only once the endpoint has answered the agent before
(it is restarting): an endpoint that never answered is not listening, and the
turn fails at once with :class:`~agy_trio.errors.EndpointUnreachable`.
"""

from __future__ import annotations

import random
import re
from typing import Any

import attrs

from agy_trio.adapters.antigravity.errors import parse_status, sdk_error_types
from agy_trio.core.validation import positive_number
from agy_trio.errors import ConfigError

__all__ = ["ConnectionRetry", "is_connection_failure", "is_refusal"]

# What Go's net/http and the harness say when a request did not get through,
# or its answer broke off ("unexpected EOF").
_CONNECTION_FAILURE = re.compile(
    r"connection refused|connection reset|use of closed network connection|broken pipe"
    r"|server closed idle connection|unexpected EOF|\bEOF\b",
    re.IGNORECASE,
)
# A harness that died is not a model endpoint's hiccup (see errors.classify_error).
_HARNESS_GONE = re.compile(r"harness process exited|reader loop", re.IGNORECASE)


def is_connection_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the SDK's report of a model request that failed at the connection level.

    An ``AntigravityExecutionError`` with no HTTP status whose text names a
    connection failure (refused, reset, closed, broken pipe, end of stream).
    """
    if not isinstance(exc, sdk_error_types().execution):
        return False
    message = str(exc)
    if _HARNESS_GONE.search(message) or parse_status(message) is not None:
        return False
    return _CONNECTION_FAILURE.search(message) is not None


def is_refusal(exc: BaseException) -> bool:
    """Whether ``exc`` reports a refused connection: nobody listens at the endpoint (now)."""
    return is_connection_failure(exc) and "connection refused" in str(exc).lower()


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    positive_number(value, attribute.name)


def _count(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"must be an integer >= 0, got {value!r}", field=attribute.name)


@attrs.frozen
class ConnectionRetry:
    """Retrying model requests that failed at the connection level before the turn produced output.

    The default budget (4 retries, pauses of about 0.25, 0.5, 1 and 2 s) rides
    out an endpoint restart of a few seconds and a burst of stale kept-alive
    connections; the pauses are jittered by +-20 % so that many conversations
    failing together do not come back together.

    Attributes:
        retries: Retries after the first failure (0 disables retrying).
        initial_backoff: Seconds before the first retry.
        multiplier: Growth of the pause from one retry to the next.
        max_backoff: Longest pause, in seconds.
    """

    retries: int = attrs.field(default=4, validator=_count)
    initial_backoff: float = attrs.field(default=0.25, validator=_positive)
    multiplier: float = attrs.field(default=2.0, validator=_positive)
    max_backoff: float = attrs.field(default=2.0, validator=_positive)

    def delay(self, retry: int, error: BaseException, *, produced: bool) -> float | None:
        """Seconds to wait before retry number ``retry`` (0-based) after ``error``.

        Args:
            retry: How many retries this turn already had for such failures.
            error: What the SDK raised.
            produced: Whether the turn already streamed anything.

        Returns:
            None when ``error`` is not a connection failure, the turn produced
            output, or the budget is spent.
        """
        if produced or retry >= self.retries or not is_connection_failure(error):
            return None
        backoff = min(self.max_backoff, self.initial_backoff * self.multiplier**retry)
        return backoff * random.uniform(0.8, 1.2)
