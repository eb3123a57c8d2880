"""The one Trio face of every backend's agents: :class:`HostedSession`, :class:`HostedTurnStream`.

Every backend keeps each agent as a :class:`~agy_trio.core.contract.HostedAgent`
living where its host runs coroutines (an asyncio loop on a thread of its own,
the loop Trio is a guest of, or inline in Trio for the null backend).
:class:`HostedSession` answers the runtime's commands on top of it: a command
runs ``spec.call(agent, *args)`` (the agent's coroutine of the command's name)
on the host, and the agent's answer completes the command in the Trio thread,
with the backend's own errors classified into agy_trio's hierarchy on the way.
No Trio task is involved. A chat's answer is a :class:`HostedTurnStream`, fed
through a :class:`~agy_trio.adapters.stream_bridge.StreamBridge`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol

import attrs
import outcome
import trio

from agy_trio.adapters.stream_bridge import StreamBridge
from agy_trio.core import commands as cmds
from agy_trio.core.commands import Command, WorkCancelled
from agy_trio.core.contract import Ending, HostedAgent, TurnHandle
from agy_trio.core.events import ChatEvent, StopReason, TurnEnd, Usage
from agy_trio.errors import AgyError, BackendError, ChannelClosed

__all__ = ["AsyncioAgent", "Canceller", "CommandHost", "HostedSession", "HostedTurnStream"]

AsyncioAgent = HostedAgent
"""The earlier name of :class:`~agy_trio.core.contract.HostedAgent`."""

Canceller = Callable[[], object]
"""Stops a call started on a host (its outcome is then ``WorkCancelled``, unless it finished)."""


class CommandHost(Protocol):
    """What a session needs from the place its agent's coroutines run."""

    @property
    def alive(self) -> bool:
        """Whether the host accepts work."""

    def submit(
        self,
        fn: Callable[..., Coroutine[Any, Any, Any]],
        args: tuple[Any, ...],
        on_done: Callable[[Any, outcome.Outcome[Any]], object],
        arg: Any,
    ) -> Canceller:
        """From Trio: start ``fn(*args)``; ``on_done(arg, outcome)`` gets it in Trio.

        Returns the call's canceller.
        """

    async def run(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
        """From Trio: run ``fn(*args)`` on the host and return its result."""

    def run_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start ``fn(*args)`` on the host without waiting."""

    def wake_trio(self, fn: Callable[..., object], *args: Any) -> None:
        """From the host: run a sync callback in Trio."""


class HostedTurnStream:
    """A ``TurnStream``: events arrive through a bridge; cancel crosses to the host."""

    __slots__ = ("_bridge", "_session", "command", "turn")

    def __init__(self, session: HostedSession, bridge: StreamBridge[ChatEvent]) -> None:
        self._session = session
        self._bridge = bridge
        # The backend's handle on the turn, once it started.
        self.turn: TurnHandle | None = None
        # Until the turn has started: the chat command it answers.
        self.command: Command[Any] | None = None

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
        """Stop the turn through the backend's own cancel; return once the stream ended."""
        bridge = self._bridge
        if bridge.finished or self.turn is None:
            await trio.lowlevel.checkpoint()
            return
        session = self._session
        try:
            await session.host.run(session.agent.cancel_turns, [self.turn])
        except ChannelClosed as exc:
            bridge.finish(ChannelClosed(f"the host stopped during cancel: {exc}"))
            return
        except AgyError as exc:
            bridge.finish(ChannelClosed(f"the turn could not be cancelled: {exc}"))
            return
        except Exception as exc:
            bridge.finish(session.classify(exc))
            return
        if not bridge.finished:
            # The backend stopped the turn; its producer ends the stream soon after.
            ended = trio.Event()
            bridge.add_done_callback(lambda _error: ended.set())
            await ended.wait()


@attrs.define(eq=False)
class HostedSession:
    """The ``AgentSession`` of every backend: commands run as the agent's coroutines on its host.

    Args:
        agent: The agent, as the backend keeps it.
        host: Where the agent's coroutines run.
        classify: Maps an exception raised there to agy_trio's hierarchy.
        high_water: Events buffered per turn before the producer waits.
        batch_max: Most events handed to Trio in one batch.
        on_end: Called in Trio once the agent ended (``how`` it ended), for the
            backend's own bookkeeping.
    """

    agent: HostedAgent
    host: CommandHost
    classify: Callable[[BaseException], BaseException] = attrs.field(kw_only=True)
    _high_water: int = attrs.field(kw_only=True)
    _batch_max: int = attrs.field(kw_only=True)
    _on_end: Callable[[Ending], object] | None = attrs.field(kw_only=True, default=None)

    @property
    def conversation_id(self) -> str:
        """The id under which the backend keeps this conversation."""
        return self.agent.conversation_id

    def submit(self, command: Command[Any]) -> None:
        """Run ``spec.call(agent, *args)`` on the host; its outcome answers the command."""
        spec = command.spec
        call = spec.call
        try:
            if call is None:
                raise BackendError(f"{spec.name} is not a command a backend answers")
            if spec is cmds.CHAT:
                # The one command answered with a stream: the session makes its sink.
                bridge: StreamBridge[ChatEvent] = StreamBridge(
                    trio.lowlevel.current_trio_token(),
                    high_water=self._high_water,
                    batch_max=self._batch_max,
                    host=self.host,
                )
                stream = HostedTurnStream(self, bridge)
                stream.command = command
                started = self.host.submit(
                    call, (self.agent, command.args[0], bridge), _chat_started, stream
                )
            else:
                started = self.host.submit(call, (self.agent, *command.args), self.answer, command)
        except AgyError as exc:
            command.complete(outcome.Error(exc))
            return
        command.set_canceller(started)

    def answer(self, command: Command[Any], result: outcome.Outcome[Any]) -> None:
        """Complete ``command`` with the agent's outcome, its error classified."""
        if type(result) is outcome.Error and type(result.error) is not WorkCancelled:
            result = outcome.Error(self.classify(result.error))
        command.complete(result)

    async def end(self, how: Ending) -> None:
        """Stop the agent (see :meth:`AgentSession.end`).

        An agent whose host is gone is gone with it: ending it succeeds,
        except ``"delete"``, which raises ChannelClosed since nothing could
        remove what the backend kept for it.
        """
        try:
            if self.host.alive or how == "delete":
                await self.host.run(self.agent.end, how)
            else:
                await trio.lowlevel.checkpoint()
        except ChannelClosed:
            if how == "delete":
                raise
        except Exception as exc:
            raise self.classify(exc) from exc
        finally:
            if self._on_end is not None:
                self._on_end(how)

    def try_shutdown(self) -> None:
        """Start shutting the agent down without waiting; never raises.

        ``on_end`` runs in Trio once the agent has ended (at once if the host is gone).
        """
        try:
            self.host.run_soon(_end_then_report, self, "shutdown")
        except Exception:  # the host is gone, and the agent with it
            if self._on_end is not None:
                self._on_end("shutdown")


async def _end_then_report(session: HostedSession, how: Ending) -> None:
    """On the host: end the agent, then run the session's ``on_end`` in Trio."""
    try:
        await session.agent.end(how)
    finally:
        if session._on_end is not None:
            session.host.wake_trio(session._on_end, how)


def _chat_started(stream: HostedTurnStream, result: outcome.Outcome[Any]) -> None:
    """A chat's turn started (or failed to): answer its command with the stream."""
    command = stream.command
    assert command is not None
    stream.command = None
    if type(result) is outcome.Value:
        stream.turn = result.value
        result = outcome.Value(stream)
    stream._session.answer(command, result)
