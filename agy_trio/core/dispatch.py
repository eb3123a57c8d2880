"""Tool dispatch for one agent: policies, then hooks, then the tool.

:class:`ToolDispatcher` is what the runtime hands a backend as the agent's
:class:`~agy_trio.core.backend.AgentServices`. When the model calls a tool, the
backend calls :meth:`ToolDispatcher.call_tool` from its asyncio thread through
its host's bridge, and everything below runs in Trio.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import trio

from agy_trio.core.hooks import Hooks, ToolEvent, ToolResultEvent
from agy_trio.core.policy import PolicySet
from agy_trio.core.policy_types import Approver
from agy_trio.core.tools import Tool
from agy_trio.core.validation import positive_number
from agy_trio.errors import ConfigError, PolicyDenied, ToolNotFound

if TYPE_CHECKING:
    from agy_trio.core.observe import Observer
    from agy_trio.core.settings import AgentConfig

__all__ = ["ToolDispatcher"]

logger = logging.getLogger("agy_trio.dispatch")


class ToolDispatcher:
    """Runs one agent's tools behind its policies and hooks.

    Implements :class:`~agy_trio.core.backend.AgentServices`.

    Args:
        agent_id: The runtime's id of the agent.
        tools: The agent's custom tools; names must be unique.
        policies: The rules guarding every tool, custom or built in.
        hooks: The agent's lifecycle hooks.
        handler_timeout: Seconds each policy handler and hook has to answer.
        observe: Returns the runtime's observer (or None), asked per tool call.
        approver: Returns who answers handler-less ``ask_user`` rules (or
            None: nobody), asked per tool call.

    Raises:
        ConfigError: Two tools share a name, or ``handler_timeout`` is not a
            positive number.
    """

    def __init__(
        self,
        agent_id: str,
        tools: Iterable[Tool] = (),
        policies: PolicySet | None = None,
        hooks: Hooks | None = None,
        *,
        handler_timeout: float = 30.0,
        observe: Callable[[], Observer | None] | None = None,
        approver: Callable[[], Approver | None] | None = None,
    ) -> None:
        self._agent_id = agent_id
        # Asked per call, like the observer: a server may start after the agent exists.
        self._approver = approver
        # Asked per call: an observer may be installed after the agent exists.
        self._observe = observe
        self._tools = tuple(tools)
        self._by_name: dict[str, Tool] = {}
        for tool in self._tools:
            if tool.name in self._by_name:
                raise ConfigError(f"two tools are named {tool.name!r}", field="tools")
            self._by_name[tool.name] = tool
        self._policies = policies if policies is not None else PolicySet()
        self._hooks = hooks if hooks is not None else Hooks()
        self._handler_timeout = positive_number(handler_timeout, "handler_timeout")

    @classmethod
    def from_config(
        cls,
        agent_id: str,
        config: AgentConfig,
        *,
        handler_timeout: float = 30.0,
        observe: Callable[[], Observer | None] | None = None,
        approver: Callable[[], Approver | None] | None = None,
    ) -> ToolDispatcher:
        """Build the dispatcher for an agent created from ``config``.

        Args:
            agent_id: The runtime's id of the agent.
            config: The agent's configuration (tools, policies, hooks).
            handler_timeout: Usually ``RuntimeConfig.handler_timeout``.
            observe: Returns the runtime's observer (or None), asked per tool call.
            approver: Returns who answers handler-less ``ask_user`` rules.
        """
        return cls(
            agent_id,
            config.tools,
            config.policy_set,
            config.hooks,
            handler_timeout=handler_timeout,
            observe=observe,
            approver=approver,
        )

    def __repr__(self) -> str:
        return f"<ToolDispatcher agent={self._agent_id!r} tools={list(self._by_name)!r}>"

    @property
    def agent_id(self) -> str:
        """The runtime's id of the agent."""
        return self._agent_id

    @property
    def tools(self) -> tuple[Tool, ...]:
        """The agent's custom tools, in the order they were given."""
        return self._tools

    def get_tool(self, name: str) -> Tool:
        """The custom tool called ``name``.

        Raises:
            ToolNotFound: The agent has no such tool.
        """
        try:
            return self._by_name[name]
        except KeyError:
            raise ToolNotFound(name, list(self._by_name)) from None

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> Any:
        """Check policies, run ``before_tool`` hooks, run the tool, run ``after_tool`` hooks.

        Args:
            name: The tool the model called.
            arguments: The arguments it passed.

        Returns:
            What the tool returned.

        Raises:
            ToolNotFound: The agent has no tool called ``name``.
            PolicyDenied: A rule, handler or ``before_tool`` hook refused the call.
            ToolArgumentError: The arguments do not fit the tool's signature.
            Exception: Whatever the tool itself raised (after ``after_tool`` ran).
        """
        try:
            tool = self.get_tool(name)
        except ToolNotFound:
            # A checkpoint on the error path too, as on every other.
            await trio.lowlevel.checkpoint()
            raise
        snapshot = types.MappingProxyType(dict(arguments))
        observer = self._observe() if self._observe is not None else None
        if observer is None:
            return await self._run_tool(tool, name, snapshot, arguments)
        with observer.tool_call(self._agent_id, name, snapshot):
            return await self._run_tool(tool, name, snapshot, arguments)

    async def _run_tool(
        self,
        tool: Tool,
        name: str,
        snapshot: Mapping[str, Any],
        arguments: Mapping[str, Any],
    ) -> Any:
        await self._guard(name, snapshot)
        try:
            result = await tool.invoke(arguments)
        except Exception as exc:
            await self._after_tool(ToolResultEvent(self._agent_id, name, snapshot, error=exc))
            raise
        await self._after_tool(ToolResultEvent(self._agent_id, name, snapshot, result=result))
        return result

    async def authorize(self, name: str, arguments: Mapping[str, Any], *, reason: str = "") -> bool:
        """Whether a tool the backend runs itself (a built-in) may run.

        Applies the same policies and ``before_tool`` hooks as :meth:`call_tool`
        and fails closed the same way, but answers False instead of raising.

        Args:
            name: The tool.
            arguments: Its arguments.
            reason: Why the backend asks, handed on to ``ask_user`` handlers.
        """
        try:
            await self._guard(name, types.MappingProxyType(dict(arguments)), reason=reason)
        except PolicyDenied as exc:
            logger.info("agent %s: %s", self._agent_id, exc)
            return False
        return True

    @property
    def observes_turns(self) -> bool:
        """Whether the agent has turn hooks (a backend may skip the crossing when not)."""
        return bool(self._hooks.on_turn_start or self._hooks.on_turn_end)

    async def turn_started(self) -> None:
        """Run the agent's ``on_turn_start`` hooks."""
        await self._hooks.run_turn_start(self._agent_id, handler_timeout=self._handler_timeout)

    async def turn_ended(self) -> None:
        """Run the agent's ``on_turn_end`` hooks."""
        await self._hooks.run_turn_end(self._agent_id, handler_timeout=self._handler_timeout)

    # The policy check always makes a checkpoint. Hooks.run_* make one even
    # when there are no hooks; calling them only when there are spares each
    # tool call two needless trips through the scheduler.

    async def _guard(self, name: str, arguments: Mapping[str, Any], *, reason: str = "") -> None:
        await self._policies.check(
            name,
            arguments,
            handler_timeout=self._handler_timeout,
            agent_id=self._agent_id,
            reason=reason,
            approver=self._approver() if self._approver is not None else None,
        )
        if self._hooks.before_tool:
            await self._hooks.run_before_tool(
                ToolEvent(self._agent_id, name, arguments), handler_timeout=self._handler_timeout
            )

    async def _after_tool(self, event: ToolResultEvent) -> None:
        if self._hooks.after_tool:
            await self._hooks.run_after_tool(event, handler_timeout=self._handler_timeout)
