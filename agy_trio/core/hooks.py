"""Lifecycle hooks: user callbacks around turns and tool calls.

Each hook is a sync callable or a Trio async callable taking one small event
object. Hooks of one kind run one after the other in registration order, each
within the runtime's ``handler_timeout``; sync hooks run in a worker thread so
they never stall Trio.

A ``before_tool`` hook guards the tool the way a policy does, and like a policy
it fails closed: returning ``False``, raising, returning anything other than
None/True/False, or overrunning the time limit blocks the call. Every other
hook only observes: its failures are logged on the ``agy_trio.hooks`` logger
and never break the turn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias

import attrs
import trio

from agy_trio.core.calling import Guard, callable_name, run_callable
from agy_trio.errors import ConfigError

__all__ = ["SDK_HOOK_POINTS", "Hook", "Hooks", "ToolEvent", "ToolResultEvent", "TurnEvent"]

SDK_HOOK_POINTS = (
    "on_session_start",
    "on_session_end",
    "pre_turn",
    "post_turn",
    "pre_tool_call",
    "post_tool_call",
    "on_tool_error",
    "on_interaction",
    "on_compaction",
    "stop",
)
"""The :class:`Hooks` fields that are the SDK's hook points (the others are agy_trio's own)."""

logger = logging.getLogger("agy_trio.hooks")

# A hook that returns nothing has no objection.
_BEFORE_TOOL = Guard("before_tool hook", "vetoed", logger, none_allows=True)


@attrs.frozen
class TurnEvent:
    """A turn of an agent started or ended.

    Attributes:
        agent_id: The runtime's id of the agent.
    """

    agent_id: str


@attrs.frozen
class ToolEvent:
    """A tool is about to run.

    Attributes:
        agent_id: The runtime's id of the agent.
        tool: The tool's name.
        arguments: The arguments the model passed (treat as read-only).
    """

    agent_id: str
    tool: str
    arguments: Mapping[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen
class ToolResultEvent(ToolEvent):
    """A tool has run: the :class:`ToolEvent` of the call, with its outcome.

    Attributes:
        agent_id: The runtime's id of the agent.
        tool: The tool's name.
        arguments: The arguments the model passed (treat as read-only).
        result: What the tool returned (None if it failed).
        error: The exception the tool raised, if it did.
    """

    result: Any = attrs.field(default=None, hash=False)
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        """Whether the tool returned normally."""
        return self.error is None


Hook: TypeAlias = Callable[[Any], Any]
"""A sync or Trio async callable taking one event object."""


def _to_hooks(hooks: Iterable[Hook]) -> tuple[Hook, ...]:
    return tuple(hooks)


def _check_hooks(
    _instance: object, attribute: attrs.Attribute[Any], value: tuple[Any, ...]
) -> None:
    for hook in value:
        if not callable(hook):
            raise ConfigError(f"hooks must be callable, got {hook!r}", field=attribute.name)


@attrs.frozen
class Hooks:
    """The hooks of one agent.

    Attributes:
        on_turn_start: Called with a :class:`TurnEvent` when a turn starts.
        on_turn_end: Called with a :class:`TurnEvent` when a turn ends.
        before_tool: Called with a :class:`ToolEvent` before a tool runs; may
            veto the call by returning False.
        after_tool: Called with a :class:`ToolResultEvent` after a tool ran
            (whether it returned or raised).
        on_session_start: The agent's session started (the SDK's point; takes
            only the context, or nothing).
        on_session_end: The agent's session ended.
        pre_turn: Before a turn: sees the prompt; may veto it (False, or a
            ``HookResult(allow=False, message=...)``) or rewrite it (returns
            the new content). A failure vetoes.
        post_turn: After a turn: sees the answer's text.
        pre_tool_call: Before a tool runs: sees the
            :class:`~agy_trio.core.policy.ToolRequest`; may deny it or rewrite
            its arguments (a mapping, or ``HookResult(modified_args=...)``).
            A failure denies.
        post_tool_call: After a tool ran: sees the :class:`ToolResultEvent`.
        on_tool_error: A tool failed: sees the exception; a string it returns
            is what the model reads instead of the error.
        on_interaction: The model asks the user questions (``ask_question``):
            sees an :class:`~agy_trio.core.hook_types.AskQuestionInteractionSpec`,
            returns the answers.
        on_compaction: The harness compacted the context: sees its summary.
        stop: The agent is about to end its turn: sees
            :class:`~agy_trio.core.hook_types.StopArgs`; a
            ``StopHookResult(CONTINUE, reason)`` (or a string) makes it go on
            with ``reason`` as its next instruction.

    Each hook takes the point's data, and the
    :class:`~agy_trio.core.hook_types.HookContext` too when it has a
    parameter named ``context``, as in the SDK.
    """

    @property
    def sdk_points(self) -> tuple[str, ...]:
        """The SDK hook points that have hooks, by field name."""
        return tuple(name for name in SDK_HOOK_POINTS if getattr(self, name))

    on_turn_start: tuple[Hook, ...] = attrs.field(
        default=(), converter=_to_hooks, validator=_check_hooks
    )
    on_turn_end: tuple[Hook, ...] = attrs.field(
        default=(), converter=_to_hooks, validator=_check_hooks
    )
    before_tool: tuple[Hook, ...] = attrs.field(
        default=(), converter=_to_hooks, validator=_check_hooks
    )
    after_tool: tuple[Hook, ...] = attrs.field(
        default=(), converter=_to_hooks, validator=_check_hooks
    )
    # The SDK's hook points (google.antigravity.hooks), with their powers;
    # see agy_trio.core.hook_points for what each may return.
    on_session_start: tuple[Hook, ...] = attrs.field(
        default=(), converter=_to_hooks, validator=_check_hooks
    )
    on_session_end: tuple[Hook, ...] = attrs.field(
        default=(), converter=_to_hooks, validator=_check_hooks
    )
    pre_turn: tuple[Hook, ...] = attrs.field(
        default=(), converter=_to_hooks, validator=_check_hooks
    )
    post_turn: tuple[Hook, ...] = attrs.field(
        default=(), converter=_to_hooks, validator=_check_hooks
    )
    pre_tool_call: tuple[Hook, ...] = attrs.field(
        default=(), converter=_to_hooks, validator=_check_hooks
    )
    post_tool_call: tuple[Hook, ...] = attrs.field(
        default=(), converter=_to_hooks, validator=_check_hooks
    )
    on_tool_error: tuple[Hook, ...] = attrs.field(
        default=(), converter=_to_hooks, validator=_check_hooks
    )
    on_interaction: tuple[Hook, ...] = attrs.field(
        default=(), converter=_to_hooks, validator=_check_hooks
    )
    on_compaction: tuple[Hook, ...] = attrs.field(
        default=(), converter=_to_hooks, validator=_check_hooks
    )
    stop: tuple[Hook, ...] = attrs.field(default=(), converter=_to_hooks, validator=_check_hooks)

    async def run_turn_start(self, agent_id: str, *, handler_timeout: float) -> None:
        """Run the ``on_turn_start`` hooks; failures are logged, never raised."""
        await _observe(self.on_turn_start, TurnEvent(agent_id), "on_turn_start", handler_timeout)

    async def run_turn_end(self, agent_id: str, *, handler_timeout: float) -> None:
        """Run the ``on_turn_end`` hooks; failures are logged, never raised."""
        await _observe(self.on_turn_end, TurnEvent(agent_id), "on_turn_end", handler_timeout)

    async def run_after_tool(self, event: ToolResultEvent, *, handler_timeout: float) -> None:
        """Run the ``after_tool`` hooks; failures are logged, never raised."""
        await _observe(self.after_tool, event, "after_tool", handler_timeout)

    async def run_before_tool(self, event: ToolEvent, *, handler_timeout: float) -> None:
        """Run the ``before_tool`` hooks, stopping at the first veto.

        Args:
            event: The pending tool call.
            handler_timeout: Seconds each hook has to return.

        Raises:
            PolicyDenied: A hook returned False or a non-bool other than None,
                raised, or did not return within ``handler_timeout``.
        """
        if not self.before_tool:
            await trio.lowlevel.checkpoint()
        for hook in self.before_tool:
            await _BEFORE_TOOL.ask(hook, event, tool=event.tool, timeout=handler_timeout)


async def _observe(
    hooks: tuple[Hook, ...], event: object, kind: str, handler_timeout: float
) -> None:
    if not hooks:
        # The common case; with hooks, run_callable makes the checkpoints.
        await trio.lowlevel.checkpoint()
    for hook in hooks:
        try:
            with trio.move_on_after(handler_timeout) as scope:
                await run_callable(hook, event)
        except Exception:
            # Observers must never break the turn they observe.
            logger.exception("%s hook %s raised; ignored", kind, callable_name(hook))
            continue
        if scope.cancelled_caught:
            logger.warning(
                "%s hook %s did not return within %g s; abandoned",
                kind,
                callable_name(hook),
                handler_timeout,
            )
