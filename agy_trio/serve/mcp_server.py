"""An MCP server at ``/mcp``: agy_trio's agents as tools for any MCP client.

Built with the ``mcp`` package's :class:`~mcp.server.mcpserver.MCPServer`,
served over streamable HTTP by its own session manager, mounted on the
server's Starlette app (hypercorn's Trio worker; ``mcp`` runs on anyio). The
bearer token, the host check and the body size limit are the app's, as for
every other endpoint. The tools:

* ``list_profiles()``: the served profiles new conversations are made from.
* ``start_conversation(profile)``: a new agent; its id is the conversation id.
* ``chat(prompt, conversation_id=None, profile=...)``: one turn; returns the
  answer, the conversation id (a new conversation when none was given) and
  why the turn stopped.
* ``history(conversation_id)``: the conversation's messages.
* ``end_conversation(conversation_id)``: the agent stops and its conversation
  is deleted (as ``DELETE /v1/agents/{id}``).

A tool that cannot do what it was asked (an unknown conversation or profile,
an empty prompt, a failed turn) answers an MCP tool error (``isError``) with
the reason; it never changes anything.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import Route

from agy_trio.core.agent import AgentHandle
from agy_trio.errors import AgentNotFound, AgyError
from agy_trio.serve.state import ServiceState
from agy_trio.serve.turn_log import TurnFailed, TurnFinished
from agy_trio.serve.wire import error_body

__all__ = ["MCP_PATH", "McpEndpoint"]

MCP_PATH = "/mcp"
"""Where the MCP server listens (streamable HTTP)."""


@contextlib.contextmanager
def _logging_left_alone() -> Iterator[None]:
    """Keep ``MCPServer()`` from configuring the process's logging.

    Its constructor calls ``logging.basicConfig`` (INFO, a rich handler on
    stderr), which would turn on INFO logs process-wide in a program that
    merely embeds the server, and make that program's own ``basicConfig``
    a no-op. ``basicConfig`` does nothing while the root logger has a
    handler, so one is there while the server is made.
    """
    root = logging.getLogger()
    placeholder = logging.NullHandler()
    root.addHandler(placeholder)
    try:
        yield
    finally:
        root.removeHandler(placeholder)


class McpEndpoint:
    """The MCP server of one app: its tools, its route and its session manager's lifetime.

    Args:
        service: The app's shared state (runtime, served profile, turns).
        profile_name: The served profile's name.
    """

    def __init__(self, service: ServiceState, profile_name: str) -> None:
        self._service = service
        self.profile_name = profile_name
        with _logging_left_alone():
            self.server: MCPServer = MCPServer(
                name="agy_trio",
                instructions=(
                    "Chat with agy_trio agents. chat() starts a conversation when given no "
                    "conversation_id and returns it; pass it back to continue."
                ),
            )
        self._register_tools()
        # The app's own middleware already checks the Host header (DNS
        # rebinding), the origin and the token; the SDK's localhost-only
        # default would refuse a server listening beyond loopback with a token.
        self._http = self.server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self._manager = self.server.session_manager

    def routes(self) -> list[Route]:
        """The route to mount on the app."""
        return [Route(MCP_PATH, StreamableHTTPASGIApp(self._manager))]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the MCP session manager (its sessions' tasks) for the app's lifetime."""
        async with self._manager.run():
            yield

    # ------------------------------------------------------------------ the tools

    def _fail(self, error: AgyError) -> ToolError:
        return ToolError(error_body(error, self._service.redact)["error"]["message"])

    def _conversation(self, conversation_id: str) -> AgentHandle:
        try:
            self._service._check_open()
            return self._service.runtime.agent(conversation_id)
        except AgentNotFound:
            raise ToolError(f"no conversation {conversation_id!r}") from None
        except AgyError as error:
            raise self._fail(error) from None

    async def _start(self, profile: str) -> AgentHandle:
        if profile != self.profile_name:
            raise ToolError(f"no profile {profile!r}; list_profiles() names the served ones")
        service = self._service
        try:
            service._check_open()
            handle = await service.runtime.create_agent(service.defaults)
        except AgyError as error:
            raise self._fail(error) from None
        service._created.add(handle.agent_id)
        return handle

    def _register_tools(self) -> None:
        server = self.server

        @server.tool()
        async def list_profiles() -> list[dict[str, Any]]:
            """The served profiles: what new conversations are made from."""
            profile = self._service.profile
            return [
                {
                    "name": profile.name,
                    "description": profile.description,
                    "model": profile.config.model,
                    "tools": profile.tool_names,
                }
            ]

        @server.tool()
        async def start_conversation(profile: str = self.profile_name) -> dict[str, str]:
            """Start a conversation with a new agent of ``profile``; returns its id."""
            handle = await self._start(profile)
            return {"conversation_id": handle.agent_id, "profile": profile}

        @server.tool()
        async def chat(
            prompt: str, conversation_id: str | None = None, profile: str = self.profile_name
        ) -> dict[str, Any]:
            """Send ``prompt`` to a conversation (a new one when none is given); returns the answer.

            The result holds ``answer``, ``conversation_id`` (pass it back to
            continue) and ``stop_reason``.
            """
            if not prompt.strip():
                raise ToolError("prompt must not be empty")
            handle = (
                self._conversation(conversation_id)
                if conversation_id is not None
                else await self._start(profile)
            )
            # The turn is a served turn like any other (one event log): this
            # call reads it to its end; a cancelled call leaves it to the grace.
            try:
                _, reader = await self._service.turns.start(handle, prompt)
            except AgyError as error:
                raise self._fail(error) from None
            async with reader:
                async for _ in reader:
                    pass
            end = reader.log.end
            if isinstance(end, TurnFailed):
                raise ToolError(f"{end.type}: {end.message}")
            assert isinstance(end, TurnFinished)
            return {
                "answer": end.text,
                "conversation_id": handle.agent_id,
                "stop_reason": end.stop_reason.value,
            }

        @server.tool()
        async def history(conversation_id: str) -> list[dict[str, str]]:
            """The messages of a conversation, oldest first: ``{"role", "text"}`` each."""
            handle = self._conversation(conversation_id)
            try:
                messages = await handle.history()
            except AgyError as error:
                raise self._fail(error) from None
            return [{"role": message.role, "text": message.text} for message in messages]

        @server.tool()
        async def end_conversation(conversation_id: str) -> dict[str, str]:
            """End a conversation: its agent stops and the conversation is deleted."""
            handle = self._conversation(conversation_id)
            try:
                await handle.delete()
            except AgentNotFound:
                raise ToolError(f"no conversation {conversation_id!r}") from None
            except AgyError as error:
                raise self._fail(error) from None
            self._service._created.discard(handle.agent_id)
            return {"conversation_id": conversation_id, "ended": "yes"}
