"""The command set, declared once, and the command value that carries one call.

Every operation on an agent is a :class:`Command`: a value naming its
:class:`CommandSpec`, its agent and its arguments, with its own one-shot reply.
A handle builds it, the runtime's dispatch loop routes it, the agent's backend
session answers it by running ``spec.call`` on the agent (see
:mod:`agy_trio.core.contract`). Adding a command the backend answers means its
spec here (with its ``call``), its method on
:class:`~agy_trio.core.agent.AgentHandle`, its coroutine on
:class:`~agy_trio.core.contract.HostedAgent` and each backend's implementation
of it; mypy fails while a backend lacks it, and
:func:`~agy_trio.core.contract.check_contract` while the handle or the protocol
does.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs
import outcome
import trio

from agy_trio.core.content import Part
from agy_trio.core.contract import HostedAgent, TurnHandle, TurnSink

if TYPE_CHECKING:
    from agy_trio.core.streaming import ChatResponse

__all__ = ["COMMANDS", "CancelReason", "Command", "CommandSpec", "Route", "WorkCancelled"]

T = TypeVar("T")


class WorkCancelled(BaseException):
    """The outcome of work that stopped because the runtime asked it to.

    A backend completes a command with ``outcome.Error(WorkCancelled())`` when
    the command's canceller (see :meth:`Command.set_canceller`) stopped it; the
    runtime turns that into what the caller should see (its own
    ``trio.Cancelled``, :class:`~agy_trio.errors.OperationTimeout` or
    :class:`~agy_trio.errors.RuntimeClosed`). It derives from BaseException so
    that no ``except Exception`` on the way mistakes it for a failure.
    """


class Route(enum.Enum):
    """Who answers a command."""

    SESSION = "session"
    """The agent's backend session; the runtime only routes it."""
    RUNTIME = "runtime"
    """The runtime, which may consult the backend on the way."""


AgentCall = Callable[..., Coroutine[Any, Any, Any]]
"""``call(agent, *command.args)``: the coroutine of a ``HostedAgent`` answering a command."""


@attrs.frozen
class CommandSpec(Generic[T]):
    """The declaration of one command.

    Attributes:
        name: The command's name: the handle's method, the agent's method,
            the key of its statistics and the operation named in its errors.
        route: Who answers it.
        is_llm: Whether it talks to the model: it waits for the agent's quota
            backoff and counts as a wake-up.
        timed: Whether ``operation_timeout`` bounds it (``wait_for_wakeup`` is
            bounded by its own argument instead).
        needs_agent: Whether it addresses an existing agent.
        call: For a command the backend answers: how, as ``call(agent, *args)``
            on the agent's :class:`~agy_trio.core.contract.HostedAgent`; None
            for one the runtime answers itself.
        method: The name of the method that sends it, when not ``name``.
    """

    name: str
    route: Route = Route.SESSION
    is_llm: bool = False
    timed: bool = True
    needs_agent: bool = True
    call: AgentCall | None = attrs.field(default=None, eq=False, repr=False)
    method: str | None = None

    @property
    def sender(self) -> str:
        """The name of the method (of the handle, or the runtime) that sends it."""
        return self.method or self.name


def _asks(name: str, call: Callable[[HostedAgent], Coroutine[Any, Any, T]]) -> CommandSpec[T]:
    """A command the agent's session answers with ``call(agent)``; typed by its result."""
    return CommandSpec(name, call=call)


def _chat(
    agent: HostedAgent, content: Sequence[Part], sink: TurnSink
) -> Coroutine[Any, Any, TurnHandle]:
    return agent.chat(content, sink)


def _send(agent: HostedAgent, content: Sequence[Part]) -> Coroutine[Any, Any, None]:
    return agent.send(content)


