"""An agent's MCP servers, handed to the SDK: the harness runs them, agy_trio guards them.

The Go harness starts and calls the servers itself (agy_trio does not speak
MCP). What this module adds:

* every stdio server's command runs under :mod:`~agy_trio.adapters.antigravity.mcp_guard`,
  so that no server outlives its harness, even a SIGKILLed one;
* a stdio command that cannot be found is refused when the agent is created,
  naming the server (the harness would only fail at the first turn);
* one SDK ``ask_user`` rule per server (``server/*``) puts each of its tool
  calls to the agent's policies, as ``server/tool``.
"""

from __future__ import annotations

import importlib
import os
import secrets
import shutil
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agy_trio.adapters.antigravity import mcp_guard
from agy_trio.adapters.antigravity.sdk import load_sdk
from agy_trio.core.mcp import McpHttpServer, McpServer, McpStdioServer
from agy_trio.errors import ConfigError

__all__ = [
    "GUARD_PATH",
    "McpLease",
    "guarded_command",
    "mcp_call",
    "sdk_mcp_policies",
    "sdk_mcp_servers",
]

GUARD_PATH = str(Path(mcp_guard.__file__).resolve())
"""The guard script the harness runs in front of every stdio server's command."""


class McpLease:
    """What keeps an agent's stdio MCP servers alive: a socket it listens on while it lives.

    An abstract Unix socket (Linux: no file, no path-length limit, gone with
    the process) that nothing ever accepts on: each server's guard connects
    to it (the kernel queues the connection) and ends its server when the
    connection breaks, which happens when :meth:`release` closes the socket
    or the Python process dies. That is how a server ends with its agent
    although the harness, serving other agents, stays up.
    """

    def __init__(self) -> None:
        self.name = f"agy-trio-mcp-{secrets.token_hex(12)}"
        self._socket: socket.socket | None = None

    def hold(self) -> str:
        """Listen, if not yet; returns the name to give the guards."""
        if self._socket is None:
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                listener.bind("\0" + self.name)
                # Never accepted: every guard of every harness this agent runs
                # on waits in the queue, which must be deep enough for all.
                listener.listen(socket.SOMAXCONN)
            except BaseException:
                listener.close()
                raise
            self._socket = listener
        return self.name

    def release(self) -> None:
        """Stop listening: every guard holding this lease ends its server."""
        listener, self._socket = self._socket, None
        if listener is not None:
            listener.close()


def guarded_command(
    command: str,
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    lease: str | None = None,
) -> list[str]:
    """The command line that runs ``command`` under the guard, as [program, *arguments].

    Args:
        command: The server's program (a name looked up on ``PATH``, or a path).
        args: Its arguments.
        env: The variables the server's config adds (its ``PATH`` is searched).
        lease: The agent's :class:`McpLease` name, for the guard to hold.

    Raises:
        ConfigError: ``command`` is not an executable file, nor found on ``PATH``
            (the one in ``env``, when it sets one).
    """
    search = (env or {}).get("PATH", os.environ.get("PATH"))
    found = shutil.which(command, path=search)
    if found is None:
        raise ConfigError(f"command {command!r} not found (not on PATH, not an executable file)")
    held = ["--lease", lease] if lease is not None else []
    return [sys.executable, "-I", "-S", GUARD_PATH, *held, "--", found, *args]


def sdk_mcp_servers(servers: Sequence[McpServer], lease: str | None = None) -> list[Any]:
    """The SDK's server configs for ``servers``, stdio commands under the guard.

    Args:
        servers: The agent's MCP servers.
        lease: The agent's :class:`McpLease` name, which each guard holds.

    Raises:
        ConfigError: A stdio command cannot be found (``field`` names the server).
    """
    types = load_sdk().types
    built: list[Any] = []
    for index, server in enumerate(servers):
        common: dict[str, Any] = {
            "name": server.name,
            "timeout_seconds": server.timeout_seconds,
            "enabled_tools": list(server.enabled_tools)
            if server.enabled_tools is not None
            else None,
            "disabled_tools": list(server.disabled_tools)
            if server.disabled_tools is not None
            else None,
            "force_all_tools_eager": server.force_all_tools_eager,
        }
        if isinstance(server, McpStdioServer):
            try:
                program, *arguments = guarded_command(
                    server.command, server.args, server.env, lease
                )
            except ConfigError as exc:
                raise ConfigError(
                    f"MCP server {server.name!r}: {exc}", field=f"mcp_servers[{index}].command"
                ) from None
            built.append(
                types.McpStdioServer(command=program, args=arguments, env=server.env, **common)
            )
        elif isinstance(server, McpHttpServer):
            built.append(
                types.McpStreamableHttpServer(
                    url=server.url,
                    headers=server.headers,
                    timeout=server.timeout,
                    sse_read_timeout=server.sse_read_timeout,
                    terminate_on_close=server.terminate_on_close,
                    **common,
                )
            )
    return built


def sdk_mcp_policies(sdk_servers: Sequence[Any], authorize: Callable[..., Any]) -> list[Any]:
    """SDK rules that put every tool call of every server to ``authorize`` (``server/*``)."""
    policy = importlib.import_module("google.antigravity.hooks.policy")
    rules: list[Any] = []
    for server in sdk_servers:
        rules.extend(policy.ask_user(server, handler=authorize))
    return rules


_LAZY_CALL_KEYS = frozenset({"ServerName", "ToolName"})


def mcp_call(
    name: str, server_name: str | None, arguments: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The policy name (``server/tool``) and the tool's own arguments of a call the SDK reports.

    A lazily loaded tool is called through the generic ``call_mcp_tool``,
    whose arguments wrap the tool's own (``{"ServerName", "ToolName",
    "Arguments"}``): the tool's arguments are what a policy handler sees.
    """
    if not server_name:
        return name, dict(arguments)
    inner = arguments.get("Arguments")
    if set(arguments) >= _LAZY_CALL_KEYS and isinstance(inner, Mapping):
        return f"{server_name}/{name}", dict(inner)
    return f"{server_name}/{name}", dict(arguments)
