"""A backend with nothing behind it: every command is answered at once, in the Trio thread.

:class:`NullBackend` has no thread and no asyncio loop. Its agents are
:class:`~agy_trio.core.contract.HostedAgent` values served by the same
:class:`~agy_trio.adapters.hosted.HostedSession` as every backend's, on an
:class:`InlineHost` that runs their coroutines to their end inside the call, so
each command is answered the moment the runtime routes it. A program run over
it measures the runtime's own cost (the command channel, the dispatch loop,
time limits, statistics, the session, ``ChatResponse``) and nothing else::

    async with agy_trio.open_runtime(backend=NullBackend(reply="hi")) as rt:
        agent = await rt.create_agent()
        assert await (await agent.chat("hello")).text() == "hi"

Agents keep a real, if simple, conversation: each chat or send is a turn that
has already ended by the time it starts, and lands in ``history()`` with its
answer. Agents are therefore always idle, and ``cancel`` has nothing to stop.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, final

import outcome
import trio

from agy_trio.adapters.host_base import OnDone
from agy_trio.adapters.hosted import Canceller, HostedSession
from agy_trio.core.commands import AgentCall
from agy_trio.core.content import Part, content_text
from agy_trio.core.contract import Ending, TurnSink
from agy_trio.core.events import Message, StopReason, TextDelta, TurnEnd, Usage
from agy_trio.errors import AgentNotFound, BackendError, ConfigError

if TYPE_CHECKING:
    from agy_trio.core.backend import AgentServices
    from agy_trio.core.settings import AgentConfig

__all__ = ["InlineHost", "NullAgent", "NullBackend"]

T = TypeVar("T")

_NO_USAGE = Usage()
_END = TurnEnd(_NO_USAGE, StopReason.END_TURN)


def _count(value: object, field: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"must be an integer >= {minimum}, got {value!r}", field=field)
    return value


class InlineHost:
    """Runs an agent's coroutines to their end inside the call, in the Trio thread.

    The null agent's coroutines never wait, so there is no loop, no thread and
    no task: ``submit`` steps the coroutine once and hands its outcome on.
    """

    __slots__ = ()

    alive = True

    def submit(
        self, fn: AgentCall, args: tuple[Any, ...], on_done: OnDone, arg: object
    ) -> Canceller:
        """Run ``fn(*args)`` now; ``on_done(arg, outcome)`` gets its outcome before this returns."""
        on_done(arg, _run_inline(fn, args))
        return _nothing

    async def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """Run ``fn(*args)`` now and return its result."""
        await trio.lowlevel.checkpoint()
        result: T = _run_inline(fn, args).unwrap()
        return result

    def run_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``fn(*args)`` now (it never waits); its outcome is dropped."""
        _run_inline(fn, args)

    def wake_trio(self, fn: Callable[..., object], *args: Any) -> None:
        """We are in Trio already: call ``fn(*args)``."""
        fn(*args)


def _nothing() -> None:
    """The canceller of a call that is over before anyone could cancel it."""


