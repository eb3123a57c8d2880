"""The agy_trio error hierarchy: every error agy_trio raises on purpose, in one module.

Every error the runtime raises derives from :class:`AgyError`, so a caller can
catch the whole family in one ``except`` clause and still tell the cases apart
by type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AgentNotFound",
    "AgyError",
    "ApprovalNotFound",
    "BackendError",
    "ChannelClosed",
    "ConfigError",
    "ContentTooLarge",
    "EndpointUnreachable",
    "MaxTokensReached",
    "McpServerError",
    "OperationTimeout",
    "PolicyDenied",
    "QuotaExceeded",
    "RuntimeClosed",
    "SafetyBlocked",
    "StructuredOutputError",
    "ToolArgumentError",
    "ToolError",
    "ToolNotFound",
    "TurnNotFound",
    "TurnVetoed",
    "WrongThread",
]


class AgyError(Exception):
    """Base class of every error raised by agy_trio."""


class BackendError(AgyError):
    """The backend (the SDK or its model endpoint) reported a failure.

    Attributes:
        status: The HTTP status the endpoint answered with, when known.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ChannelClosed(AgyError):
    """The runtime's link to the backend is gone (host thread or SDK process died)."""


class OperationTimeout(AgyError, TimeoutError):
    """An operation did not finish within its time limit.

    Attributes:
        operation: The name of the command or phase that timed out.
        duration: The limit that was exceeded, in seconds.
    """

    def __init__(self, operation: str, duration: float) -> None:
        super().__init__(f"{operation} timed out after {duration:g} s")
        self.operation = operation
        self.duration = duration

    def __reduce__(self) -> tuple[type[OperationTimeout], tuple[str, float]]:
        return (type(self), (self.operation, self.duration))


class EndpointUnreachable(BackendError):
    """The model endpoint could not be reached.

    A DNS failure, a refused connection, a proxy or TLS failure: nothing was
    answered. Retrying later may work (an Antigravity ``RetryPolicy`` does).
    """


class SafetyBlocked(BackendError):
    """The model refused to answer for safety reasons."""


class MaxTokensReached(BackendError):
    """The model stopped because it reached its output token limit."""


