"""How the google-antigravity SDK's failures map onto the agy_trio error hierarchy.

The SDK reports model-endpoint failures as one exception type with the HTTP
status only in its message (``"HTTP request failed with status 429: {body}"``)
and drops the endpoint's ``Retry-After`` header. This module recovers what it
can from the text (the status, and a retry delay when the body states one) and
classifies every exception by its *type*, checked with ``isinstance`` against
the SDK's own classes. A class from elsewhere that merely shares a name with an
SDK class is never mistaken for it.

The SDK is imported lazily, so this module imports (and classifies everything
as an unknown error) when the SDK is not installed.
"""

from __future__ import annotations

import functools
import importlib
import math
import re
from typing import NamedTuple

from agy_trio.errors import (
    AgyError,
    BackendError,
    ChannelClosed,
    ConfigError,
    EndpointUnreachable,
    MaxTokensReached,
    McpServerError,
    QuotaExceeded,
    SafetyBlocked,
)

__all__ = [
    "SdkErrorTypes",
    "classify_error",
    "describe",
    "is_cancellation",
    "is_fatal",
    "mcp_failure",
    "parse_retry_after",
    "parse_status",
    "sdk_error_types",
    "unreachable_cause",
]


class SdkErrorTypes(NamedTuple):
    """The SDK exception classes this module classifies by.

    Attributes:
        execution: ``AntigravityExecutionError`` (model and HTTP failures, harness exit).
        connection: ``AntigravityConnectionError`` (the harness link broke).
        cancelled: ``AntigravityCancelledError`` (a subclass of ``asyncio.CancelledError``).
        validation: ``AntigravityValidationError`` (a bad SDK configuration).
        tool: ``ToolExecutionError``.
        socket_closed: ``websockets.exceptions.ConnectionClosed``: what the SDK
            lets through when the harness process is already gone.
    """

    execution: type[BaseException]
    connection: type[BaseException]
    cancelled: type[BaseException]
    validation: type[BaseException]
    tool: type[BaseException]
    socket_closed: type[BaseException]


class _Never(Exception):
    """Stands in for the SDK's classes when the SDK is not installed; never raised."""


@functools.cache
def sdk_error_types() -> SdkErrorTypes:
    """The SDK's exception classes, or never-matching stand-ins without the SDK."""
    try:
        sdk_types = importlib.import_module("google.antigravity.types")
        ws_exceptions = importlib.import_module("websockets.exceptions")
    except ImportError:
        return SdkErrorTypes(_Never, _Never, _Never, _Never, _Never, _Never)
    return SdkErrorTypes(
        execution=sdk_types.AntigravityExecutionError,
        connection=sdk_types.AntigravityConnectionError,
        cancelled=sdk_types.AntigravityCancelledError,
        validation=sdk_types.AntigravityValidationError,
        tool=sdk_types.ToolExecutionError,
        socket_closed=ws_exceptions.ConnectionClosed,
    )


# ---------------------------------------------------------------------------- parsing

# "HTTP request failed with status 429: ..." is what the harness says for an
# OpenAI-compatible endpoint; the Gemini paths put the code in a JSON body.
_STATUS_PATTERNS = (
    re.compile(r"\bstatus(?:[ _]code)?\s*[:=]?\s*(\d{3})\b", re.IGNORECASE),
    re.compile(r"\bHTTP(?:/\d(?:\.\d)?)?\s+(\d{3})\b"),
    re.compile(r'"code"\s*:\s*(\d{3})\b'),
    re.compile(r"\berror\s+(\d{3})\b", re.IGNORECASE),
)

# Google RPC status names that say which HTTP status was meant.
_RPC_STATUS = {
    "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
    "INTERNAL": 500,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "INVALID_ARGUMENT": 400,
    "NOT_FOUND": 404,
}
_RPC_STATUS_RE = re.compile(r"\b(" + "|".join(_RPC_STATUS) + r")\b")

