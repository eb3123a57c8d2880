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

import attrs
import outcome
import trio
import trio.lowlevel

from agy_trio.core import commands as cmds
from agy_trio.core.agent import AgentHandle
from agy_trio.core.backend import AgentSession, Backend
from agy_trio.core.commands import CancelReason, Command, WorkCancelled
from agy_trio.core.construction import NoPublicConstructor
from agy_trio.core.deadlines import Deadlines
from agy_trio.core.dispatch import ToolDispatcher
from agy_trio.core.events import StopReason
from agy_trio.core.fan_out import each_within
from agy_trio.core.observe import Observer
from agy_trio.core.pacing import StartPacer
from agy_trio.core.policy import Approver, PolicySet
from agy_trio.core.quota import QuotaRegistry, QuotaState
from agy_trio.core.settings import AgentConfig, RuntimeConfig
from agy_trio.core.statistics import CommandStatistics, RuntimeStatistics
from agy_trio.core.streaming import ChatResponse, StreamCounters, TurnStream
from agy_trio.errors import (
    AgentNotFound,
    AgyError,
    ConfigError,
    OperationTimeout,
    QuotaExceeded,
    RuntimeClosed,
    WrongThread,
)

__all__ = ["CommandStatistics", "Runtime", "RuntimeStatistics"]

log = logging.getLogger("agy_trio.runtime")

T = TypeVar("T")


@attrs.define(eq=False, weakref_slot=False)
class _AgentRecord:
    """What the runtime keeps about one agent."""

    agent_id: str
    config: AgentConfig
    session: AgentSession
    handle: AgentHandle
    quota: QuotaState
    chat_timeout: float
    # Turns still producing; None while there is none (most of an agent's life).
    turns: set[_Turn] | None = attrs.field(init=False, default=None)


