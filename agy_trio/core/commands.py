"""The runtime's commands: one small attrs class each, carrying its own reply slot.

A caller builds a command, sends it over the runtime's bounded command
channel, and waits on the command's :class:`Reply`. The dispatch loop runs
every command as its own task, so a slow chat never holds up ``history()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import attrs
import outcome
import trio

from agy_trio.core.content import Part
from agy_trio.core.events import Message, Usage

if TYPE_CHECKING:
    from agy_trio.core.backend import AgentSession
    from agy_trio.core.config import AgentConfig

__all__ = [
    "Cancel",
    "Chat",
    "ClearHistory",
    "Command",
    "CompactionIndices",
    "CreateAgent",
    "Delete",
    "Disconnect",
    "History",
    "IsIdle",
    "LastResponse",
    "LastTurnUsage",
    "Reply",
    "Send",
    "ShutdownAgent",
    "SignalIdle",
    "TotalUsage",
    "TurnCount",
    "WaitForIdle",
    "WaitForWakeup",
]

T = TypeVar("T")


class Reply(Generic[T]):
    """A one-shot reply slot: the command task fills it, the caller waits on it.

    It is built on ``wait_task_rescheduled`` rather than a memory channel because
    it sits on every command's path and needs no buffering. When the waiting
    caller is cancelled, ``on_abandon`` runs (the runtime cancels the command)
    and the caller keeps waiting until the command has unwound, so that
    cancelling a caller never leaves work running behind its back.
    """

    __slots__ = ("_abandoned", "_on_abandon", "_raise_cancel", "_result", "_waiter")

    def __init__(self) -> None:
        self._result: outcome.Outcome[T] | None = None
        self._waiter: trio.lowlevel.Task | None = None
        self._raise_cancel: Callable[[], Any] | None = None
        self._on_abandon: Callable[[], None] | None = None
        self._abandoned = False

    @property
    def abandoned(self) -> bool:
        """Whether the caller was cancelled while waiting."""
        return self._abandoned

    def set_on_abandon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` if the caller is cancelled while waiting (at most once)."""
        self._on_abandon = callback
        if self._abandoned:
            callback()

    def send(self, result: outcome.Outcome[T]) -> None:
        """Fill the slot; a second call is ignored. Runs in the Trio thread."""
        if self._result is not None:
            return
        if self._abandoned and self._raise_cancel is not None:
            # The caller was cancelled: it receives its Cancelled, not the result.
            result = outcome.capture(self._raise_cancel)
        self._result = result
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            trio.lowlevel.reschedule(waiter, result)

    async def wait(self) -> T:
        """Wait for the result and return it (or raise the error it holds)."""
        if self._result is not None:
            await trio.lowlevel.checkpoint()
            return self._result.unwrap()
        self._waiter = trio.lowlevel.current_task()

        def abort(raise_cancel: Callable[[], Any]) -> trio.lowlevel.Abort:
            self._abandoned = True
            self._raise_cancel = raise_cancel
            if self._on_abandon is not None:
                self._on_abandon()
            return trio.lowlevel.Abort.FAILED

        result: T = await trio.lowlevel.wait_task_rescheduled(abort)
        return result


@attrs.define(eq=False)
class Command(Generic[T]):
    """Base of every command.

    Attributes:
        agent_id: The agent the command is for (empty for runtime-level commands).
        reply: Where the result goes.
        name: The command's name, for logs, errors and statistics.
        is_llm: Whether the command talks to the model (quota and pacing apply).
    """

    agent_id: str
    reply: Reply[T] = attrs.field(factory=Reply, repr=False)
    name: ClassVar[str] = "command"
    is_llm: ClassVar[bool] = False

    async def execute(self, session: AgentSession) -> T:
        """Run the command against the agent's backend session."""
        raise NotImplementedError


@attrs.define(eq=False)
class CreateAgent(Command[str]):
    """Create an agent from a config; replies with its id."""

    config: AgentConfig | None = None
    name: ClassVar[str] = "create_agent"


@attrs.define(eq=False)
class Chat(Command[Any]):
    """Start a turn; replies with a ChatResponse as soon as the turn has started."""

    content: tuple[Part, ...] = ()
    name: ClassVar[str] = "chat"
    is_llm: ClassVar[bool] = True