def _run_inline(fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> outcome.Outcome[Any]:
    coroutine = fn(*args)
    try:
        coroutine.send(None)  # type: ignore[attr-defined]
    except StopIteration as stop:
        return outcome.Value(stop.value)
    except Exception as exc:
        return outcome.Error(exc)
    coroutine.close()  # type: ignore[attr-defined]
    return outcome.Error(BackendError("an inline coroutine tried to wait"))


class NullAgent:
    """A :class:`~agy_trio.core.contract.HostedAgent` whose every command is over at once.

    Each chat or send is a turn that has already ended by the time it starts,
    and lands in ``history()`` with its answer.
    """

    __slots__ = ("_backend", "_history", "_last_response", "_turns", "conversation_id", "ended")

    def __init__(self, backend: NullBackend, conversation_id: str) -> None:
        self._backend = backend
        self.conversation_id = conversation_id
        self._history: list[Message] = []
        self._turns = 0
        self._last_response: str | None = None
        self.ended = False

    def _play(self, parts: Sequence[Part]) -> None:
        """Record one turn in the conversation."""
        reply = self._backend.reply
        self._history.append(Message("user", content_text(parts)))
        self._history.append(Message("assistant", reply))
        self._turns += 1
        self._last_response = reply

    async def chat(self, content: Sequence[Part], sink: TurnSink) -> None:
        """Play the turn: its events are all in ``sink`` when this returns."""
        self._play(content)
        for delta in self._backend._deltas:
            sink.put_nowait(delta)
        sink.put_nowait(_END)
        sink.finish()

    async def send(self, content: Sequence[Part]) -> None:
        """Play a turn nobody reads."""
        self._play(content)

    async def cancel(self) -> None:
        """Every turn has already ended: nothing to stop."""

    async def cancel_turns(self, turns: Sequence[Any]) -> None:
        """Every turn has already ended: nothing to stop."""

    async def wait_for_idle(self) -> None:
        """The agent is always idle."""

    async def is_idle(self) -> bool:
        """Always True."""
        return True

    async def history(self) -> list[Message]:
        """The conversation so far."""
        return list(self._history)

    async def turn_count(self) -> int:
        """How many turns were played."""
        return self._turns

    async def total_usage(self) -> Usage:
        """No tokens: there is no model."""
        return _NO_USAGE

    async def last_turn_usage(self) -> Usage:
        """No tokens: there is no model."""
        return _NO_USAGE

    async def clear_history(self) -> None:
        """Forget the conversation so far."""
        self._history.clear()
        self._last_response = None

    async def compaction_indices(self) -> list[int]:
        """Never compacted."""
        return []

    async def last_response(self) -> str | None:
        """The last answer, if any."""
        return self._last_response

    async def end(self, how: Ending) -> None:
        """Nothing runs: the backend's bookkeeping is all there is (see ``NullBackend``)."""


@final
class NullBackend:
    """A ``Backend`` whose agents answer every command at once, in the Trio thread.

    It exists to measure the runtime itself: there is no host, no thread and no
    model, so whatever a program run over it spends is the runtime's own cost.

    Args:
        reply: The answer text of every turn.
        chunks: How many text deltas the answer streams in (roughly equal
            pieces; an empty reply streams none).
        batch_max: Most events a reader receives in one batch.

    Raises:
        ConfigError: ``chunks`` or ``batch_max`` is not an integer >= 1.
    """

    name = "null"

    def __init__(self, reply: str = "", *, chunks: int = 1, batch_max: int = 256) -> None:
        if not isinstance(reply, str):
            raise ConfigError(f"must be a string, got {reply!r}", field="reply")
        _count(chunks, "chunks", 1)
        self.batch_max = _count(batch_max, "batch_max", 1)
        self.reply = reply
        size = -(-len(reply) // chunks) if reply else 1
        # Frozen events: one set serves every turn.
        self._deltas = tuple(TextDelta(reply[i : i + size]) for i in range(0, len(reply), size))
        self._saved: dict[str, NullAgent] = {}
        self._live = 0
        self._conversations = 0
        self._host = InlineHost()

    @property
    def agents(self) -> int:
        """Agents alive now."""
        return self._live

    async def start(self, nursery: trio.Nursery) -> None:
        """Nothing to start."""
        await trio.lowlevel.checkpoint()

    async def create_agent(
        self, agent_id: str, config: AgentConfig, services: AgentServices
    ) -> HostedSession:
        """Create an agent, or resume the conversation ``config.conversation_id``."""
        await trio.lowlevel.checkpoint()
        conversation_id = config.conversation_id
        if conversation_id is not None:
            agent = self._saved.pop(conversation_id, None)
            if agent is None:
                raise AgentNotFound(f"no saved conversation {conversation_id!r} to resume")
            agent.ended = False
        else:
            self._conversations += 1
            agent = NullAgent(self, f"null-{self._conversations}")
        self._live += 1
        return HostedSession(
            agent,
            self._host,
            classify=_as_is,
            high_water=1024,  # never reached: a turn's events are put without waiting
            batch_max=self.batch_max,
            on_end=functools.partial(self._end, agent),
        )

    async def aclose(self) -> None:
        """Nothing to stop."""
        await trio.lowlevel.checkpoint()

    def _end(self, agent: NullAgent, how: Ending) -> None:
        if agent.ended:
            return
        agent.ended = True
        self._live -= 1
        if how != "delete":
            self._saved[agent.conversation_id] = agent


def _as_is(error: BaseException) -> BaseException:
    """The null backend raises only agy_trio's own errors: nothing to classify."""
    return error
