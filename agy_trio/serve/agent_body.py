"""What a ``POST /v1/agents`` body may set: the agent configuration a remote client chooses.

A client picks the model, the prompt, limits and the like; nothing that would
make the server import code, run a command, or touch a folder it names. Those
are the operator's to choose, in the server's agent defaults.
"""

from __future__ import annotations

from typing import Any

import attrs

from agy_trio.core.settings import AgentConfig
from agy_trio.errors import ConfigError

__all__ = ["HTTP_SETTABLE_FIELDS", "agent_config_from_body"]

# Tools, policies and hooks are import paths of Python code, built-in tools
# (a subagent's too) act on the server's machine, and folders (skills_paths
# included) are places on its disk: all of them are the operator's to
# choose, never a remote client's.
_HTTP_FORBIDDEN_FIELDS = frozenset(
    {
        "tools",
        "policies",
        "hooks",
        "builtin_tools",
        "subagents",
        "skills_paths",
        "workspaces",
        "save_dir",
        "app_data_dir",
        "home_dir",
    }
)
HTTP_SETTABLE_FIELDS = tuple(
    field.name for field in attrs.fields(AgentConfig) if field.name not in _HTTP_FORBIDDEN_FIELDS
)
"""The :class:`AgentConfig` fields a ``POST /v1/agents`` body may set."""


def agent_config_from_body(defaults: AgentConfig, body: dict[str, Any]) -> AgentConfig:
    """``defaults`` with the fields a ``POST /v1/agents`` body sets.

    Raises:
        ConfigError: The body sets a field HTTP may not set, an unknown one,
            an invalid value, or something that would run code or a command
            the client chose (see :func:`_refuse_code_from_http`).
    """
    for field in sorted(body):
        if field in _HTTP_FORBIDDEN_FIELDS:
            raise ConfigError("cannot be set over HTTP", field=field)
        if field not in HTTP_SETTABLE_FIELDS:
            raise ConfigError("unknown AgentConfig field", field=field)
    _refuse_code_from_http(body)
    name = body.get("name")
    if isinstance(name, str) and "/" in name:
        # The name becomes part of the agent's id, which is a path segment.
        raise ConfigError("must not contain '/'", field="name")
    try:
        return defaults.replace(**body)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


def _refuse_code_from_http(body: dict[str, Any]) -> None:
    """Refuse what would make the server import code or run a command a client chose.

    A ``response_schema`` may be a JSON schema (an object, or its JSON text)
    but not a class's import path; an MCP server may be an HTTP one, but a
    stdio server is a command run on the server's machine, the operator's to
    choose (in the server's agent defaults).
    """
    schema = body.get("response_schema")
    if isinstance(schema, str) and not schema.lstrip().startswith("{"):
        raise ConfigError(
            "over HTTP, a JSON schema (an object or its JSON text), never a class's import path",
            field="response_schema",
        )
    servers = body.get("mcp_servers")
    for index, server in enumerate(servers if isinstance(servers, list) else []):
        if (
            not isinstance(server, dict)
            or server.get("type", "http" if "url" in server else "stdio") != "http"
        ):
            raise ConfigError(
                'only HTTP MCP servers ({"type": "http", "url": ...}) can be set over '
                "HTTP: a stdio server runs a command on the server's machine",
                field=f"mcp_servers[{index}]",
            )
