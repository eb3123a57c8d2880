"""The contract between the runtime and a backend.

The runtime (pure Trio) hands a backend *commands*: values that say what to do
(:class:`~agy_trio.core.commands.Command`). An agent's backend session answers
each command exactly once, by calling ``command.complete(outcome)`` in the Trio
thread; how it gets there (an asyncio host thread, guest mode, a remote
worker) is the backend's business. The runtime never sees asyncio.

Data flows one way: runtime -> backend -> asyncio host -> SDK; replies, stream
events and tool calls come back the same road.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import trio

from agy_trio.core.commands import WorkCancelled
from agy_trio.core.turn_stream import TurnStream

if TYPE_CHECKING:
    from agy_trio.core.commands import Command
    from agy_trio.core.contract import Ending
    from agy_trio.core.settings import AgentConfig
    from agy_trio.core.tools import Tool

__all__ = ["AgentServices", "AgentSession", "Backend", "TurnStream", "WorkCancelled"]


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

    async def authorize(self, name: str, arguments: Mapping[str, Any], *, reason: str = "") -> bool:
        """Ask the policies whether a tool the backend runs itself may run (fail closed).

        ``reason`` is why the backend asks (e.g. a safety assessment), handed
        on to ``ask_user`` handlers.
        """

    @property
    def observes_turns(self) -> bool:
        """Whether :meth:`turn_started` / :meth:`turn_ended` do anything at all.

        Each is a round trip into Trio; a backend skips both when this is False.
        """

    async def turn_started(self) -> None:
        """Run the agent's turn-start hooks."""

    async def turn_ended(self) -> None:
        """Run the agent's turn-end hooks."""


class AgentSession(Protocol):
    """One agent living in a backend. Commands may overlap: the runtime serialises nothing."""

    @property
    def conversation_id(self) -> str:
        """The id under which the backend keeps this conversation (used to resume)."""

    def submit(self, command: Command[Any]) -> None:
        """Start answering ``command``; called in the Trio thread, must not block.

        The session answers every command of the set whose route is
        :attr:`~agy_trio.core.commands.Route.SESSION`, plus ``chat`` (its result
        is a :class:`TurnStream` once the turn holds the agent's turn slot),
        ``send`` (a turn nobody reads) and ``cancel`` (stop the active turn and
        any queued behind it). It completes the command exactly once with
        ``command.complete(outcome)`` in the Trio thread, installs a canceller
        with ``command.set_canceller`` while the work runs, and answers
        ``WorkCancelled`` when that canceller stopped it.
        """

    async def end(self, how: Ending) -> None:
        """Stop the agent.

        ``how`` is ``"shutdown"`` (release it), ``"disconnect"`` (keep its state
        to resume by conversation id) or ``"delete"`` (drop every piece of state
        the backend kept for it).
        """

    def try_shutdown(self) -> None:
        """Start shutting the agent down without waiting; never raises."""


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
