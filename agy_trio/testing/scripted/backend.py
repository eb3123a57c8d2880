"""The scripted backend and its Trio-facing session.

Every agent lives on a real asyncio host thread (:mod:`.engine`); its session
crosses to that loop and back for each command, exactly as the SDK backend's do.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import TYPE_CHECKING

import trio

from agy_trio import errors
from agy_trio.adapters.aio_host import AioHost, AsyncioHost
from agy_trio.adapters.hosted import HostedSession
from agy_trio.core.backend import AgentServices
from agy_trio.core.contract import Ending
from agy_trio.core.validation import positive_int
from agy_trio.testing.scripted.engine import ConversationState, ScriptedAgent
from agy_trio.testing.scripted.faults import classify_error
from agy_trio.testing.scripted.script import Script, TurnBook

if TYPE_CHECKING:
    from agy_trio.core.settings import AgentConfig

__all__ = ["ScriptedBackend", "ScriptedSession"]


class ScriptedSession(HostedSession):
    """AgentSession of a scripted agent: each command crosses to the host loop and back."""

    __slots__ = ()

    def __init__(
        self, backend: ScriptedBackend, agent: ScriptedAgent, high_water: int, batch_max: int
    ) -> None:
        def ended(how: Ending) -> None:
            # "delete" drops its conversation; the other endings keep it resumable.
            backend.forget(agent, keep_state=how != "delete")

        super().__init__(
            agent,
            agent.host,
            classify=classify_error,
            high_water=high_water,
            batch_max=batch_max,
            on_end=ended,
        )


class ScriptedBackend:
    """The deterministic asyncio-only backend.

    Args:
        script: The turns to play, in order, for *each* agent (every agent starts
            at the first turn); or a function building a turn from (agent id,
            prompt text, turn index). A plain string in the sequence is a turn
            that says it. Once a sequence runs out, or with no script, agents
            answer with :func:`~agy_trio.testing.scripted.default_turn`.
        stream_high_water: Events buffered per turn before the producer waits.
        stream_batch_max: Most events handed to Trio in one batch.
        host: Where the agents' asyncio code runs; a dedicated :class:`AioHost`
            thread by default, or a guest-mode host.
        shutdown_timeout: How long :meth:`aclose` waits for the host to stop.

    Attributes:
        cancel_calls: How many times the backend's own cancel was invoked.
    """

    name = "scripted"

    def __init__(
        self,
        script: Script = None,
        *,
        stream_high_water: int = 1024,
        stream_batch_max: int = 256,
        host: AsyncioHost | None = None,
        shutdown_timeout: float = 10.0,
    ) -> None:
        self._shutdown_timeout = shutdown_timeout
        self.turns = TurnBook(script)
        self._high_water = positive_int(stream_high_water, "stream_high_water")
        self._batch_max = positive_int(stream_batch_max, "stream_batch_max")
        self.host: AsyncioHost = host if host is not None else AioHost("agy-trio-scripted-host")
        self._agents: dict[str, ScriptedAgent] = {}
        self._saved: dict[str, ConversationState] = {}
        self._conversation_ids = itertools.count(1)
        self.cancel_calls = 0

    def _count_cancel(self) -> None:
        self.cancel_calls += 1

    def forget(self, agent: ScriptedAgent, *, keep_state: bool) -> None:
        """Drop a stopped agent; keep its conversation to resume unless told otherwise."""
        self._agents.pop(agent.agent_id, None)
        if keep_state:
            self._saved[agent.state.conversation_id] = agent.state
        else:
            self._saved.pop(agent.state.conversation_id, None)

    @property
    def saved_conversations(self) -> list[str]:
        """Conversation ids whose state is kept and can be resumed."""
        return list(self._saved)

    async def start(self, nursery: trio.Nursery) -> None:
        """Start the host thread."""
        await self.host.start(nursery)

    async def create_agent(
        self, agent_id: str, config: AgentConfig, services: AgentServices
    ) -> ScriptedSession:
        """Create an agent, or resume the saved conversation ``config.conversation_id``."""
        conversation_id = config.conversation_id
        if conversation_id is not None:
            state = self._saved.pop(conversation_id, None)
            if state is None:
                await trio.lowlevel.checkpoint()
                raise errors.AgentNotFound(f"no saved conversation {conversation_id!r} to resume")
        else:
            state = ConversationState(f"scripted-{next(self._conversation_ids)}")
        agent = ScriptedAgent(agent_id, state, services, self.host, self.turns, self._count_cancel)
        # Creation fails like every command once the host is gone.
        await trio.lowlevel.checkpoint()
        if not self.host.alive:
            raise errors.ChannelClosed(f"{self.host.name}: the asyncio host is not running")
        self._agents[agent_id] = agent
        return ScriptedSession(self, agent, self._high_water, self._batch_max)

    async def aclose(self) -> None:
        """Close every agent, then stop and join the host thread."""
        agents = list(self._agents.values())
        if agents and self.host.alive:

            async def close_all() -> None:
                await asyncio.gather(*(a.close() for a in agents), return_exceptions=True)

            # Bounded: a loop stuck in a blocking call must not hang shutdown.
            with (
                trio.move_on_after(self._shutdown_timeout),
                contextlib.suppress(errors.ChannelClosed),
            ):
                await self.host.run(close_all)
        for agent in agents:
            self.forget(agent, keep_state=True)
        await self.host.aclose(self._shutdown_timeout)
