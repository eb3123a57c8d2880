"""The runtime: a supervising nursery, the command channel and its dispatch loop.

Callers (``AgentHandle`` methods) put :class:`~agy_trio.core.commands.Command`
values on a bounded Trio memory channel and wait on each command's one-shot
reply. One dispatch loop, owned by the runtime's nursery, routes them: a
command the backend answers goes straight to the agent's session, with no
task of its own, and the session's answer completes the caller's reply
directly; a command the runtime answers itself (creating and ending agents,
waiting out a quota backoff, wake-ups) runs as a task. Commands never queue
behind one another.

One watchdog enforces every time limit: ``operation_timeout`` per command and
``chat_timeout`` per turn. Cancelling a command (its caller gave up, its time
ran out, or the runtime is shutting down) goes through the command's
canceller, which reaches the asyncio task and the SDK's own cancel.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, final

import outcome
import trio
import trio.lowlevel

from agy_trio.core import commands as cmds
from agy_trio.core.agent import AgentHandle
from agy_trio.core.backend import AgentSession, Backend, TurnStream, WorkCancelled
from agy_trio.core.commands import CancelReason, Command
from agy_trio.core.config import AgentConfig, RuntimeConfig
from agy_trio.core.construction import NoPublicConstructor
from agy_trio.core.deadlines import Deadlines
from agy_trio.core.dispatch import ToolDispatcher
from agy_trio.core.errors import (
    AgentNotFound,
    AgyError,
    ConfigError,
    OperationTimeout,
    QuotaExceeded,
    RuntimeClosed,
    WrongThread,
)
from agy_trio.core.events import StopReason
from agy_trio.core.pacing import StartPacer
from agy_trio.core.quota import QuotaRegistry, QuotaState
from agy_trio.core.statistics import CommandStatistics, RuntimeStatistics
from agy_trio.core.streaming import ChatResponse, StreamCounters
from agy_trio.core.supervision import raise_unwrapped

__all__ = ["CommandStatistics", "Runtime", "RuntimeStatistics", "open_runtime_on"]

log = logging.getLogger("agy_trio.runtime")

T = TypeVar("T")


class _AgentRecord:
    """What the runtime keeps about one agent."""

    __slots__ = ("agent_id", "chat_timeout", "config", "handle", "quota", "session", "turns")

    def __init__(
        self,
        agent_id: str,
        config: AgentConfig,
        session: AgentSession,
        handle: AgentHandle,
        quota: QuotaState,
        chat_timeout: float,
    ) -> None:
        self.agent_id = agent_id
        self.config = config
        self.session = session
        self.handle = handle
        self.quota = quota
        self.chat_timeout = chat_timeout
        self.turns: set[_Turn] = set()


class _Wakeups:
    """Wake-up state of one agent (only agents that use wake-ups pay for it)."""

    __slots__ = ("event", "pending")

    def __init__(self) -> None:
        self.pending = False
        self.event = trio.Event()

    def wake(self) -> None:
        self.pending = True
        self.event.set()
        self.event = trio.Event()


class _Turn:
    """A running chat turn: its stream, its response, its deadline."""

    __slots__ = ("limit", "record", "response", "runtime", "settled", "stream")

    def __init__(
        self, runtime: Runtime, record: _AgentRecord, stream: TurnStream, limit: float
    ) -> None:
        self.runtime = runtime
        self.record = record
        self.stream = stream
        self.limit = limit
        self.settled = False
        # Weak: a response its caller dropped must be collectable while the
        # turn runs, so that its finaliser releases the turn.
        self.response: weakref.ref[ChatResponse] | None = None

    def reader(self) -> ChatResponse | None:
        """The turn's response, unless its caller dropped it (or it is not made yet)."""
        return None if self.response is None else self.response()

    def settle(self, error: BaseException | None) -> None:
        """Settle quota once: called by whichever sees the end first, reader or stream."""
        if self.settled:
            return
        self.settled = True
        quota = self.record.quota
        if isinstance(error, QuotaExceeded):
            self.runtime._quota_hit(quota, error)
        elif error is None and (
            (response := self.reader()) is None or response.stop_reason is not StopReason.CANCELLED
        ):
            # Only a completed turn clears a quota backoff.
            quota.record_success()

    def ended(self, error: BaseException | None) -> None:
        self.settle(error)
        self.runtime._turn_ended(self)


