"""The contract between the runtime and a backend.

The runtime (pure Trio) drives a :class:`Backend`. A backend turns each call into
work on its own asyncio host thread(s) and answers in Trio. Every method here is
a *Trio* coroutine: adapters do the crossing, the runtime never sees asyncio.

Data flows one way: runtime -> backend -> asyncio host -> SDK; replies, stream
events and tool calls come back the same road.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import trio

from agy_trio.core.content import Part
from agy_trio.core.events import ChatEvent, Message, Usage

if TYPE_CHECKING:
    from agy_trio.core.config import AgentConfig
    from agy_trio.core.tools import Tool

__all__ = ["AgentServices", "AgentSession", "Backend", "TurnStream"]


class AgentServices(Protocol):
    """What the runtime offers a backend for one agent; every method runs in Trio.

    A backend calls these from its asyncio thread through its host's
    call-into-Trio bridge, so tools, policy handlers and hooks may be Trio code.
    """

    @property
    def agent_id(self) -> str:
        """The runtime's id of the agent."""

    @property
    def tools(self) -> Sequence[Tool]:
        """The agent's custom tools, with their JSON schemas."""

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> Any:
        """Check policies, run hooks, then run the named tool and return its result.

        Raises:
            PolicyDenied: A rule or handler refused the call.
        """

    async def authorize(self, name: str, arguments: Mapping[str, Any]) -> bool:
        """Ask the policies whether a tool the backend runs itself may run (fail closed)."""

    @property
    def observes_turns(self) -> bool:
        """Whether :meth:`turn_started` / :meth:`turn_ended` do anything at all.

        Each is a round trip into Trio; a backend skips both when this is False.
        """

    async def turn_started(self) -> None:
        """Run the agent's turn-start hooks."""

    async def turn_ended(self) -> None:
        """Run the agent's turn-end hooks."""


class TurnStream(Protocol):
    """The events of one turn, delivered to Trio in batches.

    Batching is what keeps streaming cheap across the thread boundary: the
    producer wakes Trio once per batch, not once per chunk, and stops producing
    when the consumer falls behind (backpressure).
    """

    async def receive_batch(self) -> Sequence[ChatEvent]:
        """Wait for the next non-empty batch of events.

        Raises:
            trio.EndOfChannel: The turn is over and every event was delivered.
            AgyError: The turn failed; the subclass says how.
        """

    async def wait_finished(self) -> BaseException | None:
        """Wait until the backend has produced the turn's last event.

        Returns:
            The error that ended the turn, or None if it ended normally.
        """

    async def cancel(self) -> None:
        """Stop the turn at the backend (its asyncio task and the SDK's own cancel).

        Idempotent; returns once the backend has stopped producing.
        """


class AgentSession(Protocol):
    """One agent living in a backend. The runtime serialises nothing: methods may overlap."""

    @property
    def conversation_id(self) -> str:
        """The id under which the backend keeps this conversation (used to resume)."""

    async def chat(self, content: Sequence[Part]) -> TurnStream:
        """Start a turn and return its event stream as soon as the turn has started."""

    async def send(self, content: Sequence[Part]) -> None:
        """Queue a message for the agent without waiting for the answer."""

    async def cancel(self) -> None:
        """Stop the active turn, if any."""

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
        """History indices at which the backend compacted the conversation."""

    async def last_response(self) -> str | None:
        """The text of the last answer, if there was one."""

    async def delete(self) -> None:
        """Stop the agent and remove every piece of state the backend kept for it."""

    async def disconnect(self) -> None:
        """Stop the agent but keep its state so it can be resumed by conversation id."""

    async def shutdown(self) -> None:
        """Stop the agent and release its resources."""

    def try_shutdown(self) -> None:
        """Start shutting the agent down without waiting; never raises. May be called from Trio."""


class Backend(Protocol):
    """A source of agents: the real SDK, or the scripted double."""

    @property
    def name(self) -> str:
        """A short name for logs and statistics."""

    async def start(self, nursery: trio.Nursery) -> None:
        """Bring the backend up (host threads, pools); service tasks go into ``nursery``."""

    async def create_agent(
        self, agent_id: str, config: AgentConfig, services: AgentServices
    ) -> AgentSession:
        """Create (or resume, when ``config.conversation_id`` is set) an agent."""

    async def aclose(self) -> None:
        """Stop every agent and host thread; report a thread that crashed or hung.

        Raises:
            ChannelClosed: A host thread crashed.
            OperationTimeout: A host thread did not exit in time.
        """
