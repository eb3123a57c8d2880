"""The backend itself: :class:`AntigravityBackend` and its :class:`AntigravityStatistics`.

The backend owns what its agents share: the asyncio host threads (each agent
lives on the one with the fewest agents), the pool of harness processes and
their registry, the per-backend temporary folder, and the one-time work done
before the first agent starts (:mod:`~agy_trio.adapters.antigravity.startup`
does it off the host loops). It creates each agent as an
:class:`~agy_trio.adapters.antigravity.agent.SdkAgent` on a host and hands
the runtime its :class:`~agy_trio.adapters.antigravity.session.AntigravitySession`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from agy_trio.adapters.aio_host import AioHost, HostStatistics
from agy_trio.adapters.antigravity.agent import SdkAgent
from agy_trio.adapters.antigravity.config import choose_endpoint, validate_conversation_id
from agy_trio.adapters.antigravity.context import AgentSettings, BackendContext, Counters
from agy_trio.adapters.antigravity.errors import classify_error, describe
from agy_trio.adapters.antigravity.harness import HarnessRegistry, sweep_orphans
from agy_trio.adapters.antigravity.harness_spec import SdkFacts
from agy_trio.adapters.antigravity.hibernation import DEFAULT_HIBERNATE_AFTER
from agy_trio.adapters.antigravity.pool import HarnessPool, PoolLimits
from agy_trio.adapters.antigravity.retry import RetryPolicy
from agy_trio.adapters.antigravity.sdk import load_sdk
from agy_trio.adapters.antigravity.session import AntigravitySession
from agy_trio.adapters.antigravity.startup import prepare, start_host
from agy_trio.adapters.antigravity.transient import ConnectionRetry
from agy_trio.core.backend import AgentServices
from agy_trio.errors import ChannelClosed, ConfigError, OperationTimeout

if TYPE_CHECKING:
    from agy_trio.core.settings import AgentConfig

__all__ = ["AntigravityBackend", "AntigravityStatistics"]

log = logging.getLogger("agy_trio.antigravity")

_DEFAULT_HOST_THREADS = 2  # RuntimeConfig().host_threads
# Chosen by measurement: see docs/performance.md, "The harness pool".
DEFAULT_AGENTS_PER_HARNESS = 250
DEFAULT_HARNESS_PROCESSES = 1
_backend_numbers = itertools.count(1)


@attrs.frozen
class AntigravityStatistics:
    """A snapshot of an :class:`AntigravityBackend`.

    Attributes:
        agents: Live agents.
        harness_pids: PIDs of the harness processes alive now.
        harnesses_started: Harness processes started so far (reopens included).
        reopens: SDK sessions reopened after a fatal error or a clear.
        retries: Turns retried under the :class:`RetryPolicy`.
        hosts: Each host thread, with the number of agents it carries.
        harness_loads: Each running harness process's PID with the number of
            agents (conversations) on it.
        reconnects: Model requests asked again after a connection failure
            before any output (see :class:`ConnectionRetry`).
        hibernated: Agents hibernating now (their harness conversation closed).
        hibernations: Times an agent went to sleep so far.
        wakes: Times a hibernating agent was woken so far.
        wake_latency_p50: Median seconds a wake took (None before the first).
        wake_latency_p99: 99th percentile of the wake latencies (None before the first).
        wake_latency_max: The longest wake, in seconds (None before the first).
    """

    agents: int
    harness_pids: tuple[int, ...]
    harnesses_started: int
    reopens: int
    retries: int
    hosts: tuple[tuple[HostStatistics, int], ...]
    harness_loads: tuple[tuple[int, int], ...] = ()
    reconnects: int = 0
    hibernated: int = 0
    hibernations: int = 0
    wakes: int = 0
    wake_latency_p50: float | None = None
    wake_latency_p99: float | None = None
    wake_latency_max: float | None = None


class AntigravityBackend:
    """Agents of the google-antigravity SDK, hosted on a pool of asyncio threads.

    Agents share harness processes: agents whose process settings agree (the
    harness binary, the environment such as ``HOME``, and ``save_dir``) are
    served by the same ``localharness`` process, each as a conversation of its
    own, up to ``agents_per_harness`` per process, spread over
    ``harness_processes`` processes (see
    :mod:`~agy_trio.adapters.antigravity.pool`). Agents whose process settings
    differ (another ``save_dir`` or ``home_dir``) never share a process.

    Args:
        host_threads: asyncio host threads; each agent lives on the one with
            the fewest agents. Defaults to ``RuntimeConfig().host_threads``.
        retry: Retry transient model-request failures (off by default).
        connection_retry: Retry model requests that failed at the connection
            level (refused, reset, closed) before the turn produced anything:
            nothing was delivered, so this is on by default; None disables it.
        base_dir: Where the backend's temporary folder is created (the
            system's temporary folder by default). The folder holds the
            harnesses' ``HOME``, saved conversations, app data and workspace
            for every agent whose config does not choose them, and is removed
            by :meth:`aclose`.
        stream_high_water: Events buffered per turn before the SDK side waits.
        stream_batch_max: Most events handed to Trio at once.
        shutdown_grace: Seconds a harness gets to exit on its own before it is killed.
        cancel_grace: Seconds a cancelled turn gets to wind down before its task is cancelled.
        agents_per_harness: Most agents one harness process serves; 1 gives
            every agent a process of its own.
        harness_processes: How many harness processes the agents of one
            process-settings group are spread over; more start only when
            these are full.
        unreachable_timeout: Seconds into a turn's model request after which a
            connection failure the harness reported (DNS, refused connection,
            proxy, TLS) fails the turn with
            :class:`~agy_trio.errors.EndpointUnreachable` naming the cause,
            rather than the harness retrying on its own until ``chat_timeout``.
            A :class:`RetryPolicy` retries it.
        hibernate_after: Seconds without a turn after which an agent
            hibernates: its harness conversation is closed (its place on the
            harness given back) and its next command reopens it in the SDK's
            RESUME mode, transparently, on any harness with room; queries
            answer without waking it (see
            :mod:`~agy_trio.adapters.antigravity.hibernation`). None: agents
            never hibernate. The default,
            :data:`~agy_trio.adapters.antigravity.hibernation.DEFAULT_HIBERNATE_AFTER`,
            is justified in docs/performance.md ("Hibernation").

    Attributes:
        settings: The options above that the agents follow (retry, graces,
            timeouts, stream sizes), checked once here.
        limits: ``agents_per_harness`` and ``harness_processes``.

    Raises:
        AntigravityNotInstalled: The SDK is not installed (a ConfigError and
            ImportError whose message says ``pip install 'agy-trio[antigravity]'``).
        ConfigError: An option is invalid.
    """

    name = "antigravity"

    def __init__(
        self,
        *,
        host_threads: int | None = None,
        retry: RetryPolicy | None = None,
        connection_retry: ConnectionRetry | None = ConnectionRetry(),  # noqa: B008  (frozen)
        base_dir: str | os.PathLike[str] | None = None,
        stream_high_water: int = 1024,
        stream_batch_max: int = 256,
        shutdown_grace: float = 5.0,
        cancel_grace: float = 2.0,
        agents_per_harness: int = DEFAULT_AGENTS_PER_HARNESS,
        harness_processes: int = DEFAULT_HARNESS_PROCESSES,
        unreachable_timeout: float = 10.0,
        hibernate_after: float | None = DEFAULT_HIBERNATE_AFTER,
    ) -> None:
        load_sdk()
        threads = _DEFAULT_HOST_THREADS if host_threads is None else host_threads
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"must be an integer >= 1, got {threads!r}", field="host_threads")
        self.settings = AgentSettings(
            retry,
            connection_retry,
            shutdown_grace,
            cancel_grace,
            unreachable_timeout,
            stream_high_water,
            stream_batch_max,
            hibernate_after=hibernate_after,
        )
        self.base_dir = os.fspath(base_dir) if base_dir is not None else None
        self.limits = PoolLimits(agents_per_harness, harness_processes)
        self.tag = f"agy-trio-{os.getpid()}-{next(_backend_numbers)}"
        self.prefix: tuple[str, ...] = ()
        self.facts: SdkFacts | None = None
        self.registry = HarnessRegistry()
        self.pool: HarnessPool | None = None
        self.hosts = [AioHost(f"agy-trio-antigravity-{i}") for i in range(threads)]
        self._load = dict.fromkeys(range(threads), 0)
        self._agents: dict[int, tuple[SdkAgent, int]] = {}
        self._counters = Counters()
        self._context: BackendContext | None = None
        self._root: Path | None = None
        self._started = False
        self._closed = False

    # -- life cycle

    async def start(self, nursery: trio.Nursery) -> None:
        """Start the host threads and create the backend's temporary folder."""
        if self._started:
            raise RuntimeError("the backend is already started")
        self._started = True
        self._root = root = Path(await trio.to_thread.run_sync(_make_root, self.base_dir))
        self.prefix, self.facts = await trio.to_thread.run_sync(prepare, self.registry)
        self.pool = pool = HarnessPool(
            self.registry,
            self.tag,
            self.prefix,
            self.facts,
            self.limits,
            shutdown_grace=self.settings.shutdown_grace,
        )
        self._context = BackendContext(
            pool=pool,
            root=root,
            settings=self.settings,
            counters=self._counters,
            forget=self._forget,
        )
        for host in self.hosts:
            await start_host(host, nursery)

    @property
    def root(self) -> Path:
        """The backend's temporary folder (exists between :meth:`start` and :meth:`aclose`)."""
        if self._root is None:
            raise ChannelClosed("the backend is not started")
        return self._root

    async def create_agent(
        self, agent_id: str, config: AgentConfig, services: AgentServices
    ) -> AntigravitySession:
        """Start an SDK agent; resume ``config.conversation_id`` when it is set.

        Raises:
            ConfigError: The config names no usable endpoint or an unknown built-in tool.
            AgentNotFound: There is no saved conversation ``config.conversation_id``.
            BackendError: The harness failed to start.
            ChannelClosed: The backend is closed.
        """
        context = self._context
        if self._closed or context is None:
            await trio.lowlevel.checkpoint()
            raise ChannelClosed("the antigravity backend is closed")
        endpoint = choose_endpoint(config)
        if config.conversation_id is not None:
            conversation_id = validate_conversation_id(config.conversation_id)
            resume = True
        else:
            conversation_id = uuid.uuid4().hex
            resume = False
        index = min(self._load, key=lambda i: (self._load[i], i))
        host = self.hosts[index]
        agent = SdkAgent(context, host, agent_id, config, services, endpoint, conversation_id)
        self._agents[id(agent)] = (agent, index)
        self._load[index] += 1
        try:
            await host.run(_open_agent, agent, resume)
        except BaseException as exc:
            self._forget(agent)
            if isinstance(exc, Exception):
                raise classify_error(exc) from exc
            raise
        return AntigravitySession(agent)

    def _forget(self, agent: SdkAgent) -> None:
        entry = self._agents.pop(id(agent), None)
        if entry is not None:
            self._load[entry[1]] -= 1

    async def aclose(self) -> None:
        """Close every agent, kill any harness left, stop the hosts, remove the temporary folder.

        Raises:
            ChannelClosed: A host thread crashed.
            OperationTimeout: A host thread did not exit in time.
        """
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        agents = [agent for agent, _ in self._agents.values()]
        budget = self.settings.shutdown_grace + self.settings.cancel_grace + 5.0
        with trio.move_on_after(budget):
            async with trio.open_nursery() as nursery:
                for agent in agents:
                    nursery.start_soon(self._close_quietly, agent)
        if self.pool is not None and self.hosts[0].alive:
            with contextlib.suppress(ChannelClosed), trio.move_on_after(budget):
                await self.hosts[0].run(self.pool.retire_warm)
        leftovers = await trio.to_thread.run_sync(self.registry.close)
        if self.pool is not None:
            await trio.to_thread.run_sync(self.pool.close)
        leftovers += sweep_orphans(self.tag)
        if leftovers:
            log.warning("killed %d harness process(es) left at close", len(leftovers))
        errors: list[BaseException] = []
        for host in self.hosts:
            try:
                await host.aclose()
            except (ChannelClosed, OperationTimeout) as exc:
                errors.append(exc)
        self._agents.clear()
        if self._root is not None:
            await trio.to_thread.run_sync(shutil.rmtree, self._root, True)
        if errors:
            raise errors[0]

    async def _close_quietly(self, agent: SdkAgent) -> None:
        if not agent.host.alive:
            return
        try:
            await agent.host.run(agent.close)
        except Exception as exc:
            log.warning("agent %s: close failed: %s", agent.agent_id, describe(exc))

    # -- introspection

    def count(self, counter: str) -> None:
        """Add one to a statistics counter (from any host thread)."""
        self._counters.count(counter)

    def harness_pids(self) -> list[int]:
        """PIDs of the harness processes this backend has running now."""
        return self.registry.pids()

    def statistics(self) -> AntigravityStatistics:
        """A snapshot of the backend: agents, harness processes, reopens, retries, hosts."""
        return AntigravityStatistics(
            agents=len(self._agents),
            harness_pids=tuple(self.registry.pids()),
            harnesses_started=self.registry.started,
            reopens=self._counters.reopens,
            retries=self._counters.retries,
            hosts=tuple((h.statistics(), self._load[i]) for i, h in enumerate(self.hosts)),
            harness_loads=tuple(self.pool.loads()) if self.pool is not None else (),
            reconnects=self._counters.reconnects,
            **self._hibernation_figures(),
        )

    def _hibernation_figures(self) -> dict[str, Any]:
        context = self._context
        if context is None:
            return {}
        stats = context.hibernation
        latencies = sorted(stats.latencies())
        figures: dict[str, Any] = {
            "hibernated": stats.hibernated,
            "hibernations": stats.hibernations,
            "wakes": stats.wakes,
        }
        if latencies:
            figures["wake_latency_p50"] = _quantile(latencies, 0.50)
            figures["wake_latency_p99"] = _quantile(latencies, 0.99)
            figures["wake_latency_max"] = latencies[-1]
        return figures


def _quantile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted values (nearest rank)."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _open_agent(agent: SdkAgent, resume: bool) -> None:
    await agent.open(resume=resume)


def _make_root(base: str | None) -> str:
    if base is not None:
        Path(base).mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix="agy-trio-antigravity-", dir=base)