@attrs.define(eq=False, weakref_slot=False)
class _Turn:
    """A running chat turn: its stream, its response, its deadline."""

    runtime: Runtime
    record: _AgentRecord
    stream: TurnStream
    limit: float
    settled: bool = attrs.field(init=False, default=False)
    # Weak: a response its caller dropped must be collectable while the
    # turn runs, so that its finaliser releases the turn.
    response: weakref.ref[ChatResponse] | None = attrs.field(init=False, default=None)

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
        self.runtime._turn_ended(self, error)


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
        # Commands put in the channel and not yet taken out by the dispatch loop
        # (it may briefly undercount, never overcount): while it is positive,
        # receive_nowait() has a command to give.
        self._queued = 0
        # The dispatch loop, while it waits for the next command.
        self._dispatcher: trio.lowlevel.Task | None = None
        self._agents: dict[str, _AgentRecord] = {}
        # Wake-ups: agents woken since they last signalled idle, and the event
        # of each agent someone is waiting on (only waiters pay for an event).
        self._woken: set[str] = set()
        self._wakeup_waiters: dict[str, trio.Event] = {}
        # The PolicySet of the config last used to create an agent (most agents share one).
        self._policies_of: tuple[AgentConfig, PolicySet] | None = None
        self._next_agent_number = 0
        # Every routed command until it completes (shutdown cancels them).
        self._running: set[Command[Any]] = set()
        # operation_timeout per command, chat_timeout per turn: one watchdog.
        self._deadlines: Deadlines[Command[Any] | _Turn] = Deadlines(self._expire)
        self._track = self._deadlines.track
        self._untrack = self._deadlines.untrack
        self._operation_timeout = config.operation_timeout
        self._finisher = self._finish  # bound once: every routed command carries it
        self._observer: Observer | None = None
        self._observed_fn = self._observed  # bound once: every agent's dispatcher asks it
        self._approver: Approver | None = None
        self._approver_fn = self._approving  # bound once, like _observed_fn
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

    def set_observer(self, observer: Observer | None) -> None:
        """Install (or remove, with None) what the runtime reports its commands and turns to.

        See :mod:`agy_trio.core.observe`; :func:`agy_trio.tracing.instrument`
        installs one that records OpenTelemetry spans.
        """
        self._observer = observer

    def _observed(self) -> Observer | None:
        return self._observer

    def set_approver(self, approver: Approver | None) -> None:
        """Install (or remove, with None) who answers ``ask_user`` rules without a handler.

        :mod:`agy_trio.serve` installs one while it serves: such a tool call then
        parks as an approval that a client answers over HTTP. Without one,
        these calls are denied (nobody to ask). See :data:`agy_trio.policy.Approver`.
        """
        self._approver = approver

    @property
    def approver(self) -> Approver | None:
        """Who answers ``ask_user`` rules without a handler now, if anyone."""
        return self._approver

    def _approving(self) -> Approver | None:
        return self._approver

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

    def _services(self) -> tuple[Callable[[], Awaitable[None]], ...]:
        """The runtime's own long-running tasks: the dispatch loop and the watchdog."""
        return (self._dispatch_loop, self._deadlines.watch)

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
            full = True
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            await trio.lowlevel.checkpoint()
            raise self._closed_error() from None
        else:
            full = False
        if full:
            # The channel is full: wait for room (backpressure on callers). Not
            # inside the except clause, which would keep the WouldBlock and its
            # traceback alive for as long as the caller waits.
            try:
                await self._send_channel.send(command)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                raise self._closed_error() from None
        self._queued += 1
        dispatcher = self._dispatcher
        if dispatcher is not None:
            self._dispatcher = None
            trio.lowlevel.reschedule(dispatcher)
        if self._observer is not None:
            self._observer.command_submitted(command)
        return await command.wait()

    def _wake_dispatcher(self) -> None:
        """Count one more queued command and wake the dispatch loop if it waits."""
        self._queued += 1
        dispatcher = self._dispatcher
        if dispatcher is not None:
            self._dispatcher = None
            trio.lowlevel.reschedule(dispatcher)

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
        self._wake_dispatcher()
        return True

    async def _submit_later(self, command: Command[Any]) -> None:
        # On a closed channel it is dropped: shutdown ends every agent anyway.
        with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            await self._send_channel.send(command)
            self._wake_dispatcher()

    def _closed_error(self) -> AgyError:
        return self._closed_reason or RuntimeClosed("the runtime is shut down")

    # ------------------------------------------------------------------ dispatch

    async def _dispatch_loop(self) -> None:
        """Route every command that comes through the channel, in order, in batches.

        The loop takes commands out with ``receive_nowait`` while it knows some
        are queued, so a batch costs no scheduler round per command, and waits
        for the next one by parking until a caller wakes it (cheaper than
        ``receive()``, which would raise and catch ``WouldBlock`` to find out).
        """
        receive_nowait = self._receive_channel.receive_nowait
        route = self._route
        task = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._dispatcher = None
            return trio.lowlevel.Abort.SUCCEEDED

        while True:
            if not self._queued:
                self._dispatcher = task
                await trio.lowlevel.wait_task_rescheduled(abort)
                continue
            now = trio.current_time()
            while self._queued:
                self._queued -= 1
                try:
                    command = receive_nowait()
                except trio.WouldBlock:
                    # Shutdown took what was left out of the channel itself.
                    self._queued = 0
                    break
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    # Shutdown closes the channel once it has failed what was left in it.
                    return
                route(command, now)

    def _route(self, command: Command[Any], now: float) -> None:
        """Send one command on its way; never blocks, never raises."""
        if command.dropped:
            # Its caller gave up before it ran.
            if self._observer is not None:
                self._observer.command_answered(command, outcome.Error(WorkCancelled()))
            return
        command.start()
        command.finisher = self._finisher
        command.started = time.perf_counter()
        self._running.add(command)
        spec = command.spec
        if spec.timed:
            limit = self._operation_timeout
            self._track(command, limit, now + limit)
        try:
            record = self._agents.get(command.agent_id)
            if spec.route is cmds.Route.SESSION:
                if record is None:
                    raise AgentNotFound(f"{spec.name}: no agent {command.agent_id!r}")
                record.session.submit(command)
            elif not spec.needs_agent:
                self._spawn(command, self._create_agent, *command.args)
            elif record is None:
                raise AgentNotFound(f"{spec.name}: no agent {command.agent_id!r}")
            elif spec.is_llm:
                self._route_message(record, command)
            elif spec is cmds.SIGNAL_IDLE:
                self._woken.discard(record.agent_id)
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
        result: outcome.Outcome[Any] | None = None
        handed_off = False
        try:
            with scope:
                value = await fn(command, *args)
                if value is _HANDED_OFF:
                    handed_off = True
                else:
                    result = outcome.Value(value)
        except Exception as exc:
            result = outcome.Error(exc)
        finally:
            # Even when a cancellation unwinds this task, the caller is answered.
            if not handed_off:
                command.complete(result if result is not None else outcome.Error(WorkCancelled()))

    def _finish(self, command: Command[Any], result: outcome.Outcome[Any]) -> outcome.Outcome[Any]:
        """Translate a command's outcome for its caller and do the bookkeeping."""
        self._running.discard(command)
        deadline = self._untrack(command)
        spec = command.spec
        if type(result) is outcome.Value:
            ok = True
            if spec.is_llm:
                record = self._agents.get(command.agent_id)
                if spec is cmds.CHAT:
                    result = self._start_turn(record, command, result.value, deadline)
                    ok = type(result) is outcome.Value
                elif record is not None:
                    record.quota.record_success()
        else:
            ok = False
            error = result.error  # type: ignore[attr-defined]
            if type(error) is WorkCancelled:
                result = outcome.Error(self._cancelled_error(command))
            elif isinstance(error, QuotaExceeded):
                record = self._agents.get(command.agent_id)
                if record is not None and spec.is_llm:
                    self._quota_hit(record.quota, error)
            elif not isinstance(error, AgyError | trio.Cancelled):
                _logger(command.agent_id, command.name).error(
                    "command failed unexpectedly", exc_info=error
                )
        # Statistics: count, summed and worst latency per command name.
        elapsed = time.perf_counter() - command.started
        entry = self._per_command.get(spec.name)
        if entry is None:
            entry = self._per_command[spec.name] = [0.0, 0.0, 0.0, 0.0]
        if ok:
            self._completed += 1
            entry[0] += 1
        else:
            self._failed += 1
            entry[1] += 1
        entry[2] += elapsed
        if elapsed > entry[3]:
            entry[3] = elapsed
        if self._quiet is not None:
            self._check_quiet()
        if self._observer is not None:
            self._observer.command_answered(command, result)
        return result

    def _cancelled_error(self, command: Command[Any]) -> BaseException:
        reason = command.cancel_reason
        if reason is CancelReason.CALLER:
            return WorkCancelled()  # the caller gets its own Cancelled
        if reason is CancelReason.TIMEOUT:
            return OperationTimeout(command.name, command.limit)
        return self._closed_error()

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
        cached = self._policies_of
        if cached is not None and cached[0] is config:
            policies = cached[1]
        else:
            policies = config.policy_set
            self._policies_of = (config, policies)
        services = ToolDispatcher(
            agent_id,
            config.tools,
            policies,
            config.hooks,
            handler_timeout=self.config.handler_timeout,
            observe=self._observed_fn,
            approver=self._approver_fn,
        )
        session = await self.backend.create_agent(agent_id, config, services)
        handle = AgentHandle._create(agent_id, config, session.conversation_id, self)
        chat_timeout = config.chat_timeout
        if chat_timeout is None:
            chat_timeout = self.config.chat_timeout
        self._agents[agent_id] = _AgentRecord(
            agent_id, config, session, handle, self.quota.state_for(config.quota_key), chat_timeout
        )
        if log.isEnabledFor(logging.DEBUG):  # building the adapter is not free
            _logger(agent_id, command.name).debug("agent created")
        return agent_id

    async def _end_agent(self, command: Command[Any], record: _AgentRecord, how: str) -> None:
        # Unregister first: later commands get AgentNotFound instead of racing the shutdown.
        if self._agents.pop(record.agent_id, None) is None:
            await trio.lowlevel.checkpoint()
            raise AgentNotFound(f"{command.name}: no agent {record.agent_id!r}")
        self._woken.discard(record.agent_id)
        self._wakeup_waiters.pop(record.agent_id, None)
        await record.session.end(how)
        if log.isEnabledFor(logging.DEBUG):
            _logger(record.agent_id, command.name).debug("agent ended (%s)", how)

    # ------------------------------------------------------------------ turns

    def _route_message(self, record: _AgentRecord, command: Command[Any]) -> None:
        """Route ``chat`` or ``send``: wait for quota and pacing only if there is any."""
        # An unread turn must not hold the agent: the new message supersedes the
        # reader's backpressure, and the old turn runs to its end.
        if record.turns:
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
        agent_id = record.agent_id
        self._woken.add(agent_id)
        if self._wakeup_waiters:
            event = self._wakeup_waiters.pop(agent_id, None)
            if event is not None:
                event.set()
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
        if record.turns is None:
            record.turns = set()
        record.turns.add(turn)
        self._turns.add(turn)
        self._turns_started += 1
        if self._observer is not None:
            self._observer.turn_started(turn, command, record.config)
        stream.add_done_callback(turn.ended)
        return outcome.Value(response)

    def _turn_ended(self, turn: _Turn, error: BaseException | None) -> None:
        if self._observer is not None:
            self._observer.turn_ended(turn, turn.stream.usage, error)
        self._untrack(turn)
        self._turns.discard(turn)
        record = turn.record
        if record.turns is not None:
            record.turns.discard(turn)
            if not record.turns:
                record.turns = None
        if self._quiet is not None:
            self._check_quiet()

    def _quota_hit(self, quota: QuotaState, error: QuotaExceeded) -> None:
        self._quota_hits += 1
        quota.record_hit(error.retry_after)

    async def _wait_for_wakeup(
        self, command: Command[Any], record: _AgentRecord, timeout: float
    ) -> bool:
        agent_id = record.agent_id
        if agent_id in self._woken:
            self._woken.discard(agent_id)
            await trio.lowlevel.checkpoint()
            return True
        event = self._wakeup_waiters.get(agent_id)
        if event is None:
            event = self._wakeup_waiters[agent_id] = trio.Event()
        with trio.move_on_after(timeout):
            await event.wait()
        woken = agent_id in self._woken
        self._woken.discard(agent_id)
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

        if not await each_within(timeout, end, records):
            log.error("agents did not shut down within %g s", timeout)


def _nothing() -> None:
    """A callback that does nothing (probes whether a Trio run still takes callbacks)."""


def _running_trio_token() -> trio.lowlevel.TrioToken | None:
    """The token of the Trio run the calling code runs in, or None outside any."""
    try:
        return trio.lowlevel.current_trio_token()
    except RuntimeError:
        return None