@attrs.define(eq=False)
class Send(Command[None]):
    """Queue a message for the agent without waiting for the answer."""

    content: tuple[Part, ...] = ()
    name: ClassVar[str] = "send"
    is_llm: ClassVar[bool] = True

    async def execute(self, session: AgentSession) -> None:
        """Run against the agent's backend session."""
        await session.send(self.content)


@attrs.define(eq=False)
class Cancel(Command[None]):
    """Stop the agent's active turn."""

    name: ClassVar[str] = "cancel"


@attrs.define(eq=False)
class WaitForIdle(Command[None]):
    """Return once the agent has no active turn."""

    name: ClassVar[str] = "wait_for_idle"

    async def execute(self, session: AgentSession) -> None:
        """Run against the agent's backend session."""
        await session.wait_for_idle()


@attrs.define(eq=False)
class IsIdle(Command[bool]):
    """Whether the agent has no active turn."""

    name: ClassVar[str] = "is_idle"

    async def execute(self, session: AgentSession) -> bool:
        """Run against the agent's backend session."""
        return await session.is_idle()


@attrs.define(eq=False)
class SignalIdle(Command[None]):
    """The agent declares itself idle: pending wake-ups are dropped."""

    name: ClassVar[str] = "signal_idle"


@attrs.define(eq=False)
class WaitForWakeup(Command[bool]):
    """Wait up to ``timeout`` seconds for the agent to be woken by a message."""

    timeout: float = math.inf
    name: ClassVar[str] = "wait_for_wakeup"


@attrs.define(eq=False)
class ShutdownAgent(Command[None]):
    """Stop the agent and release its resources."""

    name: ClassVar[str] = "shutdown_agent"


@attrs.define(eq=False)
class History(Command[list[Message]]):
    """The conversation so far."""

    name: ClassVar[str] = "history"

    async def execute(self, session: AgentSession) -> list[Message]:
        """Run against the agent's backend session."""
        return await session.history()


@attrs.define(eq=False)
class TurnCount(Command[int]):
    """How many turns completed."""

    name: ClassVar[str] = "turn_count"

    async def execute(self, session: AgentSession) -> int:
        """Run against the agent's backend session."""
        return await session.turn_count()


@attrs.define(eq=False)
class TotalUsage(Command[Usage]):
    """Token usage summed over all turns."""

    name: ClassVar[str] = "total_usage"

    async def execute(self, session: AgentSession) -> Usage:
        """Run against the agent's backend session."""
        return await session.total_usage()


@attrs.define(eq=False)
class LastTurnUsage(Command[Usage]):
    """Token usage of the most recent turn."""

    name: ClassVar[str] = "last_turn_usage"

    async def execute(self, session: AgentSession) -> Usage:
        """Run against the agent's backend session."""
        return await session.last_turn_usage()


@attrs.define(eq=False)
class ClearHistory(Command[None]):
    """Forget the conversation so far."""

    name: ClassVar[str] = "clear_history"

    async def execute(self, session: AgentSession) -> None:
        """Run against the agent's backend session."""
        await session.clear_history()


@attrs.define(eq=False)
class CompactionIndices(Command[list[int]]):
    """History indices at which the conversation was compacted."""

    name: ClassVar[str] = "compaction_indices"

    async def execute(self, session: AgentSession) -> list[int]:
        """Run against the agent's backend session."""
        return await session.compaction_indices()


@attrs.define(eq=False)
class LastResponse(Command["str | None"]):
    """The text of the last answer."""

    name: ClassVar[str] = "last_response"

    async def execute(self, session: AgentSession) -> str | None:
        """Run against the agent's backend session."""
        return await session.last_response()


@attrs.define(eq=False)
class Delete(Command[None]):
    """Stop the agent and drop its conversation and every piece of its state."""

    name: ClassVar[str] = "delete"


@attrs.define(eq=False)
class Disconnect(Command[None]):
    """Stop the agent but keep its state, to resume later by conversation id."""

    name: ClassVar[str] = "disconnect"
