"""The SDK calling into Trio: an agent's tools, its built-in tool checks, its turn hooks.

Custom tools, policy handlers and hooks run on the Trio side. The SDK gets an
asyncio wrapper for each, which crosses to Trio through the agent's host
(:meth:`~agy_trio.adapters.aio_host.AioHost.call_trio`), so that the host loop
stays free for other agents while a tool works. The outcome of every tool
call the runtime ran is kept, to show it in the agent's history and stream it
with the turn.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import importlib
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from agy_trio.adapters.aio_host import AioHost
from agy_trio.adapters.antigravity.errors import describe
from agy_trio.adapters.antigravity.events import normalize_arguments, tool_name
from agy_trio.adapters.antigravity.hook_bridge import sdk_hooks
from agy_trio.adapters.antigravity.mcp import mcp_call
from agy_trio.core.backend import AgentServices
from agy_trio.core.events import ChatEvent, ToolCall
from agy_trio.errors import PolicyDenied

if TYPE_CHECKING:
    from agy_trio.core.tools import Tool

__all__ = ["TrioBridge"]

log = logging.getLogger("agy_trio.antigravity")


class ToolTurn(Protocol):
    """What the bridge needs of the turn a tool call belongs to (an ``SdkTurn``)."""

    pending_ids: dict[str, collections.deque[str | None]]
    """Model call ids of the tool calls the turn has seen, not yet run, by tool name."""
    call_steps: dict[str, tuple[int, str]]
    """Where those calls were made, by call id: (depth, trajectory id)."""
    tool_tasks: set[asyncio.Task[Any]]
    """Tool calls running now (cancelled with the turn)."""

    def emit_nowait(self, event: ChatEvent) -> None:
        """Hand an event to the turn's reader."""


class TrioBridge:
    """Where the SDK calls into Trio for one agent.

    Lives on the agent's host loop.

    Args:
        host: The agent's host.
        services: The runtime's services for the agent (tools, policies, hooks).
        agent_id: The agent's id, for logs.
        current_turn: Returns the turn playing now, if any: a tool call is
            reported on its stream.

    Attributes:
        tools: The agent's tools by name.
        sdk_tools: The same tools as SDK tool callables.
        authorize: The SDK ``ask_user`` handler for built-in tools.
        sdk_hooks: SDK hook objects for the agent's hook points (see
            :mod:`~agy_trio.adapters.antigravity.hook_bridge`).
        outcomes: Every tool call the runtime ran, by the SDK's call id.
    """

    def __init__(
        self,
        host: AioHost,
        services: AgentServices,
        agent_id: str,
        current_turn: Callable[[], ToolTurn | None],
    ) -> None:
        self.host = host
        self.services = services
        self.agent_id = agent_id
        self._current_turn = current_turn
        self.tools = {tool.name: tool for tool in services.tools}
        self.outcomes: dict[str, ToolCall] = {}
        self.sdk_tools = [self._sdk_tool(tool) for tool in services.tools]
        self.authorize = _authorizer(host, services)
        self.sdk_hooks = sdk_hooks(host, services, set(self.tools))

    # -- tools

    def _sdk_tool(self, tool: Tool) -> Any:
        tool_runner = importlib.import_module("google.antigravity.tools.tool_runner")

        async def invoke(**arguments: Any) -> Any:
            return await self.run_tool(tool, arguments)

        invoke.__name__ = tool.name
        invoke.__qualname__ = tool.name
        invoke.__doc__ = tool.description
        return tool_runner.ToolWithSchema(invoke, tool.parameters)

    async def run_tool(self, tool: Tool, raw_arguments: Mapping[str, Any]) -> Any:
        """Run ``tool`` in Trio under the runtime's policies; what the SDK calls.

        Raises:
            PermissionError: A policy denied the call (the SDK tells the model the tool failed).
        """
        turn = self._current_turn()
        arguments = normalize_arguments(tool, raw_arguments)
        call_id: str | None = None
        task = asyncio.current_task()
        if turn is not None:
            ids = turn.pending_ids.get(tool.name)
            if ids:
                call_id = ids.popleft()
            if task is not None:
                turn.tool_tasks.add(task)
        try:
            result = await self.host.call_trio(self.services.call_tool, tool.name, arguments)
        except PolicyDenied as exc:
            self._record(
                turn, ToolCall(tool.name, arguments, call_id, error=f"denied: {exc.reason}")
            )
            # Raised to the SDK, which reports the tool as failed to the model.
            raise PermissionError(f"tool {tool.name!r} denied by policy: {exc.reason}") from None
        except Exception as exc:
            self._record(turn, ToolCall(tool.name, arguments, call_id, error=describe(exc)))
            raise
        finally:
            if turn is not None and task is not None:
                turn.tool_tasks.discard(task)
        self._record(turn, ToolCall(tool.name, arguments, call_id, result=result))
        return result

    def _record(self, turn: ToolTurn | None, call: ToolCall) -> None:
        if turn is not None and call.call_id in turn.call_steps:
            depth, trajectory = turn.call_steps.pop(call.call_id)
            call = attrs.evolve(call, depth=depth, trajectory_id=trajectory or None)
        if call.call_id:
            self.outcomes[call.call_id] = call
        if turn is not None:
            turn.emit_nowait(call)

    # -- turn hooks

    async def turn_started(self) -> bool:
        """Run the runtime's turn-start hooks.

        Returns:
            Whether they ran (and :meth:`turn_ended` must run too): each hook
            call is a round trip into Trio, skipped when no hook listens.
        """
        if not getattr(self.services, "observes_turns", True):
            return False
        await self.host.call_trio(self.services.turn_started)
        return True

    async def turn_ended(self, hooks_ran: bool) -> None:
        """Run the runtime's turn-end hooks if the start hooks ran; a failure is logged."""
        if hooks_ran:
            try:
                await self.host.call_trio(self.services.turn_ended)
            except Exception as exc:
                log.warning("agent %s: turn-end hooks failed: %s", self.agent_id, describe(exc))


def _authorizer(host: AioHost, services: AgentServices) -> Callable[..., Any]:
    """The SDK ``ask_user`` handler for built-in and MCP tools: the runtime's policies decide.

    A plain function, not a bound method: the SDK deep-copies its config,
    policies included, and a bound method would drag its object (and its
    locks) into the copy.
    """

    async def authorize(tool_call: Any, reason: str = "") -> bool:
        # An MCP tool is put to the policies as "server/tool", with its own arguments;
        # the harness's reason (a safety assessment, say) goes on to the handlers.
        name, arguments = mcp_call(
            tool_name(tool_call.name), getattr(tool_call, "server_name", None), tool_call.args
        )
        allowed = await host.call_trio(
            functools.partial(services.authorize, reason=reason or ""), name, arguments
        )
        return bool(allowed)

    return authorize
