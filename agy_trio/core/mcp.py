"""MCP servers an agent may use: :class:`McpStdioServer` and :class:`McpHttpServer`.

The fields and their names are the SDK's (``McpStdioServer`` and
``McpStreamableHttpServer`` in ``google.antigravity.types``). The backend
runs the servers, not agy_trio: with google-antigravity the Go harness starts
a stdio server at the agent's first turn, lists its tools and calls them.

A server's tools are addressed by policies as ``server/tool``, or all at once
as ``server/*``: ``agy_trio.policy.deny(server, ["tool"])`` builds such rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeAlias

import attrs

from agy_trio.core.validation import (
    as_dict,
    as_seconds,
    as_tuple,
    attrs_validator,
    instance_of,
    is_number,
    optional,
    sdk_name,
    string_map,
    tuple_of,
    unique_names,
)
from agy_trio.errors import ConfigError

__all__ = [
    "McpHttpServer",
    "McpServer",
    "McpStdioServer",
    "McpStreamableHttpServer",
    "as_mcp_servers",
    "check_mcp_servers",
    "mcp_server_of",
]

_check_name = attrs_validator(sdk_name)


def _check_text(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"must be a non-empty string, got {value!r}", field=attribute.name)


def _check_timeout_seconds(
    _instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(
            f"must be a whole number of seconds greater than 0, or None, got {value!r}",
            field=attribute.name,
        )


def _check_seconds(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not is_number(value) or value <= 0:  # type: ignore[operator]
        raise ConfigError(
            f"must be a number of seconds greater than 0, got {value!r}", field=attribute.name
        )


def _check_url(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not re.match(r"^https?://[^/\s]+", value):
        raise ConfigError(
            f"must be an http:// or https:// URL naming a host, got {value!r}", field=attribute.name
        )


_bool = attrs_validator(instance_of(bool))
_strings = tuple_of(str, "strings")
_optional_string_map = attrs_validator(optional(string_map))
_optional_tool_names = attrs.validators.optional(tuple_of(str, "tool names", non_empty=True))


@attrs.frozen(kw_only=True)
class _McpServerBase:
    """The fields every kind of MCP server has (the SDK's ``BaseMcpServerConfig``)."""

    name: str = attrs.field(validator=_check_name)
    timeout_seconds: int | None = attrs.field(default=None, validator=_check_timeout_seconds)
    enabled_tools: tuple[str, ...] | None = attrs.field(
        default=None, converter=as_tuple, validator=_optional_tool_names
    )
    disabled_tools: tuple[str, ...] | None = attrs.field(
        default=None, converter=as_tuple, validator=_optional_tool_names
    )
    force_all_tools_eager: bool = attrs.field(default=False, validator=_bool)

    def __attrs_post_init__(self) -> None:
        if self.enabled_tools is not None and self.disabled_tools is not None:
            raise ConfigError(
                "enabled_tools and disabled_tools are mutually exclusive", field="enabled_tools"
            )


@attrs.frozen(kw_only=True)
class McpStdioServer(_McpServerBase):
    """An MCP server the backend starts as a process and talks to over stdin/stdout.

    Attributes:
        name: The server's name (``^[a-zA-Z0-9_-]+$``), unique within an agent;
            policies address its tools as ``name/tool``.
        command: The program to run.
        args: Its arguments.
        env: Variables added to the environment it runs in.
        timeout_seconds: How long starting it and listing its tools may take;
            None leaves the backend's default.
        enabled_tools: Only these of its tools are shown to the model
            (exclusive with ``disabled_tools``).
        disabled_tools: These of its tools are hidden from the model.
        force_all_tools_eager: Register every tool as a tool of its own
            (``mcp_<name>_<tool>``) instead of through the generic
            ``call_mcp_tool``.
    """

    command: str = attrs.field(validator=_check_text)
    args: tuple[str, ...] = attrs.field(default=(), converter=as_tuple, validator=_strings)
    env: dict[str, str] | None = attrs.field(
        default=None, converter=as_dict, validator=_optional_string_map, hash=False
    )

    @property
    def type(self) -> Literal["stdio"]:
        """The connection kind, as the SDK names it."""
        return "stdio"


@attrs.frozen(kw_only=True)
class McpHttpServer(_McpServerBase):
    """An MCP server the backend reaches over streamable HTTP.

    The SDK calls it ``McpStreamableHttpServer``; that name works here too.

    Attributes:
        name: The server's name (``^[a-zA-Z0-9_-]+$``), unique within an agent.
        url: Its endpoint, e.g. ``http://127.0.0.1:8000/mcp``.
        headers: Headers sent with every request (a secret-bearing header is
            written to config files like any other field).
        timeout: Connection timeout, in seconds.
        sse_read_timeout: How long a read of its event stream may wait, in seconds.
        terminate_on_close: End the MCP session when the connection closes.
        timeout_seconds: How long connecting and listing its tools may take.
        enabled_tools: Only these of its tools are shown to the model.
        disabled_tools: These of its tools are hidden from the model.
        force_all_tools_eager: As for :class:`McpStdioServer`.
    """

    url: str = attrs.field(validator=_check_url)
    headers: dict[str, str] | None = attrs.field(
        default=None, converter=as_dict, validator=_optional_string_map, hash=False
    )
    timeout: float = attrs.field(default=30.0, converter=as_seconds, validator=_check_seconds)
    sse_read_timeout: float = attrs.field(
        default=300.0, converter=as_seconds, validator=_check_seconds
    )
    terminate_on_close: bool = attrs.field(default=True, validator=_bool)

    @property
    def type(self) -> Literal["http"]:
        """The connection kind, as the SDK names it."""
        return "http"


McpStreamableHttpServer = McpHttpServer
"""The SDK's name for :class:`McpHttpServer`."""

McpServer: TypeAlias = McpStdioServer | McpHttpServer
"""Either kind of MCP server."""


check_mcp_servers = attrs.validators.and_(
    tuple_of(_McpServerBase, "McpStdioServer or McpHttpServer objects"),
    unique_names("MCP server"),
)
"""Validator of ``AgentConfig.mcp_servers``: MCP server objects with distinct names."""


_KINDS: dict[str, type[McpStdioServer | McpHttpServer]] = {
    "stdio": McpStdioServer,
    "http": McpHttpServer,
}


def mcp_server_of(value: object) -> object:
    """``value`` as an MCP server object: objects pass, a JSON-style mapping is built.

    A mapping says its kind with ``"type"`` (``"stdio"`` or ``"http"``, the
    SDK's names); without one, a ``url`` makes it an HTTP server. Anything
    else is returned unchanged, for the validator to refuse.

    Raises:
        ConfigError: The mapping's type or fields are invalid.
    """
    if not isinstance(value, Mapping):
        return value
    data = dict(value)
    kind = data.pop("type", "http" if "url" in data else "stdio")
    server_class = _KINDS.get(kind) if isinstance(kind, str) else None
    if server_class is None:
        raise ConfigError(f"an MCP server's type must be 'stdio' or 'http', got {kind!r}")
    try:
        return server_class(**data)
    except TypeError as exc:
        raise ConfigError(f"invalid {server_class.__name__}: {exc}") from None


def as_mcp_servers(value: Iterable[object]) -> tuple[object, ...]:
    """The attrs converter of ``AgentConfig.mcp_servers``: a tuple, mappings built into servers."""
    if isinstance(value, str | Mapping) or not isinstance(value, Iterable):
        return value  # type: ignore[return-value]  # the validator names the field
    servers: list[object] = []
    for index, item in enumerate(value):
        try:
            servers.append(mcp_server_of(item))
        except ConfigError as exc:
            where = f"mcp_servers[{index}]"
            message = str(exc).removeprefix(f"{exc.field}: ") if exc.field else str(exc)
            raise ConfigError(
                message, field=f"{where}.{exc.field}" if exc.field else where
            ) from None
    return tuple(servers)
