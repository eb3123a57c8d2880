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

from agy_trio.core import hook_points
from agy_trio.core.content import Content, TextPart
from agy_trio.core.hook_types import (
    AskQuestionInteractionSpec,
    HookContext,
    QuestionHookResult,
    StopArgs,
    StopHookResult,
)
from agy_trio.core.hooks import Hooks, ToolEvent, ToolResultEvent
from agy_trio.core.policy import PolicySet, ToolRequest
from agy_trio.core.policy_types import Approver
from agy_trio.core.tools import Tool
from agy_trio.core.validation import positive_number
from agy_trio.errors import ConfigError, PolicyDenied, ToolError, ToolNotFound, TurnVetoed

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
        # Shared by every hook of the agent, as the SDK's session state store is.
        self._state: dict[str, Any] = {}
        self._turn = 0

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
        await self._policies.check(
            name,
            snapshot,
            handler_timeout=self._handler_timeout,
            agent_id=self._agent_id,
            approver=self._approver() if self._approver is not None else None,
        )
        if self._hooks.pre_tool_call:
            decision = await self.pre_tool_call(name, snapshot)
            if not decision.allowed:
                raise PolicyDenied(name, decision.message)
            if decision.modified:
                arguments = dict(decision.arguments)
                snapshot = types.MappingProxyType(dict(arguments))
        if self._hooks.before_tool:
            await self._hooks.run_before_tool(
                ToolEvent(self._agent_id, name, snapshot), handler_timeout=self._handler_timeout
            )
        hooks = self._hooks
        observed = bool(hooks.after_tool or hooks.post_tool_call)
        try:
            result = await tool.invoke(arguments)
        except Exception as exc:
            if observed:
                await self.tool_ran(ToolResultEvent(self._agent_id, name, snapshot, error=exc))
            if hooks.on_tool_error:
                message = await self.tool_failed(exc, name, snapshot)
                if message is not None:
                    # What the model reads instead of the tool's own error.
                    raise ToolError(name, message) from exc
            raise
        if observed:
            await self.tool_ran(ToolResultEvent(self._agent_id, name, snapshot, result=result))
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

    # ------------------------------------------------------------------ the SDK's hook points

    @property
    def hooks(self) -> Hooks:
        """The agent's hooks."""
        return self._hooks

    def context(self, call: ToolRequest | None = None) -> HookContext:
        """The :class:`HookContext` a hook of this agent gets now."""
        return HookContext(self._agent_id, self._turn, call, self._state)

    async def pre_turn(self, content: Content) -> Content:
        """Run the ``pre_turn`` hooks on a prompt; return the prompt to send.

        The hooks see a plain string when the prompt is one text part.

        Raises:
            TurnVetoed: A hook vetoed the prompt, raised or overran its time.
        """
        self._turn += 1
        parts = tuple(content) if not isinstance(content, str) else (TextPart(content),)
        prompt: Any = parts
        if len(parts) == 1 and isinstance(parts[0], TextPart):
            prompt = parts[0].text
        allowed, message, prompt = await hook_points.run_pre_turn(
            self._hooks.pre_turn, self.context(), prompt, timeout=self._handler_timeout
        )
        if not allowed:
            logger.info("agent %s: turn vetoed: %s", self._agent_id, message)
            raise TurnVetoed(message)
        return prompt  # type: ignore[no-any-return]

    async def post_turn(self, response_text: str) -> None:
        """Run the ``post_turn`` hooks (failures are logged)."""
        await self._observe_hooks(self._hooks.post_turn, response_text, "post_turn")

    async def pre_tool_call(
        self, name: str, arguments: Mapping[str, Any], server_name: str | None = None
    ) -> hook_points.ToolDecision:
        """Run the ``pre_tool_call`` hooks: deny, or the arguments to run the tool with."""
        request = ToolRequest(name, arguments, self._agent_id, server_name)
        return await hook_points.run_pre_tool_call(
            self._hooks.pre_tool_call,
            self.context(request),
            request,
            timeout=self._handler_timeout,
        )

    async def tool_ran(self, event: ToolResultEvent, *, post_tool_call_only: bool = False) -> None:
        """Run the ``after_tool`` and ``post_tool_call`` hooks on a call's outcome.

        Args:
            event: The call and its outcome.
            post_tool_call_only: Run only the ``post_tool_call`` hooks (for a
                tool the harness ran: ``after_tool`` sees custom tools only).
        """
        after = self._hooks.after_tool if not post_tool_call_only else ()
        if not (after or self._hooks.post_tool_call):
            await trio.lowlevel.checkpoint()
        if after:
            await self._hooks.run_after_tool(event, handler_timeout=self._handler_timeout)
        if self._hooks.post_tool_call:
            request = ToolRequest(event.tool, event.arguments, self._agent_id)
            await hook_points.observe(
                self._hooks.post_tool_call,
                self.context(request),
                event,
                kind="post_tool_call",
                timeout=self._handler_timeout,
            )

    async def tool_failed(
        self, error: Exception, name: str, arguments: Mapping[str, Any] | None = None
    ) -> str | None:
        """Run the ``on_tool_error`` hooks: the message the model reads instead, or None."""
        request = ToolRequest(name, arguments or {}, self._agent_id)
        return await hook_points.run_on_tool_error(
            self._hooks.on_tool_error, self.context(request), error, timeout=self._handler_timeout
        )

    async def stop(self, args: StopArgs) -> StopHookResult:
        """Run the ``stop`` hooks: stop, or continue with an instruction."""
        return await hook_points.run_stop(
            self._hooks.stop, self.context(), args, timeout=self._handler_timeout
        )

    async def interaction(self, spec: AskQuestionInteractionSpec) -> QuestionHookResult | None:
        """Run the ``on_interaction`` hooks: the answers to the model's questions, or None."""
        return await hook_points.run_on_interaction(
            self._hooks.on_interaction, self.context(), spec, timeout=self._handler_timeout
        )

    async def compacted(self, summary: str) -> None:
        """Run the ``on_compaction`` hooks with the compaction's summary."""
        await self._observe_hooks(self._hooks.on_compaction, summary, "on_compaction")

    async def session_started(self) -> None:
        """Run the ``on_session_start`` hooks."""
        await self._observe_hooks(self._hooks.on_session_start, None, "on_session_start", False)

    async def session_ended(self) -> None:
        """Run the ``on_session_end`` hooks."""
        await self._observe_hooks(self._hooks.on_session_end, None, "on_session_end", False)

    async def _observe_hooks(
        self, hooks: tuple[Any, ...], data: Any, kind: str, with_data: bool = True
    ) -> None:
        await hook_points.observe(
            hooks,
            self.context(),
            data,
            kind=kind,
            timeout=self._handler_timeout,
            with_data=with_data,
        )