CREATE_AGENT = CommandSpec[str]("create_agent", Route.RUNTIME, needs_agent=False)
# A chat's answer is the turn's stream, which the runtime wraps in a ChatResponse.
CHAT: CommandSpec[ChatResponse] = CommandSpec("chat", Route.RUNTIME, is_llm=True, call=_chat)
SEND = CommandSpec[None]("send", Route.RUNTIME, is_llm=True, call=_send)
CANCEL = _asks("cancel", lambda agent: agent.cancel())
WAIT_FOR_IDLE = _asks("wait_for_idle", lambda agent: agent.wait_for_idle())
IS_IDLE = _asks("is_idle", lambda agent: agent.is_idle())
SIGNAL_IDLE = CommandSpec[None]("signal_idle", Route.RUNTIME)
WAIT_FOR_WAKEUP = CommandSpec[bool]("wait_for_wakeup", Route.RUNTIME, timed=False)
HISTORY = _asks("history", lambda agent: agent.history())
TURN_COUNT = _asks("turn_count", lambda agent: agent.turn_count())
TOTAL_USAGE = _asks("total_usage", lambda agent: agent.total_usage())
LAST_TURN_USAGE = _asks("last_turn_usage", lambda agent: agent.last_turn_usage())
CLEAR_HISTORY = _asks("clear_history", lambda agent: agent.clear_history())
COMPACTION_INDICES = _asks("compaction_indices", lambda agent: agent.compaction_indices())
LAST_RESPONSE = _asks("last_response", lambda agent: agent.last_response())
SHUTDOWN_AGENT = CommandSpec[None]("shutdown_agent", Route.RUNTIME, method="shutdown")
DELETE = CommandSpec[None]("delete", Route.RUNTIME)
DISCONNECT = CommandSpec[None]("disconnect", Route.RUNTIME)

COMMANDS: tuple[CommandSpec[Any], ...] = (
    CREATE_AGENT,
    CHAT,
    SEND,
    CANCEL,
    WAIT_FOR_IDLE,
    IS_IDLE,
    SIGNAL_IDLE,
    WAIT_FOR_WAKEUP,
    HISTORY,
    TURN_COUNT,
    TOTAL_USAGE,
    LAST_TURN_USAGE,
    CLEAR_HISTORY,
    COMPACTION_INDICES,
    LAST_RESPONSE,
    SHUTDOWN_AGENT,
    DELETE,
    DISCONNECT,
)
"""Every command, in the order the reference design lists them."""


class CancelReason(enum.Enum):
    """Why a running command was cancelled."""

    CALLER = "caller"
    TIMEOUT = "timeout"
    SHUTDOWN = "shutdown"


class _State(enum.Enum):
    QUEUED = 0  # in the command channel; nothing has reached the backend
    DROPPED = 1  # its caller gave up while it was queued: it never runs
    RUNNING = 2  # routed; someone owes it a completion
    DONE = 3


_QUEUED, _DROPPED, _RUNNING, _DONE = _State


# Command's reply is a parked task rescheduled with the outcome, not a
# trio.Event and a result slot: besides the cancellation rule below (a running
# command's cancelled caller keeps waiting for the outcome, which an Event
# cannot express without a shield), the ``primitives`` benchmark
# (benchmarks/RESULTS.md) measured 12.4 against 13.8 µs of CPU per command for
# one caller and 7.4 against 8.6 µs for 100 callers at once.


