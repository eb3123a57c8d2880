"""What a runtime's rooms share: its agents, turns and commands in flight, and its closing state.

The runtime's behaviour is split by concern (:mod:`.command_loop` routes
commands, :mod:`.lifecycle` creates and ends agents and runs their turns,
:mod:`.wakeups`, :mod:`.shutdown`, :mod:`.threads`); the state they all read
lives here, in one :class:`RuntimeState`, so that no room reaches into another.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import outcome
import trio
import trio.lowlevel

from agy_trio.core.commands import WorkCancelled
from agy_trio.core.deadlines import Deadlines
from agy_trio.core.events import StopReason
from agy_trio.core.observe import Observer
from agy_trio.core.policy_types import Approver
from agy_trio.core.quota import QuotaRegistry, QuotaState
from agy_trio.core.streaming import ChatResponse, StreamCounters, TurnStream
from agy_trio.errors import AgyError, QuotaExceeded, RuntimeClosed

if TYPE_CHECKING:
    from agy_trio.core.agent import AgentHandle
    from agy_trio.core.backend import AgentSession, Backend
    from agy_trio.core.commands import Command
    from agy_trio.core.settings import AgentConfig, RuntimeConfig

__all__ = ["HANDED_OFF", "AgentRecord", "RunningTurn", "RuntimeState", "TurnOwner"]

HANDED_OFF: Any = object()
"""What a command task returns when it passed its command on to the backend (who answers it)."""


@attrs.define(eq=False, weakref_slot=False)
class AgentRecord:
    """What the runtime keeps about one agent."""

    agent_id: str
    config: AgentConfig
    session: AgentSession
    handle: AgentHandle
    quota: QuotaState
    chat_timeout: float
    # Turns still producing; None while there is none (most of an agent's life).
    turns: set[RunningTurn] | None = attrs.field(init=False, default=None)


class TurnOwner(Protocol):
    """What a running turn reports its end to (the agent life cycle)."""

    def turn_ended(self, turn: RunningTurn, error: BaseException | None) -> None:
        """The turn produced its last event."""

    def interrupt(self, turn: RunningTurn) -> None:
        """Cancel a turn whose response was abandoned (Trio thread)."""


@attrs.define(eq=False, weakref_slot=False)
class RunningTurn:
    """A chat turn the runtime follows: its stream, its response, its deadline."""

    state: RuntimeState
    owner: TurnOwner
    record: AgentRecord
    stream: TurnStream
    limit: float
    settled: bool = attrs.field(init=False, default=False)
    # Its response was abandoned: the turn is being interrupted.
    abandoned: bool = attrs.field(init=False, default=False)
    # Weak: a response its caller dropped must be collectable while the
    # turn runs, so that its finaliser releases the turn.
    response: weakref.ref[ChatResponse] | None = attrs.field(init=False, default=None)

    def reader(self) -> ChatResponse | None:
        """The turn's response, unless its caller dropped it (or it is not made yet)."""
        return None if self.response is None else self.response()

    def settle(self, error: BaseException | None) -> None:
        """Settle quota once: called by whichever sees the end first, reader or stream."""
        if self.settled:
            return
        self.settled = True
        quota = self.record.quota
        if isinstance(error, QuotaExceeded):
            self.state.quota_hit(quota, error)
        elif error is None and (
            (response := self.reader()) is None or response.stop_reason is not StopReason.CANCELLED
        ):
            # Only a completed turn clears a quota backoff.
            quota.record_success()

    def ended(self, error: BaseException | None) -> None:
        """The stream produced its last event: settle, then let the owner forget the turn."""
        self.settle(error)
        self.owner.turn_ended(self, error)

    def abandon(self) -> bool:
        """Its response was dropped before the end: interrupt the turn. Any thread (GC).

        Returns:
            Whether the turn was still running.
        """
        if self not in self.state.turns or self.stream.usage is not None:
            return False  # it ended (its end may not have reached the runtime yet)
        # At once, so that a message routed before the cancel starts never
        # releases the turn to run on to its end.
        self.abandoned = True
        with contextlib.suppress(trio.RunFinishedError):
            self.state.token.run_sync_soon(self.owner.interrupt, self)
        return True


@attrs.define(eq=False)
class RuntimeState:
    """The state every room of one runtime reads and writes. Trio thread only.

    Attributes:
        config: The runtime's configuration.
        backend: The backend agents live in.
        nursery: Where command tasks and turn cancellations run.
        token: The Trio run the runtime lives in.
        thread: The id of that run's thread.
        quota: Quota backoff per API key.
        deadlines: ``operation_timeout`` per command and ``chat_timeout`` per
            turn, under one watchdog.
        agents: The live agents by id.
        turns: Turns still producing.
        running: Every routed command until it completes (shutdown cancels them).
        observer: What commands and turns are reported to, if anything.
        approver: Who answers ``ask_user`` rules without a handler, if anyone.
        counters: Counters shared by every response.
    """

    config: RuntimeConfig
    backend: Backend
    nursery: trio.Nursery
    deadlines: Deadlines[Any]
    token: trio.lowlevel.TrioToken = attrs.field(factory=trio.lowlevel.current_trio_token)
    thread: int = attrs.field(factory=threading.get_ident)
    quota: QuotaRegistry = attrs.field(factory=QuotaRegistry)
    agents: dict[str, AgentRecord] = attrs.field(factory=dict)
    turns: set[RunningTurn] = attrs.field(factory=set)
    running: set[Command[Any]] = attrs.field(factory=set)
    observer: Observer | None = None
    approver: Approver | None = None
    counters: StreamCounters = attrs.field(factory=StreamCounters)
    closing: bool = False
    closed_reason: AgyError | None = None
    turns_started: int = 0
    quota_hits: int = 0
    # Set while shutdown waits for the runtime to go quiet (commands pay nothing for it).
    quiet: trio.Event | None = None

    def closed_error(self) -> AgyError:
        """The error a command gets once the runtime is closing."""
        return self.closed_reason or RuntimeClosed("the runtime is shut down")

    def quota_hit(self, quota: QuotaState, error: QuotaExceeded) -> None:
        """Count a quota error and start (or extend) the key's backoff."""
        self.quota_hits += 1
        quota.record_hit(error.retry_after)

    def busy(self) -> bool:
        """Whether a command or a turn is still in flight."""
        return bool(self.running or self.turns)

    def check_quiet(self) -> None:
        """Wake the shutdown waiting for quiet, if it waits and nothing is in flight."""
        if self.quiet is not None and not self.busy():
            self.quiet.set()
            self.quiet = None

    def spawn(self, command: Command[Any], fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Answer ``command`` with what ``fn(command, *args)`` returns, in a task of its own."""
        self.nursery.start_soon(_run_command_task, command, fn, args)


async def _run_command_task(
    command: Command[Any], fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
) -> None:
    """Run a command the runtime answers itself, as its own task, and answer it."""
    scope = trio.CancelScope()
    command.set_canceller(scope.cancel)
    result: outcome.Outcome[Any] | None = None
    handed_off = False
    try:
        with scope:
            value = await fn(command, *args)
            if value is HANDED_OFF:
                handed_off = True
            else:
                result = outcome.Value(value)
    except Exception as exc:
        result = outcome.Error(exc)
    finally:
        # Even when a cancellation unwinds this task, the caller is answered.
        if not handed_off:
            command.complete(result if result is not None else outcome.Error(WorkCancelled()))
