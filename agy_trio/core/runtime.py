"""The runtime: a supervising nursery, the command channel and its dispatch loop.

Callers (``AgentHandle`` methods) put commands on a bounded Trio memory
channel. The dispatch loop starts every command as its own task, so commands
run concurrently and never queue behind one another. Each command runs inside
its own cancel scope, under ``operation_timeout``; chat turns are additionally
bounded by ``chat_timeout``. Leaving :func:`run_runtime` shuts everything down:
no new commands, a grace period for work in flight, then cancellation, agent
shutdown and the backend's host threads joined.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import outcome
import trio
import trio.lowlevel

from agy_trio.core import commands as cmds
from agy_trio.core.agent import AgentHandle
from agy_trio.core.backend import AgentSession, Backend, TurnStream
from agy_trio.core.config import AgentConfig, RuntimeConfig
from agy_trio.core.dispatch import ToolDispatcher
from agy_trio.core.errors import (
    AgentNotFound,
    AgyError,
    ConfigError,
    OperationTimeout,
    QuotaExceeded,
    RuntimeClosed,
)
from agy_trio.core.events import StopReason
from agy_trio.core.pacing import StartPacer
from agy_trio.core.quota import QuotaRegistry
from agy_trio.core.streaming import ChatResponse

__all__ = ["CommandStatistics", "Runtime", "RuntimeStatistics", "run_runtime"]

log = logging.getLogger("agy_trio.runtime")


@attrs.frozen
class CommandStatistics:
    """Counts and latency of one kind of command.

    Attributes:
        completed: Commands that returned a result.
        failed: Commands that raised (including timeouts and cancellations).
        total_seconds: Wall time spent in them, summed.
        max_seconds: The slowest one.
    """

    completed: int = 0
    failed: int = 0
    total_seconds: float = 0.0
    max_seconds: float = 0.0

    @property
    def mean_seconds(self) -> float:
        """Average wall time per command."""
        n = self.completed + self.failed
        return self.total_seconds / n if n else 0.0


@attrs.frozen
class RuntimeStatistics:
    """A snapshot of a runtime.

    Attributes:
        backend: The backend's name.
        agents: Live agents.
        in_flight: Commands running now.
        active_turns: Chat turns still producing (a turn outlives its ``chat`` command).
        queued: Commands waiting in the command channel.
        completed: Commands that succeeded so far.
        failed: Commands that failed so far.
        closed: Whether the runtime has stopped taking commands.
        commands: Per-command-name counts and latency.
        turns: Chat turns started so far.
        quota_hits: Quota errors (HTTP 429) seen so far.
        stream_events: Stream events delivered to readers so far.
    """

    backend: str
    agents: int
    in_flight: int
    active_turns: int
    queued: int
    completed: int
    failed: int
    closed: bool
    commands: dict[str, CommandStatistics]
    turns: int = 0
    quota_hits: int = 0
    stream_events: int = 0


class _AgentRecord:
    """What the runtime keeps about one agent."""

    __slots__ = (
        "agent_id",
        "config",
        "handle",
        "session",
        "turns",
        "wake_event",
        "wake_pending",
    )

    def __init__(
        self, agent_id: str, config: AgentConfig, session: AgentSession, handle: AgentHandle
    ) -> None:
        self.agent_id = agent_id
        self.config = config
        self.session = session
        self.handle = handle
        self.turns: set[TurnStream] = set()
        self.wake_pending = False
        self.wake_event = trio.Event()

    def wake(self) -> None:
        self.wake_pending = True
        self.wake_event.set()
        self.wake_event = trio.Event()


# Frozen, so one instance serves every agent created without a config (building
# an AgentConfig runs its validators, which is not free).
_DEFAULT_AGENT_CONFIG = AgentConfig()


class _Deadline:
    """When an in-flight command times out, and whether it did."""

    __slots__ = ("at", "expired")

    def __init__(self, at: float) -> None:
        self.at = at
        self.expired = False


class _AgentLogAdapter(logging.LoggerAdapter[logging.Logger]):
    """Puts ``agent_id`` and ``command`` on every record."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def _logger(agent_id: str, command: str) -> _AgentLogAdapter:
    return _AgentLogAdapter(log, {"agent_id": agent_id, "command": command})