class QuotaExceeded(BackendError):
    """The endpoint rejected the request for quota reasons (HTTP 429).

    Attributes:
        retry_after: Seconds the endpoint asked us to wait, when it said.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after


class McpServerError(BackendError):
    """An MCP server of the agent failed: it did not start, or did not list its tools in time.

    Attributes:
        server: The server's name (``McpStdioServer.name`` / ``McpHttpServer.name``).
    """

    def __init__(self, server: str, message: str) -> None:
        super().__init__(f"MCP server {server!r}: {message}")
        self.server = server

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_mcp_error, (str(self), self.server))


def _rebuild_mcp_error(text: str, server: str) -> McpServerError:
    error = McpServerError(server, "")
    error.args = (text,)
    return error


class StructuredOutputError(AgyError, ValueError):
    """The model's structured answer fits the JSON schema but the response class refused it.

    The harness checks the answer against the JSON schema (and asks the model
    again when it does not fit); what the class adds (its validators and
    converters) can still refuse it. The answer is kept, so nothing is lost.

    Attributes:
        raw_json: The answer, as the JSON text the model sent.
        value: The answer parsed as JSON (dicts, lists, strings, numbers).
        target: The class that refused it.
    """

    def __init__(self, message: str, *, raw_json: str, value: Any, target: type) -> None:
        super().__init__(f"{target.__name__} refused the structured output: {message}")
        self.raw_json = raw_json
        self.value = value
        self.target = target


class PolicyDenied(AgyError):
    """A policy rule or handler refused to let a tool run.

    Attributes:
        tool: The name of the tool that was blocked.
    """

    def __init__(self, tool: str, reason: str = "denied by policy") -> None:
        super().__init__(f"tool {tool!r}: {reason}")
        self.tool = tool
        self.reason = reason


class ToolError(AgyError):
    """A tool failed: what ``on_tool_error`` hooks see, and what the model reads.

    Raised in place of a tool's own exception (kept as ``__cause__``) when an
    ``on_tool_error`` hook gave the model a message of its own; handed to the
    hooks for a built-in tool's failure.

    Attributes:
        tool: The tool's name.
        message: The error text.
        server_name: The MCP server of the tool, if any.
    """

    def __init__(self, tool: str, message: str, server_name: str | None = None) -> None:
        super().__init__(message)
        self.tool = tool
        self.message = message
        self.server_name = server_name

    def __reduce__(self) -> tuple[Any, ...]:
        return (ToolError, (self.tool, self.message, self.server_name))


class TurnVetoed(PolicyDenied):
    """A ``pre_turn`` hook refused the prompt: the turn never started.

    Attributes:
        tool: Always ``"pre_turn"``.
        reason: Why, in the hook's words (or how the hook failed).
    """

    def __init__(self, reason: str = "vetoed by a pre_turn hook") -> None:
        super().__init__("pre_turn", reason)
        self.args = (f"turn vetoed: {reason}",)

    def __reduce__(self) -> tuple[Any, ...]:
        return (TurnVetoed, (self.reason,))


class AgentNotFound(AgyError, LookupError):
    """No agent with the given id exists in this runtime (never did, or was shut down)."""


class TurnNotFound(AgyError, LookupError):
    """No served turn with the given id is known (never was, or its events expired)."""


class ApprovalNotFound(AgyError, LookupError):
    """No pending approval has the given id (never did, or it was answered already)."""


class RuntimeClosed(AgyError):
    """The runtime is shutting down or has shut down and takes no more commands."""


class WrongThread(AgyError, RuntimeError):
    """A runtime was called from outside the Trio run that opened it.

    A runtime belongs to one Trio run on one thread. Other threads reach it
    through :meth:`Runtime.from_thread` (which runs the call in the runtime's own
    run); another ``trio.run`` should open its own runtime.
    """


class ConfigError(AgyError, ValueError):
    """A configuration value, tool signature or policy rule is invalid.

    Attributes:
        field: The offending field or parameter name, when there is one.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class ContentTooLarge(ConfigError):
    """Content is larger than the backend delivers whole; it was not sent.

    Raised before anything reaches the backend, instead of letting the backend
    cut or drop the content silently.

    Attributes:
        size: How large the content is, in ``unit``.
        limit: The most the backend takes, in ``unit``.
        unit: What is counted (``"bytes"``).
    """

    def __init__(self, message: str, *, size: int, limit: int, unit: str = "bytes") -> None:
        super().__init__(message, field="content")
        self.size = size
        self.limit = limit
        self.unit = unit

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_too_large, (str(self), self.size, self.limit, self.unit))


def _rebuild_too_large(message: str, size: int, limit: int, unit: str) -> ContentTooLarge:
    error = ContentTooLarge("", size=size, limit=limit, unit=unit)
    error.args = (message,)
    return error


class ToolArgumentError(AgyError, ValueError):
    """The arguments a tool was called with do not fit its signature.

    Attributes:
        tool: The name of the tool.
        message: What is wrong.
        argument: The offending argument (a path such as ``items[2]`` for nested
            values), or None when the problem is not tied to one argument.
    """

    def __init__(self, tool: str, message: str, *, argument: str | None = None) -> None:
        where = f"argument {argument!r}: " if argument else ""
        super().__init__(f"tool {tool!r}: {where}{message}")
        self.tool = tool
        self.message = message
        self.argument = argument

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_argument_error, (self.tool, self.message, self.argument))


def _rebuild_argument_error(tool: str, message: str, argument: str | None) -> ToolArgumentError:
    # Pickle passes positional arguments only; `argument` is keyword-only.
    return ToolArgumentError(tool, message, argument=argument)


class ToolNotFound(AgyError, LookupError):
    """No tool with the requested name is registered for the agent.

    Attributes:
        tool: The name that was asked for.
        known: The names that do exist.
    """

    def __init__(self, tool: str, known: Sequence[str] = ()) -> None:
        self.tool = tool
        self.known = tuple(sorted(known))
        choices = ", ".join(self.known) or "none"
        super().__init__(f"no tool named {tool!r} (known tools: {choices})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.tool, self.known))
