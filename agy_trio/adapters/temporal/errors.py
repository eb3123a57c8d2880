"""agy_trio's errors across process boundaries, and Temporal's errors in agy_trio's terms.

A turn fails on a worker with an agy_trio error; the client must raise the
same kind of error to its caller. Errors cross as a :class:`TurnFailure`
whose ``kind`` comes from a fixed table of agy_trio classes, so the client
rebuilds exactly one of agy_trio's own errors and never instantiates a class
named by the wire.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from agy_trio.adapters.temporal.messages import RETRYABLE_KINDS, FailureKind, Segment, TurnFailure
from agy_trio.core.commands import WorkCancelled
from agy_trio.errors import (
    AgentNotFound,
    AgyError,
    BackendError,
    ChannelClosed,
    ConfigError,
    MaxTokensReached,
    OperationTimeout,
    PolicyDenied,
    QuotaExceeded,
    SafetyBlocked,
)

__all__ = [
    "RETRYABLE_KINDS",
    "TemporalUnavailable",
    "classify",
    "execute_update",
    "failure_of",
    "rebuild_error",
]

if TYPE_CHECKING:
    from temporalio.client import WorkflowHandle


class TemporalUnavailable(ChannelClosed):
    """The Temporal service could not be reached, or stopped answering."""


_KINDS: dict[FailureKind, type[AgyError]] = {
    FailureKind.QUOTA_EXCEEDED: QuotaExceeded,
    FailureKind.SAFETY_BLOCKED: SafetyBlocked,
    FailureKind.MAX_TOKENS_REACHED: MaxTokensReached,
    FailureKind.BACKEND_ERROR: BackendError,
    FailureKind.CHANNEL_CLOSED: ChannelClosed,
    FailureKind.OPERATION_TIMEOUT: OperationTimeout,
    FailureKind.POLICY_DENIED: PolicyDenied,
    FailureKind.AGENT_NOT_FOUND: AgentNotFound,
    FailureKind.CONFIG_ERROR: ConfigError,
}


def failure_of(error: BaseException, segments: list[Segment] | None = None) -> TurnFailure:
    """Describe ``error`` for the trip to the workflow and the client."""
    # The exact class first (QuotaExceeded is also a BackendError), then the nearest base.
    kind = next((k for k, cls in _KINDS.items() if type(error) is cls), None) or next(
        (k for k, cls in _KINDS.items() if isinstance(error, cls)), FailureKind.BACKEND_ERROR
    )
    status = getattr(error, "status", None)
    retry_after = getattr(error, "retry_after", None)
    duration = getattr(error, "duration", None)
    return TurnFailure(
        kind=kind,
        message=str(error) or type(error).__name__,
        status=status if isinstance(status, int) else None,
        retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
        duration=float(duration) if isinstance(duration, int | float) else None,
        segments=list(segments or ()),
    )


def rebuild_error(failure: TurnFailure) -> AgyError:
    """The agy_trio error a :class:`TurnFailure` describes."""
    message = failure.message
    kind = failure.kind
    if kind is FailureKind.QUOTA_EXCEEDED:
        return QuotaExceeded(message, retry_after=failure.retry_after)
    if kind is FailureKind.OPERATION_TIMEOUT:
        return OperationTimeout("chat", failure.duration or 0.0)
    if kind in RETRYABLE_KINDS:
        return ChannelClosed(message)
    cls = _KINDS.get(kind, BackendError)
    if cls is BackendError:
        return BackendError(message, status=failure.status)
    return cls(message)


async def execute_update(
    handle: WorkflowHandle[Any, Any], name: str, *args: Any, result_type: type | None = None
) -> Any:
    """``handle.execute_update`` that lets a cancellation of our task be a cancellation.

    temporalio turns a cancelled update call into
    ``WorkflowUpdateRPCTimeoutOrCancelledError``; a caller that was cancelled
    (a timeout, a caller giving up) must see ``asyncio.CancelledError`` so the
    runtime reports what really happened.
    """
    from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError

    try:
        return await handle.execute_update(name, args=args, result_type=result_type)
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError from None
        raise


def classify(error: BaseException) -> BaseException:
    """Map an error raised by the Temporal client to agy_trio's hierarchy, by type."""
    from temporalio.client import WorkflowQueryRejectedError, WorkflowUpdateFailedError
    from temporalio.exceptions import ApplicationError
    from temporalio.service import RPCError, RPCStatusCode

    if isinstance(error, AgyError | WorkCancelled):
        return error
    if isinstance(error, WorkflowUpdateFailedError):
        cause = error.cause
        if isinstance(cause, ApplicationError):
            if cause.type == "AgentNotFound":
                return AgentNotFound(cause.message)
            return BackendError(cause.message)
        return BackendError(f"the workflow refused the command: {cause or error}")
    if isinstance(error, WorkflowQueryRejectedError):
        return AgentNotFound("the agent's workflow is no longer running")
    if isinstance(error, RPCError):
        if error.status is RPCStatusCode.NOT_FOUND:
            return AgentNotFound(f"the agent's workflow is gone: {error.message}")
        if error.status in (
            RPCStatusCode.UNAVAILABLE,
            RPCStatusCode.DEADLINE_EXCEEDED,
            RPCStatusCode.CANCELLED,
        ):
            return TemporalUnavailable(f"Temporal is not answering: {error.message}")
        return BackendError(f"Temporal refused the call: {error.message}")
    if isinstance(error, ConnectionError | OSError):
        return TemporalUnavailable(f"Temporal is not reachable: {error}")
    if isinstance(error, Exception):
        return BackendError(f"{type(error).__name__}: {error}")
    return error