class Runtime:
    """A running agy_trio runtime. Obtain one from :func:`agy_trio.open_runtime`.

    Attributes:
        config: The runtime's configuration.
        backend: The backend agents live in.
        quota: Quota backoff per API key.
    """

    def __init__(self, config: RuntimeConfig, backend: Backend, nursery: trio.Nursery) -> None:
        self.config = config
        self.backend = backend
        self.quota = QuotaRegistry()
        self._nursery = nursery
        self._pacer = StartPacer(config.inter_agent_delay)
        send, receive = trio.open_memory_channel[cmds.Command[Any]](config.channel_capacity)
        self._send_channel = send
        self._receive_channel = receive
        self._agents: dict[str, _AgentRecord] = {}
        self._next_agent_number = 0
        self._dispatch_in_caller = config.command_dispatch == "caller"
        # In-flight commands, oldest first, with their operation_timeout deadline.
        # Every command gets the same limit, so start order is deadline order
        # and one watchdog task can enforce them all (see _watchdog).
        self._timed: dict[trio.CancelScope, _Deadline] = {}
        # In-flight commands without a deadline (wait_for_wakeup, expired ones).
        self._untimed: set[trio.CancelScope] = set()
        self._turn_scopes: set[trio.CancelScope] = set()
        self._quiet: trio.Event | None = None
        self._closing = False
        self._closed_reason: AgyError | None = None
        self._completed = 0
        self._failed = 0
        self._per_command: dict[str, list[float]] = {}

    # ------------------------------------------------------------------ public API

    async def create_agent(self, config: AgentConfig | None = None) -> AgentHandle:
        """Create an agent and return a handle on it.

        Args:
            config: The agent's configuration (defaults to ``AgentConfig()``).

        Raises:
            ConfigError: ``config`` is not an AgentConfig.
            RuntimeClosed: The runtime is shutting down.
        """
        if config is None:
            config = _DEFAULT_AGENT_CONFIG
        if not isinstance(config, AgentConfig):
            raise ConfigError(f"expected an AgentConfig, got {type(config).__name__}")
        agent_id: str = await self._submit(cmds.CreateAgent("", config=config))
        return self._agents[agent_id].handle

    @asynccontextmanager
    async def open_agent(self, config: AgentConfig | None = None) -> AsyncIterator[AgentHandle]:
        """Create an agent for the duration of an ``async with`` block, then shut it down."""
        handle = await self.create_agent(config)
        try:
            yield handle
        finally:
            # Already gone means nothing is left to release.
            with trio.CancelScope(shield=True), contextlib.suppress(AgentNotFound, RuntimeClosed):
                await handle.shutdown()

    def agent(self, agent_id: str) -> AgentHandle:
        """The handle of a live agent.

        Raises:
            AgentNotFound: No live agent has this id.
        """
        record = self._agents.get(agent_id)
        if record is None:
            raise AgentNotFound(f"no agent {agent_id!r}")
        return record.handle

    @property
    def agents(self) -> list[AgentHandle]:
        """Handles of every live agent."""
        return [r.handle for r in self._agents.values()]

    @property
    def closed(self) -> bool:
        """Whether the runtime has stopped taking commands."""
        return self._closing

    def statistics(self) -> RuntimeStatistics:
        """A snapshot of the runtime's state and counters."""
        per = {
            name: CommandStatistics(int(v[0]), int(v[1]), v[2], v[3])
            for name, v in self._per_command.items()
        }
        return RuntimeStatistics(
            backend=self.backend.name,
            agents=len(self._agents),
            in_flight=len(self._timed) + len(self._untimed),
            active_turns=len(self._turn_scopes),
            queued=self._send_channel.statistics().current_buffer_used,
            completed=self._completed,
            failed=self._failed,
            closed=self._closing,
            commands=per,
        )

    # ------------------------------------------------------------------ submission

    async def _submit(self, command: cmds.Command[Any]) -> Any:
        if self._closing:
            await trio.lowlevel.checkpoint()
            raise self._closed_error()
        if self._dispatch_in_caller:
            # The caller's own task runs the command, inside a cancel scope the
            # runtime owns: concurrency and shutdown behave exactly as with a
            # dispatch task, without two extra scheduler rounds per command.
            return await self._run_command(command, trio.CancelScope())
        try:
            self._send_channel.send_nowait(command)
        except trio.WouldBlock:
            # The channel is full: wait for room (backpressure on callers).
            try:
                await self._send_channel.send(command)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                raise self._closed_error() from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            await trio.lowlevel.checkpoint()
            raise self._closed_error() from None
        return await command.reply.wait()

    def _submit_nowait(self, command: cmds.Command[Any]) -> bool:
        """Queue a command nobody waits for (``try_shutdown``); False if refused."""
        if self._closing:
            return False
        try:
            self._send_channel.send_nowait(command)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        return True

    def _closed_error(self) -> AgyError:
        return self._closed_reason or RuntimeClosed("the runtime is shut down")

    # ------------------------------------------------------------------ dispatch

    async def _dispatch_loop(self) -> None:
        start_soon = self._nursery.start_soon
        run = self._run_dispatched
        # Shutdown closes the channel once it has failed what was left in it;
        # that may happen before this loop sees the end of the channel.
        with contextlib.suppress(trio.ClosedResourceError):
            async for command in self._receive_channel:
                start_soon(run, command)

    async def _run_dispatched(self, command: cmds.Command[Any]) -> None:
        """Run a command that came over the channel, as its own task, and reply."""
        reply = command.reply
        scope = trio.CancelScope()
        reply.set_on_abandon(scope.cancel)
        result: outcome.Outcome[Any] = outcome.Error(self._closed_error())
        try:
            result = outcome.Value(await self._run_command(command, scope))
        except Exception as exc:
            result = outcome.Error(exc)
        finally:
            reply.send(result)

    async def _run_command(self, command: cmds.Command[Any], scope: trio.CancelScope) -> Any:
        """Run one command inside ``scope``, which shutdown and the watchdog may cancel.

        The scope has no deadline of its own: a cancel scope with a deadline
        costs twice as much to enter as one without, and on a cheap command
        that is a large share of the whole. The watchdog enforces
        ``operation_timeout`` for every command instead.
        """
        started = time.perf_counter()
        ok = False
        deadline: _Deadline | None = None
        if type(command) is cmds.WaitForWakeup:
            self._untimed.add(scope)  # bounded by its own timeout argument instead
        else:
            deadline = _Deadline(trio.current_time() + self.config.operation_timeout)
            self._timed[scope] = deadline
        try:
            with scope:
                result = await self._execute(command)
                ok = True
                return result
            # Only reached when ``scope`` itself fired: shutdown, its deadline,
            # or (dispatched commands) the waiting caller giving up.
            if self._closed_reason is not None:
                raise self._closed_reason
            if deadline is not None and deadline.expired:
                raise OperationTimeout(command.name, self.config.operation_timeout)
            raise RuntimeClosed(f"{command.name}: cancelled")
        except AgyError:
            raise
        except Exception:
            _logger(command.agent_id, command.name).exception("command failed unexpectedly")
            raise
        finally:
            if self._timed.pop(scope, None) is None:
                self._untimed.discard(scope)
            if self._quiet is not None:
                self._check_quiet()
            self._record(command.name, started, ok)

    async def _watchdog(self) -> None:
        """Cancel commands that outlive ``operation_timeout``, oldest first."""
        timed, limit = self._timed, self.config.operation_timeout
        while True:
            now = trio.current_time()
            expired = []
            for scope, deadline in timed.items():
                if deadline.at > now:
                    break
                expired.append(scope)
            for scope in expired:
                timed.pop(scope).expired = True
                self._untimed.add(scope)
                scope.cancel()
            # A command started from now on has a deadline after now + limit,
            # so sleeping until the oldest deadline (or now + limit) never
            # oversleeps one: no command ever needs to wake the watchdog.
            wake = next(iter(timed.values())).at if timed else now + limit
            await trio.sleep_until(wake)

    def _record(self, name: str, started: float, ok: bool) -> None:
        elapsed = time.perf_counter() - started
        entry = self._per_command.get(name)
        if entry is None:
            entry = self._per_command[name] = [0.0, 0.0, 0.0, 0.0]
        if ok:
            self._completed += 1
            entry[0] += 1
        else:
            self._failed += 1
            entry[1] += 1
        entry[2] += elapsed
        if elapsed > entry[3]:
            entry[3] = elapsed

    async def _execute(self, command: cmds.Command[Any]) -> Any:
        kind = type(command)
        if kind is cmds.CreateAgent:
            assert isinstance(command, cmds.CreateAgent)
            return await self._create_agent(command)
        record = self._agents.get(command.agent_id)
        if record is None:
            await trio.lowlevel.checkpoint()
            raise AgentNotFound(f"{command.name}: no agent {command.agent_id!r}")
        if kind is cmds.Chat:
            assert isinstance(command, cmds.Chat)
            return await self._chat(record, command)
        if kind is cmds.WaitForWakeup:
            assert isinstance(command, cmds.WaitForWakeup)
            return await self._wait_for_wakeup(record, command.timeout)
        if kind is cmds.SignalIdle:
            record.wake_pending = False
            await trio.lowlevel.checkpoint()
            return None
        if kind is cmds.Send:
            return await self._send(record, command)
        if kind is cmds.Cancel:
            return await self._cancel_turns(record)
        if kind in (cmds.ShutdownAgent, cmds.Delete, cmds.Disconnect):
            return await self._end_agent(record, command)
        return await command.execute(record.session)

    # ------------------------------------------------------------------ agent life cycle

    async def _create_agent(self, command: cmds.CreateAgent) -> str:
        config = command.config
        assert config is not None
        self._next_agent_number += 1
        agent_id = f"{config.name or 'agent'}-{self._next_agent_number}"
        services = ToolDispatcher.from_config(
            agent_id, config, handler_timeout=self.config.handler_timeout
        )
        session = await self.backend.create_agent(agent_id, config, services)
        handle = AgentHandle(
            agent_id, config, session.conversation_id, self._submit, self._submit_nowait
        )
        self._agents[agent_id] = _AgentRecord(agent_id, config, session, handle)
        _logger(agent_id, command.name).debug("agent created")
        return agent_id

    async def _end_agent(self, record: _AgentRecord, command: cmds.Command[Any]) -> None:
        # Unregister first: later commands get AgentNotFound instead of racing the shutdown.
        self._agents.pop(record.agent_id, None)
        await self._cancel_turns(record, call_backend=False)
        if type(command) is cmds.Delete:
            await record.session.delete()
        elif type(command) is cmds.Disconnect:
            await record.session.disconnect()
        else:
            await record.session.shutdown()
        _logger(record.agent_id, command.name).debug("agent ended")

    # ------------------------------------------------------------------ turns

    def _chat_timeout(self, record: _AgentRecord) -> float:
        override = record.config.chat_timeout
        return self.config.chat_timeout if override is None else override

    async def _chat(self, record: _AgentRecord, command: cmds.Chat) -> ChatResponse:
        chat_timeout = self._chat_timeout(record)
        quota = self.quota.state_for(record.config.quota_key)
        # Waiting out a quota backoff or a pacing slot is not part of the turn:
        # only operation_timeout bounds it. The turn's clock starts here.
        # Skipped when there is nothing to wait for: each would cost a scheduler round.
        if quota.backing_off:
            await quota.wait()
        if self._pacer.delay:
            await self._pacer.wait_turn()
        record.wake()
        deadline = trio.current_time() + chat_timeout
        with trio.move_on_at(deadline) as start_scope:
            try:
                stream = await record.session.chat(command.content)
            except QuotaExceeded as exc:
                quota.record_hit(exc.retry_after)
                raise
        if start_scope.cancelled_caught:
            raise OperationTimeout("chat", chat_timeout)
        settled = False

        def settle(error: BaseException | None) -> None:
            # Called by whichever sees the end of the turn first: its reader
            # or its watcher. Only a completed turn clears a quota backoff.
            nonlocal settled
            if settled:
                return
            settled = True
            if isinstance(error, QuotaExceeded):
                quota.record_hit(error.retry_after)
            elif error is None and response.stop_reason is not StopReason.CANCELLED:
                quota.record_success()

        response = ChatResponse(
            record.agent_id, stream, cancel_timeout=self.config.shutdown_timeout, on_end=settle
        )
        # No checkpoint between the turn starting and its watcher existing: a
        # turn is never left running without a deadline.
        record.turns.add(stream)
        scope = trio.CancelScope()
        self._turn_scopes.add(scope)
        self._nursery.start_soon(
            self._watch_turn, record, stream, response, deadline, chat_timeout, scope, settle
        )
        return response

    async def _watch_turn(
        self,
        record: _AgentRecord,
        stream: TurnStream,
        response: ChatResponse,
        deadline: float,
        chat_timeout: float,
        scope: trio.CancelScope,
        settle: Callable[[BaseException | None], None],
    ) -> None:
        """Bound a turn by ``chat_timeout``, settle quota, and cancel it on shutdown."""
        try:
            with scope:
                with trio.move_on_at(deadline) as turn_scope:
                    error = await stream.wait_finished()
                if turn_scope.cancelled_caught:
                    response._force_error(OperationTimeout("chat", chat_timeout))
                    # The outer safety net bounds the backend's own cancel (never
                    # less than shutdown_timeout, should an agent's own
                    # chat_timeout exceed the runtime's operation_timeout).
                    limit = max(
                        self.config.operation_timeout - chat_timeout, self.config.shutdown_timeout
                    )
                    await self._cancel_stream(stream, limit)
                    _logger(record.agent_id, "chat").warning(
                        "turn timed out after %g s", chat_timeout
                    )
                else:
                    settle(error)
            if scope.cancelled_caught:
                response._force_error(self._closed_error())
                await self._cancel_stream(stream, self.config.shutdown_timeout)
        finally:
            self._turn_scopes.discard(scope)
            record.turns.discard(stream)
            if self._quiet is not None:
                self._check_quiet()

    async def _cancel_stream(self, stream: TurnStream, limit: float) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(max(limit, 0.0)):
            await stream.cancel()

    async def _send(self, record: _AgentRecord, command: cmds.Command[Any]) -> None:
        quota = self.quota.state_for(record.config.quota_key)
        if quota.backing_off:
            await quota.wait()
        record.wake()
        try:
            await command.execute(record.session)
        except QuotaExceeded as exc:
            quota.record_hit(exc.retry_after)
            raise
        quota.record_success()

    async def _cancel_turns(self, record: _AgentRecord, *, call_backend: bool = True) -> None:
        async with trio.open_nursery() as nursery:
            for stream in list(record.turns):
                nursery.start_soon(stream.cancel)
        if call_backend:
            await record.session.cancel()

    async def _wait_for_wakeup(self, record: _AgentRecord, timeout: float) -> bool:
        if record.wake_pending:
            record.wake_pending = False
            await trio.lowlevel.checkpoint()
            return True
        with trio.move_on_after(timeout):
            await record.wake_event.wait()
        woken = record.wake_pending
        record.wake_pending = False
        return woken

    # ------------------------------------------------------------------ shutdown

    async def shutdown(self) -> None:
        """Shut the runtime down now (leaving ``open_runtime``'s block does this too).

        New commands get :class:`RuntimeClosed`; work in flight gets
        ``shutdown_timeout`` to finish, then is cancelled and its callers get
        :class:`RuntimeClosed`; every agent is shut down. Idempotent.
        """
        if self._closing:
            await trio.lowlevel.checkpoint()
            return
        self._closing = True
        self._send_channel.close()
        timeout = self.config.shutdown_timeout
        with trio.move_on_after(timeout):
            # Let queued commands start, and work in flight finish on its own.
            await self._wait_quiet()
        self._closed_reason = RuntimeClosed("the runtime shut down before the command finished")
        for scope in [*self._timed, *self._untimed, *self._turn_scopes]:
            scope.cancel()
        # Commands still queued never started: fail them without running them.
        while True:
            try:
                command = self._receive_channel.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            command.reply.send(outcome.Error(self._closed_error()))
        self._receive_channel.close()
        with trio.move_on_after(timeout):
            await self._wait_quiet()
        await self._shutdown_agents(timeout)

    def _busy(self) -> bool:
        return bool(self._timed or self._untimed or self._turn_scopes)

    def _check_quiet(self) -> None:
        if self._quiet is not None and not self._busy():
            self._quiet.set()
            self._quiet = None

    async def _wait_quiet(self) -> None:
        """Wait until no command, queued command or turn is left."""
        while True:
            if self._busy():
                # Created only while shutdown waits: commands pay nothing for it.
                if self._quiet is None:
                    self._quiet = trio.Event()
                quiet = self._quiet
                await quiet.wait()
            elif self._receive_channel.statistics().current_buffer_used:
                await trio.lowlevel.checkpoint()  # the dispatch loop starts them
            else:
                return

    async def _shutdown_agents(self, timeout: float) -> None:
        records = list(self._agents.values())
        self._agents.clear()

        async def end(record: _AgentRecord) -> None:
            try:
                await record.session.shutdown()
            except Exception:
                _logger(record.agent_id, "shutdown_agent").exception("agent shutdown failed")

        with trio.move_on_after(timeout) as scope:
            async with trio.open_nursery() as nursery:
                for record in records:
                    nursery.start_soon(end, record)
        if scope.cancelled_caught:
            log.error("agents did not shut down within %g s", timeout)