_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0}
_UNITS.update({"m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0})
_NUMBER = r"(\d+(?:\.\d+)?)"
_UNIT = r"\s*(ms|secs?|seconds?|mins?|minutes?|s|m)?\b"
_RETRY_PATTERNS = (
    # Gemini / Google APIs: a google.rpc.RetryInfo detail in the JSON body.
    re.compile(r'"retryDelay"\s*:\s*"' + _NUMBER + r'(ms|s)"'),
    # OpenAI and compatible servers: "Please try again in 20s" / "in 1.5 seconds".
    re.compile(r"try again in\s+" + _NUMBER + _UNIT, re.IGNORECASE),
    # A header or field echoed into the message: "Retry-After: 7", "retry_after": 7.
    re.compile(r"retry[-_ ]?after\"?\s*[:=]?\s*\"?" + _NUMBER + _UNIT, re.IGNORECASE),
)


def parse_status(message: str) -> int | None:
    """The HTTP status an SDK error message reports, if it reports one.

    Args:
        message: The exception's text.

    Returns:
        A status between 400 and 599, or None when the text names none.
    """
    for pattern in _STATUS_PATTERNS:
        for match in pattern.finditer(message):
            status = int(match.group(1))
            if 400 <= status <= 599:
                return status
    rpc = _RPC_STATUS_RE.search(message)
    return _RPC_STATUS[rpc.group(1)] if rpc else None


def parse_retry_after(message: str) -> float | None:
    """The delay, in seconds, an endpoint asked for in the text of its error.

    The SDK does not pass the ``Retry-After`` header on, so this reads what the
    error body says instead: a Google ``retryDelay``, an OpenAI-style "try
    again in N s", or a ``Retry-After`` value quoted in the message.

    Args:
        message: The exception's text.

    Returns:
        Non-negative seconds, or None when the text states no delay.
    """
    for pattern in _RETRY_PATTERNS:
        match = pattern.search(message)
        if match is None:
            continue
        value = float(match.group(1))
        unit = (match.group(2) or "s").lower()
        seconds = value * _UNITS.get(unit, 1.0)
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


# ---------------------------------------------------------------------------- classification

_HARNESS_GONE = re.compile(r"harness process exited|reader loop", re.IGNORECASE)
_MAX_TOKENS = re.compile(r"max(?:imum)?[ _-]?(?:output[ _-]?)?tokens|token limit", re.IGNORECASE)
_SAFETY = re.compile(r"\bsafety\b|content[ _-]filter", re.IGNORECASE)


# What the harness says when a request never reached the endpoint: Go's
# net/http and dialer errors, and the harness's own wording around them. A
# stream cut after it started is not one of them.
_UNREACHABLE = re.compile(
    r"network issue connecting|failed to send HTTP request|error sending request|"
    r"\bdial tcp\b|no such host|connection refused|TLS handshake|proxyconnect|"
    r"network is unreachable",
    re.IGNORECASE,
)
# The harness puts the underlying error in parentheses after its own sentence.
_DETAIL = re.compile(r'\("(?:agent executor error: )?(.*)"\)\s*$', re.DOTALL)


def unreachable_cause(message: str) -> str | None:
    """What kept the endpoint out of reach, if ``message`` reports a connection failure.

    Args:
        message: An SDK error's text or a harness system step's error.

    Returns:
        The harness's own description of the failure (for example
        ``dial tcp: lookup ...: no such host``), or None when ``message``
        reports something else.
    """
    if not _UNREACHABLE.search(message):
        return None
    detail = _DETAIL.search(message)
    cause = detail.group(1) if detail else message
    return cause.replace('\\"', '"').strip() or message


# What the harness says when an MCP server did not start or list its tools in
# time: 'MCP load failed for NAME: <why>' (inside a longer sentence on a system step).
_MCP_LOAD_FAILED = re.compile(
    r"MCP load failed for ([a-zA-Z0-9_-]+):\s*(.*?)(?:\"\)\s*)?$", re.DOTALL
)


def mcp_failure(message: str) -> McpServerError | None:
    """The MCP server failure ``message`` reports, naming the server; None if it reports none.

    Args:
        message: An SDK error's text or a harness system step's error.
    """
    found = _MCP_LOAD_FAILED.search(message)
    if found is None:
        return None
    detail = " ".join(found.group(2).replace('\\"', '"').split())
    if "deadline exceeded" in detail:
        detail = f"it did not start and list its tools in time ({detail})"
    return McpServerError(found.group(1), f"failed to start: {detail or 'no reason given'}")


def is_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` is the SDK's own turn cancellation (``AntigravityCancelledError``)."""
    return isinstance(exc, sdk_error_types().cancelled)


def is_fatal(exc: BaseException) -> bool:
    """Whether ``exc`` leaves the SDK session unusable, so that it must be reopened.

    After an execution error (any HTTP failure of the model endpoint among
    them) the SDK's next ``chat()`` answers nothing and the one after hangs; a
    connection error or a closed socket means the harness process is gone.
    """
    kinds = sdk_error_types()
    return isinstance(exc, kinds.execution | kinds.connection | kinds.socket_closed)


def _text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _from_message(message: str, *, status: int | None) -> AgyError:
    if status is None and (cause := unreachable_cause(message)) is not None:
        return EndpointUnreachable(f"the model endpoint is unreachable: {cause}")
    if status == 429:
        return QuotaExceeded(message, retry_after=parse_retry_after(message))
    if status is None and _MAX_TOKENS.search(message):
        return MaxTokensReached(message)
    if status is None and _SAFETY.search(message):
        return SafetyBlocked(message)
    return BackendError(message, status=status)


def classify_error(exc: BaseException) -> BaseException:
    """Map an exception raised on the SDK side to the agy_trio hierarchy, by type.

    * ``AntigravityExecutionError``: an MCP server that failed to start
      becomes :class:`McpServerError` naming it; HTTP 429 becomes :class:`QuotaExceeded`
      (with the retry delay the body states, if any); another HTTP status
      becomes :class:`BackendError` with ``status``; a request that never
      reached the endpoint (DNS, refused connection, proxy, TLS)
      :class:`EndpointUnreachable` naming the cause; a harness that exited
      becomes :class:`ChannelClosed`; a token limit :class:`MaxTokensReached`;
      a safety refusal :class:`SafetyBlocked`.
    * ``AntigravityConnectionError`` and a closed harness socket: the SDK
      process is gone, :class:`ChannelClosed` (unless the message carries an
      HTTP status, which makes it a :class:`BackendError`).
    * ``AntigravityValidationError``: :class:`ConfigError`.
    * Errors already in the hierarchy pass through; anything else becomes a
      :class:`BackendError` naming the original type. Non-``Exception``
      base exceptions (cancellation, KeyboardInterrupt) pass through.

    Args:
        exc: What the SDK (or the code driving it) raised.

    Returns:
        The exception to raise in Trio.
    """
    if isinstance(exc, AgyError):
        return exc
    kinds = sdk_error_types()
    message = _text(exc)
    if isinstance(exc, kinds.execution):
        if (mcp := mcp_failure(message)) is not None:
            return mcp
        if _HARNESS_GONE.search(message):
            return ChannelClosed(f"the SDK harness process stopped: {message}")
        return _from_message(message, status=parse_status(message))
    if isinstance(exc, kinds.connection):
        status = parse_status(message)
        if status is not None and not _HARNESS_GONE.search(message):
            return _from_message(message, status=status)
        return ChannelClosed(f"lost the SDK harness: {message}")
    if isinstance(exc, kinds.socket_closed):
        return ChannelClosed(f"the SDK harness connection is closed: {message}")
    if isinstance(exc, kinds.validation):
        return ConfigError(f"the SDK rejected the configuration: {message}")
    if isinstance(exc, kinds.tool):
        return BackendError(f"a tool failed: {message}")
    if isinstance(exc, Exception):
        return BackendError(f"{type(exc).__name__}: {message}")
    return exc


def describe(exc: BaseException) -> str:
    """A one-line description of ``exc`` for logs."""
    return f"{type(exc).__name__}: {_text(exc)}"
