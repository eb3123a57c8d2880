"""The Trio face of an agent whose state lives on an asyncio host.

Both backends keep each agent as an asyncio-side object (:class:`AsyncioAgent`)
living on a host loop. :class:`HostedSession` answers the runtime's commands
on top of it: a command named ``history`` runs the agent's ``history()`` on the
loop, and the agent's answer completes the command in the Trio thread, with
the backend's own errors classified into agy_trio's hierarchy on the way. No
Trio task is involved.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

import outcome
import trio

from agy_trio.adapters.host_base import AsyncioHost
from agy_trio.adapters.stream_bridge import StreamBridge
from agy_trio.core import commands as cmds
from agy_trio.core.commands import Command, WorkCancelled
from agy_trio.core.content import Part
from agy_trio.core.events import ChatEvent, Message, StopReason, TurnEnd, Usage
from agy_trio.errors import ChannelClosed

__all__ = ["AsyncioAgent", "HostedSession", "HostedTurnStream"]


class AsyncioAgent(Protocol):
    """One agent as a backend keeps it on its host loop. Coroutines run on that loop.

    Besides the two turn methods, it implements every command the runtime
    routes to the backend (``CommandSpec.route is Route.SESSION``) as a
    coroutine method of the same name.
    """

    @property
    def host(self) -> AsyncioHost:
        """The host whose loop the agent lives on."""

    @property
    def conversation_id(self) -> str:
        """The id under which the conversation is kept."""

    async def start_turn(
        self, content: Sequence[Part], bridge: StreamBridge[ChatEvent] | None
    ) -> Any:
        """Start a turn feeding ``bridge`` (None: nobody reads it); return a turn handle.

        Returns once the turn holds the agent's turn slot (the prompt is then
        part of the conversation); if cancelled before that, the turn never ran.
        """

    async def cancel_turns(self, turns: Sequence[Any] | None) -> None:
        """The backend's own cancel: stop ``turns`` (None: all) and wait until they are over."""

    async def wait_for_idle(self) -> None:
        """Return once no turn is active."""

    async def is_idle(self) -> bool:
        """Whether no turn is active."""

    async def history(self) -> list[Message]:
        """The conversation so far."""

    async def turn_count(self) -> int:
        """How many turns completed."""

    async def total_usage(self) -> Usage:
        """Token usage summed over all turns."""

    async def last_turn_usage(self) -> Usage:
        """Token usage of the most recent turn."""

    async def clear_history(self) -> None:
        """Forget the conversation so far."""

    async def compaction_indices(self) -> list[int]:
        """History indices at which the conversation was compacted."""

    async def last_response(self) -> str | None:
        """The text of the last answer."""


class HostedTurnStream:
    """A ``TurnStream``: events arrive through a bridge; cancel crosses to the host."""

    __slots__ = ("_agent", "_bridge", "command", "session", "turn")

    def __init__(self, agent: AsyncioAgent, bridge: StreamBridge[ChatEvent]) -> None:
        self._agent = agent
        self._bridge = bridge
        self.turn: Any = None
        # Until the turn has started: the chat command it answers, and its session.
        self.command: Command[Any] | None = None
        self.session: HostedSession | None = None

    async def receive_batch(self) -> Sequence[ChatEvent]:
        """The next batch of events (see :meth:`StreamBridge.receive_batch`)."""
        return await self._bridge.receive_batch()

    @property
    def usage(self) -> Usage | None:
        """The turn's usage from its final :class:`TurnEnd`, once it ended normally."""
        final = self._bridge.final
        if type(final) is TurnEnd and final.stop_reason is not StopReason.CANCELLED:
            return final.usage
        return None

    def add_done_callback(self, callback: Callable[[BaseException | None], object]) -> None:
        """Call ``callback(error)`` in Trio once the turn produced its last event."""
        self._bridge.add_done_callback(callback)

    def release(self) -> None:
        """Let the turn run to its end without a reader."""
        self._bridge.release()

    async def cancel(self) -> None:
        """Stop the turn through the backend's own cancel; idempotent."""
        if self._bridge.finished or self.turn is None:
            await trio.lowlevel.checkpoint()
            return
        try:
            await self._agent.host.run(self._agent.cancel_turns, [self.turn])
        except ChannelClosed as exc:
            self._bridge.finish(ChannelClosed(f"the host stopped during cancel: {exc}"))


class HostedSession:
    """An ``AgentSession`` over an :class:`AsyncioAgent`.

    Backends subclass it for how an agent ends (:meth:`end`, :meth:`try_shutdown`).

    Args:
        agent: The asyncio side of the agent.
        classify: Maps an exception raised on the host to agy_trio's hierarchy.
        high_water: Events buffered per turn before the producer waits.
        batch_max: Most events handed to Trio in one batch.
    """

    __slots__ = ("_agent", "_batch_max", "_classify", "_high_water", "_host")

    def __init__(
        self,
        agent: AsyncioAgent,
        *,
        classify: Callable[[BaseException], BaseException],
        high_water: int,
        batch_max: int,
    ) -> None:
        self._agent = agent
        self._host = agent.host
        self._classify = classify
        self._high_water = high_water
        self._batch_max = batch_max

    @property
    def conversation_id(self) -> str:
        """The id under which the backend keeps this conversation."""
        return self._agent.conversation_id

    def submit(self, command: Command[Any]) -> None:
        """Run the command's coroutine on the host; its outcome answers the command."""
        spec = command.spec
        agent = self._agent
        fn: Callable[..., Coroutine[Any, Any, Any]]
        args: tuple[Any, ...]
        if spec is cmds.CHAT:
            bridge: StreamBridge[ChatEvent] = StreamBridge(
                trio.lowlevel.current_trio_token(),
                high_water=self._high_water,
                batch_max=self._batch_max,
                host=self._host,
            )
            stream = HostedTurnStream(agent, bridge)
            stream.command = command
            stream.session = self
            call = self._host.submit(
                agent.start_turn, (command.args[0], bridge), _chat_started, stream
            )
        else:
            if spec is cmds.SEND:
                fn, args = agent.start_turn, (command.args[0], None)
            elif spec is cmds.CANCEL:
                fn, args = agent.cancel_turns, (None,)
            else:
                fn, args = getattr(agent, spec.name), command.args
            call = self._host.submit(fn, args, self._answer, command)
        command.set_canceller(call)

    def _answer(self, command: Command[Any], result: outcome.Outcome[Any]) -> None:
        if type(result) is outcome.Error and type(result.error) is not WorkCancelled:
            result = outcome.Error(self._classify(result.error))
        elif type(result) is outcome.Value and command.spec is cmds.SEND:
            result = outcome.Value(None)  # the turn handle stays with the backend
        command.complete(result)

    async def end(self, how: str) -> None:
        """Stop the agent (see :meth:`AgentSession.end`); backends implement it."""
        raise NotImplementedError

    def try_shutdown(self) -> None:
        """Start shutting the agent down without waiting; backends implement it."""
        raise NotImplementedError


def _chat_started(stream: HostedTurnStream, result: outcome.Outcome[Any]) -> None:
    """A chat's turn started (or failed to): answer its command with the stream."""
    command, session = stream.command, stream.session
    assert command is not None and session is not None
    stream.command = stream.session = None
    if type(result) is outcome.Value:
        stream.turn = result.value
        result = outcome.Value(stream)
    session._answer(command, result)