def _validate(config: RuntimeConfig | None) -> RuntimeConfig:
    if config is None:
        return RuntimeConfig()
    if not isinstance(config, RuntimeConfig):
        raise ConfigError(f"expected a RuntimeConfig, got {type(config).__name__}")
    return config


@asynccontextmanager
async def run_runtime(config: RuntimeConfig | None, backend: Backend) -> AsyncIterator[Runtime]:
    """Run a :class:`Runtime` over ``backend`` for the duration of the block.

    This is the backend-agnostic core of :func:`agy_trio.open_runtime`. An
    exception raised by the block comes out as itself, not wrapped in an
    exception group by the runtime's nurseries.

    Raises:
        ChannelClosed: A backend host thread crashed (raised on exit).
        OperationTimeout: A backend host thread did not exit in time (raised on exit).
    """
    config = _validate(config)
    if config.log_level is not None:
        logging.getLogger("agy_trio").setLevel(config.log_level)
    body_error: BaseException | None = None
    shutdown_error: BaseException | None = None
    try:
        async with trio.open_nursery() as service_nursery:
            await backend.start(service_nursery)
            try:
                async with trio.open_nursery() as work_nursery:
                    runtime = Runtime(config, backend, work_nursery)
                    work_nursery.start_soon(runtime._dispatch_loop)
                    work_nursery.start_soon(runtime._watchdog)
                    try:
                        yield runtime
                    except BaseException as exc:
                        body_error = exc
                        raise
                    finally:
                        with trio.CancelScope(shield=True):
                            await runtime.shutdown()
                        work_nursery.cancel_scope.cancel()
            finally:
                with trio.CancelScope(shield=True):
                    try:
                        await backend.aclose()
                    except Exception as exc:
                        shutdown_error = exc
                        log.error("backend did not close cleanly: %r", exc)
                service_nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if body_error is not None and _only(group, body_error):
            raise body_error from None
        raise
    if shutdown_error is not None:
        raise shutdown_error


def _only(group: BaseExceptionGroup[BaseException], error: BaseException) -> bool:
    """Whether ``group`` holds nothing but ``error`` (nested groups flattened)."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        item = stack.pop()
        if isinstance(item, BaseExceptionGroup):
            stack.extend(item.exceptions)
        else:
            leaves.append(item)
    return leaves == [error]
