"""The faults a scripted turn raises, and their mapping to agy_trio's errors."""

from __future__ import annotations

from agy_trio import errors
from agy_trio.testing.scripted.script import Fail

__all__ = [
    "ScriptedConnectionError",
    "ScriptedError",
    "ScriptedMaxTokensError",
    "ScriptedQuotaError",
    "ScriptedSafetyError",
    "ScriptedServerError",
    "classify_error",
    "fault_for",
]


class ScriptedError(Exception):
    """Base of the faults the scripted backend raises on its asyncio thread."""


class ScriptedQuotaError(ScriptedError):
    """The scripted endpoint ran out of quota."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ScriptedServerError(ScriptedError):
    """The scripted endpoint answered with an HTTP error."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ScriptedSafetyError(ScriptedError):
    """The scripted model refused for safety reasons."""


class ScriptedMaxTokensError(ScriptedError):
    """The scripted model hit its output limit."""


class ScriptedConnectionError(ScriptedError):
    """The scripted connection to the endpoint was lost."""


def classify_error(exc: BaseException) -> BaseException:
    """Map a scripted fault to the agy_trio error hierarchy, by type.

    Only the scripted backend's own classes are recognised (``isinstance``), so
    a look-alike class that merely shares a name is treated as an unknown
    error and wrapped in :class:`BackendError`.
    """
    if isinstance(exc, errors.AgyError):
        return exc
    if isinstance(exc, ScriptedQuotaError):
        return errors.QuotaExceeded(str(exc), retry_after=exc.retry_after)
    if isinstance(exc, ScriptedServerError):
        return errors.BackendError(str(exc), status=exc.status)
    if isinstance(exc, ScriptedSafetyError):
        return errors.SafetyBlocked(str(exc))
    if isinstance(exc, ScriptedMaxTokensError):
        return errors.MaxTokensReached(str(exc))
    if isinstance(exc, ScriptedConnectionError):
        return errors.ChannelClosed(str(exc))
    if isinstance(exc, Exception):
        return errors.BackendError(f"{type(exc).__name__}: {exc}")
    return exc


def fault_for(step: Fail) -> ScriptedError:
    """The exception a :class:`Fail` step raises."""
    if step.kind == "quota":
        return ScriptedQuotaError(step.message, step.retry_after)
    if step.kind == "server":
        return ScriptedServerError(step.message, step.status)
    if step.kind == "safety":
        return ScriptedSafetyError(step.message)
    if step.kind == "max_tokens":
        return ScriptedMaxTokensError(step.message)
    return ScriptedConnectionError(step.message)
