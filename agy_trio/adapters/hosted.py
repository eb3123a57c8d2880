"""The Trio face of an agent whose state lives on an asyncio host.

Both backends keep each agent as an asyncio-side object (:class:`AsyncioAgent`)
living on a host loop. :class:`HostedSession` and :class:`HostedTurnStream`
implement the runtime's ``AgentSession`` and ``TurnStream`` protocols on top of
it: every method crosses to the host loop, runs there, and comes back, with
the backend's own errors classified into agy_trio's hierarchy on the way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import trio

from agy_trio.adapters.aio_host import AsyncioHost
from agy_trio.adapters.stream_bridge import StreamBridge
from agy_trio.core.content import Part
from agy_trio.core.errors import ChannelClosed
from agy_trio.core.events import ChatEvent, Message, Usage

__all__ = ["AsyncioAgent", "HostedSession", "HostedTurnStream"]


class AsyncioAgent(Protocol):
    """One agent as a backend keeps it on its host loop. Coroutines run on that loop."""

    @property
    def host(self) -> AsyncioHost:
        """The host whose loop the agent lives on."""

    @property
    def conversation_id(self) -> str:
        """The id under which the conversation is kept."""

    async def start_turn(
        self, content: Sequence[Part], bridge: StreamBridge[ChatEvent] | None
    ) -> Any:
        """Start a turn feeding ``bridge`` (None: nobody reads it); return a turn handle."""

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

    def __init__(self, agent: AsyncioAgent, bridge: StreamBridge[ChatEvent]) -> None:
        self._agent = agent
        self._bridge = bridge
        self.turn: Any = None

    async def receive_batch(self) -> Sequence[ChatEvent]:
        """The next batch of events (see :meth:`StreamBridge.receive_batch`)."""
        return await self._bridge.receive_batch()

    async def wait_finished(self) -> BaseException | None:
        """Wait until the turn produced its last event; return its error, if any."""
        return await self._bridge.wait_finished()

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

    Backends subclass it for how an agent ends (``delete``, ``disconnect``,
    ``shutdown``, ``try_shutdown``) and, where they say more, for docstrings.

    Args:
        agent: The asyncio side of the agent.
        classify: Maps an exception raised on the host to agy_trio's hierarchy.
        high_water: Events buffered per turn before the producer waits.
        batch_max: Most events handed to Trio in one batch.
    """

    def __init__(
        self,
        agent: AsyncioAgent,
        *,
        classify: Callable[[BaseException], BaseException],
        high_water: int,
        batch_max: int,
    ) -> None:
        self._agent = agent
        self._run = agent.host.run
        self._classify = classify
        self._high_water = high_water
        self._batch_max = batch_max

    @property
    def conversation_id(self) -> str:
        """The id under which the backend keeps this conversation."""
        return self._agent.conversation_id

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await self._run(fn, *args)
        except Exception as exc:
            raise self._classify(exc) from exc

    async def chat(self, content: Sequence[Part]) -> HostedTurnStream:
        """Start a turn; return its stream once the turn holds the agent's turn slot."""
        bridge: StreamBridge[ChatEvent] = StreamBridge(
            trio.lowlevel.current_trio_token(),
            high_water=self._high_water,
            batch_max=self._batch_max,
        )
        stream = HostedTurnStream(self._agent, bridge)
        stream.turn = await self._call(self._agent.start_turn, content, bridge)
        return stream

    async def send(self, content: Sequence[Part]) -> None:
        """Start a turn nobody reads; it plays in the background."""
        await self._call(self._agent.start_turn, content, None)

    async def cancel(self) -> None:
        """Stop the active turn and any turn queued behind it."""
        await self._call(self._agent.cancel_turns, None)

    async def wait_for_idle(self) -> None:
        """Return once no turn is active."""
        await self._call(self._agent.wait_for_idle)

    async def is_idle(self) -> bool:
        """Whether no turn is active."""
        result: bool = await self._call(self._agent.is_idle)
        return result

    async def history(self) -> list[Message]:
        """The conversation so far."""
        result: list[Message] = await self._call(self._agent.history)
        return result

    async def turn_count(self) -> int:
        """How many turns completed."""
        result: int = await self._call(self._agent.turn_count)
        return result

    async def total_usage(self) -> Usage:
        """Token usage summed over all turns."""
        result: Usage = await self._call(self._agent.total_usage)
        return result

    async def last_turn_usage(self) -> Usage:
        """Token usage of the most recent turn."""
        result: Usage = await self._call(self._agent.last_turn_usage)
        return result

    async def clear_history(self) -> None:
        """Forget the conversation so far."""
        await self._call(self._agent.clear_history)

    async def compaction_indices(self) -> list[int]:
        """History indices at which the conversation was compacted."""
        result: list[int] = await self._call(self._agent.compaction_indices)
        return result

    async def last_response(self) -> str | None:
        """The text of the last answer, if there was one."""
        result: str | None = await self._call(self._agent.last_response)
        return result