# Frozen, so one instance serves every agent created without a config (building
# an AgentConfig runs its validators, which is not free).
_DEFAULT_AGENT_CONFIG = AgentConfig()

_ENDINGS = {
    cmds.SHUTDOWN_AGENT: "shutdown",
    cmds.DELETE: "delete",
    cmds.DISCONNECT: "disconnect",
}


class _AgentLogAdapter(logging.LoggerAdapter[logging.Logger]):
    """Puts ``agent_id`` and ``command`` on every record."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def _logger(agent_id: str, command: str) -> _AgentLogAdapter:
    return _AgentLogAdapter(log, {"agent_id": agent_id, "command": command})


_HANDED_OFF: Any = object()  # a task's result when it passed its command on to the backend


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
        self.quota = QuotaRegistry()
        self._nursery = nursery
        self._token = trio.lowlevel.current_trio_token()
        self._thread = threading.get_ident()
        self._pacer = StartPacer(config.inter_agent_delay)
        send, receive = trio.open_memory_channel[Command[Any]](config.channel_capacity)
        self._send_channel = send
        self._receive_channel = receive
        self._agents: dict[str, _AgentRecord] = {}
        self._wakeups: dict[str, _Wakeups] = {}
        self._next_agent_number = 0
        # Every routed command until it completes (shutdown cancels them).
        self._running: set[Command[Any]] = set()
        # operation_timeout per command, chat_timeout per turn: one watchdog.
        self._deadlines: Deadlines[Command[Any] | _Turn] = Deadlines(self._expire)
        self._track = self._deadlines.track
        self._untrack = self._deadlines.untrack
        self._turns: set[_Turn] = set()
        self._quiet: trio.Event | None = None
        self._closing = False
        self._closed_reason: AgyError | None = None
        self._completed = 0
        self._failed = 0
        self._turns_started = 0
        self._quota_hits = 0
        self._counters = StreamCounters()
        self._per_command: dict[str, list[float]] = {}

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
        return self._agents[agent_id].handle

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

    @property
    def trio_token(self) -> trio.lowlevel.TrioToken:
        """The token of the Trio run the runtime lives in (for ``trio.from_thread``)."""
        return self._token

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
        if _running_trio_token() is not None:
            raise WrongThread(
                "Runtime.from_thread blocks its thread and was called from Trio code: "
                "in the runtime's own run await the call; in another run use "
                "trio.to_thread.run_sync(rt.from_thread, ...)"
            )
        if threading.get_ident() == self._thread:
            # Not in a Trio task, yet on the run's thread (asyncio code hosting
            # a guest run): blocking here would stop the run for good.
            try:
                self._token.run_sync_soon(_nothing)
            except trio.RunFinishedError:
                raise RuntimeClosed("the runtime's Trio run has finished") from None
            raise WrongThread(
                "Runtime.from_thread blocks its thread and was called on the thread of the "
                "runtime's own Trio run"
            )
        try:
            return trio.from_thread.run(fn, *args, trio_token=self._token)
        except trio.RunFinishedError:
            raise RuntimeClosed("the runtime's Trio run has finished") from None

    def statistics(self) -> RuntimeStatistics:
        """A snapshot of the runtime's state and counters."""
        per = {
            name: CommandStatistics(int(v[0]), int(v[1]), v[2], v[3])
            for name, v in self._per_command.items()
        }
        return RuntimeStatistics(
            backend=self.backend.name,
            agents=len(self._agents),
            in_flight=len(self._running),
            active_turns=len(self._turns),
            queued=self._send_channel.statistics().current_buffer_used,
            completed=self._completed,
            failed=self._failed,
            closed=self._closing,
            commands=per,
            turns=self._turns_started,
            quota_hits=self._quota_hits,
            stream_events=self._counters.events,
        )

    # ------------------------------------------------------------------ submission

    async def _submit(self, command: Command[Any]) -> Any:
        try:
            foreign = trio.lowlevel.current_trio_token() is not self._token
        except RuntimeError:
            foreign = True
        if foreign:
            raise WrongThread(
                f"{command.name}: the runtime was called from outside the Trio run that "
                "opened it; from another thread use Runtime.from_thread"
            )
        if self._closing:
            await trio.lowlevel.checkpoint()
            raise self._closed_error()
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
        return await command.wait()

    def _submit_nowait(self, command: Command[Any]) -> bool:
        """Queue a command nobody waits for (``try_shutdown``), from any thread.

        Returns False if it was refused (the runtime is closing or its channel
        is full). From another thread the command is queued by the Trio thread
        soon after; it is never lost while the runtime runs.
        """
        if _running_trio_token() is not self._token:
            # Another thread, another run, or plain code on this thread after
            # (or outside) the run: only the token reaches the run safely.
            try:
                self._token.run_sync_soon(self._submit_nowait, command)
            except trio.RunFinishedError:
                return False
            return True
        if self._closing:
            return False
        try:
            self._send_channel.send_nowait(command)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            if command.spec is cmds.SHUTDOWN_AGENT and not self._closing:
                # Never lost: a full channel only delays it.
                self._nursery.start_soon(self._submit_later, command)
                return True
            return False
        return True

    async def _submit_later(self, command: Command[Any]) -> None:
        # On a closed channel it is dropped: shutdown ends every agent anyway.
        with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            await self._send_channel.send(command)

    def _closed_error(self) -> AgyError:
        return self._closed_reason or RuntimeClosed("the runtime is shut down")

    # ------------------------------------------------------------------ dispatch

    async def _dispatch_loop(self) -> None:
        receive = self._receive_channel
        route = self._route
        try:
            while True:
                try:
                    command = receive.receive_nowait()
                except trio.WouldBlock:
                    command = await receive.receive()
                route(command)
        except (trio.EndOfChannel, trio.ClosedResourceError):
            # Shutdown closes the channel once it has failed what was left in it.
            return

    def _route(self, command: Command[Any]) -> None:
        """Send one command on its way; never blocks, never raises."""
        if command.dropped:
            return  # its caller gave up before it ran
        command.start()
        command.finisher = self._finish
        command.started = time.perf_counter()
        self._running.add(command)
        spec = command.spec
        if spec.timed:
            self._track(command, self.config.operation_timeout)
        try:
            if not spec.needs_agent:
                self._spawn(command, self._create_agent, *command.args)
                return
            record = self._agents.get(command.agent_id)
            if record is None:
                raise AgentNotFound(f"{spec.name}: no agent {command.agent_id!r}")
            if spec.route is cmds.Route.SESSION:
                record.session.submit(command)
            elif spec.is_llm:
                self._route_message(record, command)
            elif spec is cmds.SIGNAL_IDLE:
                self._wakeups_of(record).pending = False
                command.complete(outcome.Value(None))
            elif spec is cmds.WAIT_FOR_WAKEUP:
                self._spawn(command, self._wait_for_wakeup, record, *command.args)
            else:
                self._spawn(command, self._end_agent, record, _ENDINGS[spec])
        except Exception as exc:
            command.complete(outcome.Error(exc))

    def _spawn(self, command: Command[Any], fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        self._nursery.start_soon(self._run_task, command, fn, args)

    async def _run_task(
        self, command: Command[Any], fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
    ) -> None:
        """Run a command the runtime answers itself, as its own task, and answer it."""
        scope = trio.CancelScope()
        command.set_canceller(scope.cancel)
        result: outcome.Outcome[Any] = outcome.Error(WorkCancelled())
        try:
            with scope:
                result = outcome.Value(await fn(command, *args))
        except Exception as exc:
            result = outcome.Error(exc)
        finally:
            # Even when an outer cancellation unwinds this task, the caller is answered.
            if not isinstance(result, outcome.Value) or result.value is not _HANDED_OFF:
                command.complete(result)

    def _finish(self, command: Command[Any], result: outcome.Outcome[Any]) -> outcome.Outcome[Any]:
        """Translate a command's outcome for its caller and do the bookkeeping."""
        self._running.discard(command)
        deadline = self._untrack(command)
        ok = isinstance(result, outcome.Value)
        if isinstance(result, outcome.Value):
            spec = command.spec
            if spec.is_llm:
                record = self._agents.get(command.agent_id)
                if spec is cmds.CHAT:
                    result = self._start_turn(record, command, result.value, deadline)
                    ok = isinstance(result, outcome.Value)
                elif record is not None:
                    record.quota.record_success()
        elif isinstance(result, outcome.Error):
            error = result.error
            if type(error) is WorkCancelled:
                result = outcome.Error(self._cancelled_error(command))
            elif isinstance(error, QuotaExceeded):
                record = self._agents.get(command.agent_id)
                if record is not None and command.spec.is_llm:
                    self._quota_hit(record.quota, error)
            elif not isinstance(error, AgyError | trio.Cancelled):
                _logger(command.agent_id, command.name).error(
                    "command failed unexpectedly", exc_info=error
                )
        self._record(command, ok)
        if self._quiet is not None:
            self._check_quiet()
        return result

    def _cancelled_error(self, command: Command[Any]) -> BaseException:
        reason = command.cancel_reason
        if reason is CancelReason.CALLER:
            return WorkCancelled()  # the caller gets its own Cancelled
        if reason is CancelReason.TIMEOUT:
            return OperationTimeout(command.name, command.limit)
        return self._closed_error()

    def _record(self, command: Command[Any], ok: bool) -> None:
        elapsed = time.perf_counter() - command.started
        entry = self._per_command.get(command.spec.name)
        if entry is None:
            entry = self._per_command[command.spec.name] = [0.0, 0.0, 0.0, 0.0]
        if ok:
            self._completed += 1
            entry[0] += 1
        else:
            self._failed += 1
            entry[1] += 1
        entry[2] += elapsed
        if elapsed > entry[3]:
            entry[3] = elapsed

    # ------------------------------------------------------------------ time limits

    def _expire(self, item: Command[Any] | _Turn) -> None:
        if isinstance(item, Command):
            item.cancel(CancelReason.TIMEOUT)
            return
        response = item.reader()
        if response is not None:
            response._force_error(OperationTimeout("chat", item.limit))
        _logger(item.record.agent_id, "chat").warning("turn timed out after %g s", item.limit)
        # The outer safety net bounds the backend's own cancel.
        limit = max(self.config.operation_timeout - item.limit, self.config.shutdown_timeout)
        self._nursery.start_soon(self._cancel_stream, item.stream, limit)

    async def _cancel_stream(self, stream: TurnStream, limit: float) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(max(limit, 0.0)):
            await stream.cancel()

    # ------------------------------------------------------------------ agent life cycle

    async def _create_agent(self, command: Command[Any], config: AgentConfig) -> str:
        self._next_agent_number += 1
        agent_id = f"{config.name or 'agent'}-{self._next_agent_number}"
        services = ToolDispatcher.from_config(
            agent_id, config, handler_timeout=self.config.handler_timeout
        )
        session = await self.backend.create_agent(agent_id, config, services)
        handle = AgentHandle._create(
            agent_id, config, session.conversation_id, self._submit, self._submit_nowait
        )
        chat_timeout = config.chat_timeout
        if chat_timeout is None:
            chat_timeout = self.config.chat_timeout
        self._agents[agent_id] = _AgentRecord(
            agent_id, config, session, handle, self.quota.state_for(config.quota_key), chat_timeout
        )
        _logger(agent_id, command.name).debug("agent created")
        return agent_id

    async def _end_agent(self, command: Command[Any], record: _AgentRecord, how: str) -> None:
        # Unregister first: later commands get AgentNotFound instead of racing the shutdown.
        if self._agents.pop(record.agent_id, None) is None:
            await trio.lowlevel.checkpoint()
            raise AgentNotFound(f"{command.name}: no agent {record.agent_id!r}")
        self._wakeups.pop(record.agent_id, None)
        await record.session.end(how)
        _logger(record.agent_id, command.name).debug("agent ended (%s)", how)

    # ------------------------------------------------------------------ turns

    def _route_message(self, record: _AgentRecord, command: Command[Any]) -> None:
        """Route ``chat`` or ``send``: wait for quota and pacing only if there is any."""
        # An unread turn must not hold the agent: the new message supersedes the
        # reader's backpressure, and the old turn runs to its end.
        for turn in record.turns:
            turn.stream.release()
        if record.quota.backing_off or (command.spec is cmds.CHAT and self._pacer.delay):
            self._spawn(command, self._wait_then_hand_off, record)
        else:
            self._hand_off(record, command)

    async def _wait_then_hand_off(self, command: Command[Any], record: _AgentRecord) -> Any:
        # Waiting out a quota backoff or a pacing slot is not part of the turn:
        # only operation_timeout bounds it.
        if record.quota.backing_off:
            await record.quota.wait()
        if command.spec is cmds.CHAT and self._pacer.delay:
            await self._pacer.wait_turn()
        command.set_canceller(None)
        if record.agent_id not in self._agents:
            raise AgentNotFound(f"{command.name}: no agent {record.agent_id!r}")
        self._hand_off(record, command)
        return _HANDED_OFF

    def _hand_off(self, record: _AgentRecord, command: Command[Any]) -> None:
        wakeups = self._wakeups.get(record.agent_id)
        if wakeups is not None:
            wakeups.wake()
        else:
            self._wakeups[record.agent_id] = _pending_wakeup()
        if command.spec is cmds.CHAT:
            # The turn's own clock starts now: chat_timeout bounds its start.
            self._untrack(command)
            self._track(command, record.chat_timeout)
        record.session.submit(command)

    def _start_turn(
        self,
        record: _AgentRecord | None,
        command: Command[Any],
        stream: TurnStream,
        deadline: float,
    ) -> outcome.Outcome[ChatResponse]:
        limit = command.limit
        if record is None or self._closing:
            # The agent ended (or the runtime closed) while the turn started.
            self._nursery.start_soon(self._cancel_stream, stream, self.config.shutdown_timeout)
            if record is None:
                return outcome.Error(AgentNotFound(f"chat: no agent {command.agent_id!r}"))
            return outcome.Error(self._closed_error())
        turn = _Turn(self, record, stream, limit)
        response = ChatResponse._create(
            record.agent_id,
            stream,
            cancel_timeout=self.config.shutdown_timeout,
            on_end=turn.settle,
            counters=self._counters,
        )
        turn.response = weakref.ref(response)
        # The rest of the turn keeps the deadline its start had.
        self._track(turn, limit, deadline)
        record.turns.add(turn)
        self._turns.add(turn)
        self._turns_started += 1
        stream.add_done_callback(turn.ended)
        return outcome.Value(response)

    def _turn_ended(self, turn: _Turn) -> None:
        self._untrack(turn)
        self._turns.discard(turn)
        turn.record.turns.discard(turn)
        if self._quiet is not None:
            self._check_quiet()

    def _quota_hit(self, quota: QuotaState, error: QuotaExceeded) -> None:
        self._quota_hits += 1
        quota.record_hit(error.retry_after)

    def _wakeups_of(self, record: _AgentRecord) -> _Wakeups:
        wakeups = self._wakeups.get(record.agent_id)
        if wakeups is None:
            wakeups = self._wakeups[record.agent_id] = _Wakeups()
        return wakeups

    async def _wait_for_wakeup(
        self, command: Command[Any], record: _AgentRecord, timeout: float
    ) -> bool:
        wakeups = self._wakeups_of(record)
        if wakeups.pending:
            wakeups.pending = False
            await trio.lowlevel.checkpoint()
            return True
        with trio.move_on_after(timeout):
            await wakeups.event.wait()
        woken = wakeups.pending
        wakeups.pending = False
        return woken

    # ------------------------------------------------------------------ shutdown

    async def aclose(self) -> None:
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
        # Commands still queued never started: fail them without running them.
        while True:
            try:
                command = self._receive_channel.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            if not command.dropped:
                command.start()
                command.complete(outcome.Error(self._closed_error()))
        self._receive_channel.close()
        for command in list(self._running):
            command.cancel(CancelReason.SHUTDOWN)
        turns = list(self._turns)
        for turn in turns:
            response = turn.reader()
            if response is not None:
                response._force_error(self._closed_error())
        with trio.move_on_after(timeout):
            async with trio.open_nursery() as nursery:
                for turn in turns:
                    nursery.start_soon(self._cancel_stream, turn.stream, timeout)
            await self._wait_quiet()
        await self._shutdown_agents(timeout)

    async def shutdown(self) -> None:
        """Synonym of :meth:`aclose`, kept for the reference design's command name."""
        await self.aclose()

    def _busy(self) -> bool:
        return bool(self._running or self._turns)

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
                await self._quiet.wait()
            elif self._receive_channel.statistics().current_buffer_used:
                await trio.lowlevel.checkpoint()  # the dispatch loop starts them
            else:
                await trio.lowlevel.checkpoint()
                return

    async def _shutdown_agents(self, timeout: float) -> None:
        records = list(self._agents.values())
        self._agents.clear()

        async def end(record: _AgentRecord) -> None:
            try:
                await record.session.end("shutdown")
            except Exception:
                _logger(record.agent_id, "shutdown_agent").exception("agent shutdown failed")

        with trio.move_on_after(timeout) as scope:
            async with trio.open_nursery() as nursery:
                for record in records:
                    nursery.start_soon(end, record)
        if scope.cancelled_caught:
            log.error("agents did not shut down within %g s", timeout)


def _nothing() -> None:
    """A callback that does nothing (probes whether a Trio run still takes callbacks)."""


def _running_trio_token() -> trio.lowlevel.TrioToken | None:
    """The token of the Trio run the calling code runs in, or None outside any."""
    try:
        return trio.lowlevel.current_trio_token()
    except RuntimeError:
        return None


def _pending_wakeup() -> _Wakeups:
    wakeups = _Wakeups()
    wakeups.pending = True
    return wakeups


def _validate(config: RuntimeConfig | None) -> RuntimeConfig:
    if config is None:
        return RuntimeConfig()
    if not isinstance(config, RuntimeConfig):
        raise ConfigError(f"expected a RuntimeConfig, got {type(config).__name__}")
    return config


async def _serve(service: Callable[[], Awaitable[None]], scopes: list[trio.CancelScope]) -> None:
    """Run one of the runtime's own services until the runtime cancels its scope."""
    with trio.CancelScope(shield=True) as scope:
        scopes.append(scope)
        await service()


@asynccontextmanager
async def open_runtime_on(config: RuntimeConfig | None, backend: Backend) -> AsyncIterator[Runtime]:
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
                    runtime = Runtime._create(config, backend, work_nursery)
                    # Shielded: cancelling the scope around the block must not
                    # stop the runtime serving the block's own way out (an
                    # agent's `async with` shutting it down) before it closes.
                    services: list[trio.CancelScope] = []
                    work_nursery.start_soon(_serve, runtime._dispatch_loop, services)
                    work_nursery.start_soon(_serve, runtime._deadlines.watch, services)
                    try:
                        yield runtime
                    except BaseException as exc:
                        body_error = exc
                        raise
                    finally:
                        with trio.CancelScope(shield=True):
                            await runtime.aclose()
                        for scope in services:
                            scope.cancel()
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
        if body_error is not None:
            raise_unwrapped(group, body_error)
        raise
    if shutdown_error is not None:
        raise shutdown_error
