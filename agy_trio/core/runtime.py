"""The runtime: what :func:`agy_trio.open_runtime` gives, put together from rooms of one concern.

- :mod:`~agy_trio.core.command_loop`: the command channel, the dispatch loop
  that routes each command, and the translation of every answer;
- :mod:`~agy_trio.core.lifecycle`: creating and ending agents, handing
  messages over (after quota backoff and pacing), following turns;
- :mod:`~agy_trio.core.wakeups` and :mod:`~agy_trio.core.shutdown`;
- :mod:`~agy_trio.core.threads`: reaching the runtime from other threads;
- :mod:`~agy_trio.core.runtime_state`: the state they share.

One watchdog (:mod:`~agy_trio.core.deadlines`) enforces every time limit:
``operation_timeout`` per command and ``chat_timeout`` per turn. Cancelling a
command (its caller gave up, its time ran out, or the runtime is shutting
down) goes through the command's canceller, which reaches the asyncio task and
the SDK's own cancel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, final

import trio
import trio.lowlevel

from agy_trio.core import commands as cmds
from agy_trio.core.agent import AgentHandle
from agy_trio.core.backend import Backend
from agy_trio.core.command_loop import CommandLoop
from agy_trio.core.commands import Command
from agy_trio.core.construction import NoPublicConstructor
from agy_trio.core.contract import HostedAgent, check_contract
from agy_trio.core.deadlines import Deadlines
from agy_trio.core.lifecycle import AgentLifecycle
from agy_trio.core.observe import Observer
from agy_trio.core.policy_types import Approver
from agy_trio.core.quota import QuotaRegistry
from agy_trio.core.runtime_state import RunningTurn, RuntimeState
from agy_trio.core.settings import AgentConfig, RuntimeConfig
from agy_trio.core.shutdown import shut_down
from agy_trio.core.statistics import CommandStatistics, RuntimeStatistics
from agy_trio.core.threads import run_from_thread
from agy_trio.core.wakeups import Wakeups
from agy_trio.errors import AgentNotFound, ConfigError

__all__ = ["CommandStatistics", "Runtime", "RuntimeStatistics"]

T = TypeVar("T")

# Frozen, so one instance serves every agent created without a config (building
# an AgentConfig runs its validators, which is not free).
_DEFAULT_AGENT_CONFIG = AgentConfig()


@final
class Runtime(metaclass=NoPublicConstructor):
    """A running agy_trio runtime. Obtain one from :func:`agy_trio.open_runtime`.

    Attributes:
        config: The runtime's configuration.
        backend: The backend agents live in.
        quota: Quota backoff per API key.
    """

    def __init__(self, config: RuntimeConfig, backend: Backend, nursery: trio.Nursery) -> None:
        self.config = config
        self.backend = backend
        deadlines: Deadlines[Command[Any] | RunningTurn] = Deadlines(self._expire)
        self._state = state = RuntimeState(config, backend, nursery, deadlines)
        self.quota: QuotaRegistry = state.quota
        wakeups = Wakeups()
        self._loop = CommandLoop(state, AgentLifecycle(state, wakeups, self), wakeups)
        # The handles' way in (see agy_trio.core.agent.CommandSink), bound once.
        self._submit = self._loop.submit
        self._submit_nowait = self._loop.submit_nowait

    # ------------------------------------------------------------------ public API

    async def create_agent(self, config: AgentConfig | None = None) -> AgentHandle:
        """Create an agent and return a handle on it.

        Args:
            config: The agent's configuration (defaults to ``AgentConfig()``).

        Raises:
            ConfigError: ``config`` is not an AgentConfig, or the backend cannot
                serve it (for example no endpoint is configured).
            RuntimeClosed: The runtime is shutting down.
        """
        if config is None:
            config = _DEFAULT_AGENT_CONFIG
        if not isinstance(config, AgentConfig):
            await trio.lowlevel.checkpoint()
            raise ConfigError(f"expected an AgentConfig, got {type(config).__name__}")
        agent_id: str = await self._submit(Command(cmds.CREATE_AGENT, "", (config,)))
        return self._state.agents[agent_id].handle

    @asynccontextmanager
    async def open_agent(self, config: AgentConfig | None = None) -> AsyncIterator[AgentHandle]:
        """Create an agent for the duration of an ``async with`` block, then shut it down."""
        handle = await self.create_agent(config)
        async with handle:
            yield handle

    def agent(self, agent_id: str) -> AgentHandle:
        """The handle of a live agent.

        Raises:
            AgentNotFound: No live agent has this id.
        """
        record = self._state.agents.get(agent_id)
        if record is None:
            raise AgentNotFound(f"no agent {agent_id!r}")
        return record.handle

    @property
    def agents(self) -> list[AgentHandle]:
        """Handles of every live agent."""
        return [r.handle for r in self._state.agents.values()]

    @property
    def closed(self) -> bool:
        """Whether the runtime has stopped taking commands."""
        return self._state.closing

    @property
    def trio_token(self) -> trio.lowlevel.TrioToken:
        """The token of the Trio run the runtime lives in (for ``trio.from_thread``)."""
        return self._state.token

    def from_thread(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """From another thread: run ``fn(*args)`` in the runtime's Trio run and return its result.

        The supported way for threads (and other event loops on other threads)
        to use a runtime, for example
        ``rt.from_thread(agent.history)`` or ``rt.from_thread(agent.chat, "hi")``.
        Blocks the calling thread until the call is over.

        Raises:
            WrongThread: Called from Trio code: in the runtime's own run (await
                the call instead), or in another run, whose thread this call
                would block (use ``trio.to_thread.run_sync(rt.from_thread, ...)``).
            RuntimeClosed: The runtime's Trio run has finished.
        """
        state = self._state
        return run_from_thread(state.token, state.thread, fn, *args)

    def set_observer(self, observer: Observer | None) -> None:
        """Install (or remove, with None) what the runtime reports its commands and turns to.

        See :mod:`agy_trio.core.observe`; :func:`agy_trio.tracing.instrument`
        installs one that records OpenTelemetry spans.
        """
        self._state.observer = observer

    def set_approver(self, approver: Approver | None) -> None:
        """Install (or remove, with None) who answers ``ask_user`` rules without a handler.

        :mod:`agy_trio.serve` installs one while it serves: such a tool call then
        parks as an approval that a client answers over HTTP. Without one,
        these calls are denied (nobody to ask). See :data:`agy_trio.policy.Approver`.
        """
        self._state.approver = approver

    @property
    def approver(self) -> Approver | None:
        """Who answers ``ask_user`` rules without a handler now, if anyone."""
        return self._state.approver

    def statistics(self) -> RuntimeStatistics:
        """A snapshot of the runtime's state and counters."""
        state, loop = self._state, self._loop
        return RuntimeStatistics(
            backend=self.backend.name,
            agents=len(state.agents),
            in_flight=len(state.running),
            active_turns=len(state.turns),
            queued=loop.queued,
            completed=loop.completed,
            failed=loop.failed,
            closed=state.closing,
            commands=loop.command_statistics(),
            turns=state.turns_started,
            quota_hits=state.quota_hits,
            stream_events=state.counters.events,
        )

    def _services(self) -> tuple[Callable[[], Awaitable[None]], ...]:
        """The runtime's own long-running tasks: the dispatch loop and the watchdog."""
        return (self._loop.dispatch_loop, self._state.deadlines.watch)

    def _expire(self, item: Command[Any] | RunningTurn) -> None:
        self._loop.expire(item)

    # ------------------------------------------------------------------ shutdown

    async def aclose(self) -> None:
        """Shut the runtime down now (leaving ``open_runtime``'s block does this too).

        New commands get :class:`RuntimeClosed`; work in flight gets
        ``shutdown_timeout`` to finish, then is cancelled and its callers get
        :class:`RuntimeClosed`; every agent is shut down. Idempotent.
        """
        if self._state.closing:
            await trio.lowlevel.checkpoint()
            return
        await shut_down(self._state, self._loop)

    async def shutdown(self) -> None:
        """Synonym of :meth:`aclose`, kept for the reference design's command name."""
        await self.aclose()


# A command without its sending method or its agent method fails here, at import.
check_contract(cmds.COMMANDS, (AgentHandle, Runtime), HostedAgent)