class Command(Generic[T]):
    """One call of one command, with its one-shot reply. Lives in the Trio thread.

    The caller waits with :meth:`wait`; whoever answers calls :meth:`complete`
    exactly once. Cancelling the waiting caller has one of two outcomes: if the
    command is still queued it is dropped and never reaches the backend; if it
    is running, its canceller is invoked and the caller keeps waiting for the
    outcome: the result, when the work finished anyway, or its own
    ``trio.Cancelled`` when the work stopped.
    """

    __slots__ = (
        "_canceller",
        "_raise_cancel",
        "_result",
        "_state",
        "_waiter",
        "agent_id",
        "args",
        "cancel_reason",
        "finisher",
        "limit",
        "spec",
        "started",
    )

    def __init__(self, spec: CommandSpec[T], agent_id: str, args: tuple[Any, ...] = ()) -> None:
        self.spec = spec
        self.agent_id = agent_id
        self.args = args
        self.cancel_reason: CancelReason | None = None
        # Runtime bookkeeping: when it was routed, and the time limit it runs under.
        self.started = 0.0
        self.limit = 0.0
        # Set by the runtime when it routes the command: translates the outcome
        # (cancellation markers, chat's response) before the caller sees it.
        self.finisher: Callable[[Command[T], outcome.Outcome[Any]], outcome.Outcome[T]] | None = (
            None
        )
        self._state = _QUEUED
        self._result: outcome.Outcome[T] | None = None
        self._waiter: trio.lowlevel.Task | None = None
        self._raise_cancel: Callable[[], Any] | None = None
        self._canceller: Callable[[], object] | None = None

    def __repr__(self) -> str:
        return f"<Command {self.spec.name} agent={self.agent_id!r} {self._state.name.lower()}>"

    @property
    def name(self) -> str:
        """The command's name."""
        return self.spec.name

    @property
    def dropped(self) -> bool:
        """Whether the caller gave up while the command was queued (it must not run)."""
        return self._state is _DROPPED

    @property
    def done(self) -> bool:
        """Whether the command has been completed."""
        return self._state is _DONE

    # ------------------------------------------------------------------ the answering side

    def start(self) -> None:
        """Mark the command as routed: from now on a cancelled caller waits for it."""
        self._state = _RUNNING

    def set_canceller(self, canceller: Callable[[], object] | None) -> None:
        """Say how to stop the work now running for this command (None: it cannot be).

        If a cancellation was requested before, ``canceller`` runs at once.
        """
        self._canceller = canceller
        if canceller is not None and self.cancel_reason is not None and self._state is _RUNNING:
            canceller()

    def cancel(self, reason: CancelReason) -> None:
        """Ask the running work to stop (the first reason wins). Trio thread."""
        if self._state is not _RUNNING or self.cancel_reason is not None:
            return
        self.cancel_reason = reason
        if self._canceller is not None:
            self._canceller()

    def complete(self, result: outcome.Outcome[Any]) -> None:
        """Answer the command (a second answer is ignored). Trio thread."""
        if self._state is _DONE:
            return
        self._state = _DONE
        self._canceller = None
        if self.finisher is not None:
            result = self.finisher(self, result)
        waiter = self._waiter
        if waiter is None:
            self._result = result
            return
        self._waiter = None
        if (
            type(result) is outcome.Error
            and type(result.error) is WorkCancelled
            and self._raise_cancel is not None
        ):
            # The caller was cancelled and the work stopped: it gets its Cancelled.
            result = outcome.capture(self._raise_cancel)
        trio.lowlevel.reschedule(waiter, result)

    # ------------------------------------------------------------------ the calling side

    def wait(self) -> Awaitable[T]:
        """Wait for the answer and return it (or raise the error it holds).

        Await the result at once (``await command.wait()``): the calling task
        is registered as the waiter when this is called. Not a coroutine
        function itself, so waiting costs no coroutine of its own. A command
        answered already is returned even to a cancelled caller (Trio's rule
        for an operation that succeeded).
        """
        result = self._result
        if result is not None:
            return _ready(result)
        self._waiter = trio.lowlevel.current_task()
        return trio.lowlevel.wait_task_rescheduled(self._abort)  # noqa: ASYNC105 - awaited by the caller

    def _abort(self, raise_cancel: Callable[[], Any]) -> trio.lowlevel.Abort:
        """The waiting caller is cancelled (see :meth:`wait`)."""
        if self._state is _QUEUED:
            # Nothing reached the backend: drop it; the dispatch loop skips it.
            self._state = _DROPPED
            self._waiter = None
            return trio.lowlevel.Abort.SUCCEEDED
        self._raise_cancel = raise_cancel
        self.cancel(CancelReason.CALLER)
        return trio.lowlevel.Abort.FAILED


async def _ready(result: outcome.Outcome[T]) -> T:
    # A schedule point, never a cancel point: the command was answered, and an
    # answer thrown away here is lost for good (a chat's response would leave
    # its prompt in the conversation with nobody told it went). A cancelled
    # caller gets the answer; its cancellation lands at its next checkpoint.
    await trio.lowlevel.cancel_shielded_checkpoint()
    return result.unwrap()
