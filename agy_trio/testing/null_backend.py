"""A backend with nothing behind it: every command is answered at once, in the Trio thread.

:class:`NullBackend` has no host, no thread and no asyncio loop. Its sessions
answer each command the moment the runtime routes it, so a program run over it
measures the runtime's own cost (the command channel, the dispatch loop, time
limits, statistics, ``ChatResponse``) and nothing else::

    async with agy_trio.open_runtime(backend=NullBackend(reply="hi")) as rt:
        agent = await rt.create_agent()
        assert await (await agent.chat("hello")).text() == "hi"

Agents keep a real, if simple, conversation: each chat or send is a turn that
has already ended by the time it starts, and lands in ``history()`` with its
answer. Agents are therefore always idle, and ``cancel`` has nothing to stop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, final

import outcome
import trio

from agy_trio.core import commands as cmds
from agy_trio.core.commands import Command
from agy_trio.core.content import Part, content_text
from agy_trio.core.events import ChatEvent, Message, StopReason, TextDelta, TurnEnd, Usage
from agy_trio.errors import AgentNotFound, ConfigError

if TYPE_CHECKING:
    from agy_trio.core.backend import AgentServices
    from agy_trio.core.settings import AgentConfig

__all__ = ["NullBackend"]

_NO_USAGE = Usage()
_END = TurnEnd(_NO_USAGE, StopReason.END_TURN)
_CANCELLED = TurnEnd(_NO_USAGE, StopReason.CANCELLED)


def _count(value: object, field: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"must be an integer >= {minimum}, got {value!r}", field=field)
    return value


class _NullTurn:
    """A ``TurnStream`` whose events were all produced before the turn started."""

    __slots__ = ("_backend", "_events", "_finished", "_usage")

    def __init__(self, backend: NullBackend, events: list[ChatEvent]) -> None:
        self._backend = backend
        self._events = events
        self._finished = False
        final = events[-1] if events else None
        self._usage = final.usage if isinstance(final, TurnEnd) else None

    async def receive_batch(self) -> Sequence[ChatEvent]:
        """Every event left, up to the backend's ``batch_max``, or EndOfChannel."""
        await trio.lowlevel.checkpoint()
        events = self._events
        if not events:
            raise trio.EndOfChannel
        batch_max = self._backend.batch_max
        if len(events) <= batch_max:
            self._events = []
            return events
        batch, self._events = events[:batch_max], events[batch_max:]
        return batch

    @property
    def usage(self) -> Usage | None:
        """The usage of the turn's final event (the turn is over from the start)."""
        return self._usage

    def add_done_callback(self, callback: Callable[[BaseException | None], object]) -> None:
        """The turn is already over: ``callback(None)`` runs soon, in the Trio thread."""
        self._backend._call_soon(callback)

    async def cancel(self) -> None:
        """Drop the events not yet read; the reader then sees a cancelled end."""
        if not self._finished and self._events:
            self._events = [_CANCELLED]
        self._finished = True
        await trio.lowlevel.checkpoint()

    def release(self) -> None:
        """Nothing to release: the turn never waits for its reader."""


class _NullSession:
    """An ``AgentSession`` that answers every command inside :meth:`submit`."""

    __slots__ = ("_backend", "_ended", "_history", "_last_response", "_turns", "conversation_id")

    def __init__(self, backend: NullBackend, conversation_id: str) -> None:
        self._backend = backend
        self.conversation_id = conversation_id
        self._history: list[Message] = []
        self._turns = 0
        self._last_response: str | None = None
        self._ended = False

    def submit(self, command: Command[Any]) -> None:
        """Answer ``command`` now (see :meth:`AgentSession.submit`)."""
        spec = command.spec
        value: Any = None
        if spec is cmds.IS_IDLE:
            value = True
        elif spec is cmds.CHAT:
            value = _NullTurn(self._backend, self._play(command.args[0]))
        elif spec is cmds.SEND:
            self._play(command.args[0])
        elif spec is cmds.HISTORY:
            value = list(self._history)
        elif spec is cmds.TURN_COUNT:
            value = self._turns
        elif spec is cmds.TOTAL_USAGE or spec is cmds.LAST_TURN_USAGE:
            value = _NO_USAGE
        elif spec is cmds.COMPACTION_INDICES:
            value = []
        elif spec is cmds.LAST_RESPONSE:
            value = self._last_response
        elif spec is cmds.CLEAR_HISTORY:
            self._history.clear()
            self._last_response = None
        # wait_for_idle and cancel: every turn has already ended, so None.
        command.complete(outcome.Value(value))

    def _play(self, parts: Sequence[Part]) -> list[ChatEvent]:
        """Record one turn in the conversation and return its events."""
        backend = self._backend
        self._history.append(Message("user", content_text(parts)))
        self._history.append(Message("assistant", backend.reply))
        self._turns += 1
        self._last_response = backend.reply
        events: list[ChatEvent] = list(backend._deltas)
        events.append(_END)
        return events

    async def end(self, how: str) -> None:
        """Forget the agent; ``"delete"`` also drops its conversation."""
        self._backend._end(self, keep=how != "delete")
        await trio.lowlevel.checkpoint()

    def try_shutdown(self) -> None:
        """Forget the agent, keeping its conversation."""
        self._backend._end(self, keep=True)


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
        self._saved: dict[str, _NullSession] = {}
        self._live = 0
        self._conversations = 0
        self._soon: list[Callable[[BaseException | None], object]] = []
        self._token: trio.lowlevel.TrioToken | None = None

    @property
    def agents(self) -> int:
        """Agents alive now."""
        return self._live

    async def start(self, nursery: trio.Nursery) -> None:
        """Nothing to start."""
        self._token = trio.lowlevel.current_trio_token()
        await trio.lowlevel.checkpoint()

    async def create_agent(
        self, agent_id: str, config: AgentConfig, services: AgentServices
    ) -> _NullSession:
        """Create an agent, or resume the conversation ``config.conversation_id``."""
        await trio.lowlevel.checkpoint()
        conversation_id = config.conversation_id
        if conversation_id is not None:
            session = self._saved.pop(conversation_id, None)
            if session is None:
                raise AgentNotFound(f"no saved conversation {conversation_id!r} to resume")
            session._ended = False
        else:
            self._conversations += 1
            session = _NullSession(self, f"null-{self._conversations}")
        self._live += 1
        return session

    async def aclose(self) -> None:
        """Nothing to stop."""
        await trio.lowlevel.checkpoint()

    def _end(self, session: _NullSession, *, keep: bool) -> None:
        if session._ended:
            return
        session._ended = True
        self._live -= 1
        if keep:
            self._saved[session.conversation_id] = session

    def _call_soon(self, callback: Callable[[BaseException | None], object]) -> None:
        # One wake-up of the Trio run serves every turn that ended meanwhile.
        if not self._soon:
            token = self._token or trio.lowlevel.current_trio_token()
            token.run_sync_soon(self._run_soon)
        self._soon.append(callback)

    def _run_soon(self) -> None:
        callbacks, self._soon = self._soon, []
        for callback in callbacks:
            callback(None)
