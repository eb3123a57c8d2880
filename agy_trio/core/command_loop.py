"""The command channel and its dispatch loop: how a command travels from its caller to who answers.

Callers (``AgentHandle`` methods) put :class:`~agy_trio.core.commands.Command`
values on a bounded Trio memory channel and wait on each command's one-shot
reply. One dispatch loop, owned by the runtime's nursery, routes them: a
command the backend answers goes straight to the agent's session, with no
task of its own, and the session's answer completes the caller's reply
directly; a command the runtime answers itself (creating and ending agents,
waiting out a quota backoff, wake-ups) runs as a task. Commands never queue
behind one another.

Every routed command carries :meth:`CommandLoop.finish`, which translates its
outcome for the caller and keeps the statistics.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import outcome
import trio
import trio.lowlevel

from agy_trio.core import commands as cmds
from agy_trio.core.commands import CancelReason, Command, WorkCancelled
from agy_trio.core.contract import Ending
from agy_trio.core.lifecycle import AgentLifecycle, agent_logger
from agy_trio.core.runtime_state import RunningTurn, RuntimeState
from agy_trio.core.statistics import CommandStatistics
from agy_trio.core.threads import call_soon_in_run, running_trio_token
from agy_trio.core.wakeups import Wakeups
from agy_trio.errors import AgentNotFound, AgyError, OperationTimeout, QuotaExceeded, WrongThread

__all__ = ["CommandLoop"]

_ENDINGS: dict[cmds.CommandSpec[None], Ending] = {
    cmds.SHUTDOWN_AGENT: "shutdown",
    cmds.DELETE: "delete",
    cmds.DISCONNECT: "disconnect",
}


class CommandLoop:
    """The command channel of one runtime, its dispatch loop and its per-command bookkeeping.

    Args:
        state: The runtime's shared state.
        lifecycle: Answers the commands that create and end agents and carry messages.
        wakeups: Answers ``signal_idle`` and ``wait_for_wakeup``.
    """

    def __init__(self, state: RuntimeState, lifecycle: AgentLifecycle, wakeups: Wakeups) -> None:
        self._state = state
        self._lifecycle = lifecycle
        self._wakeups = wakeups
        self._token = state.token
        self._agents = state.agents
        self._running = state.running
        send, receive = trio.open_memory_channel[Command[Any]](state.config.channel_capacity)
        self._send_channel = send
        self._receive_channel = receive
        # Commands put in the channel and not yet taken out by the dispatch loop
        # (it may briefly undercount, never overcount): while it is positive,
        # receive_nowait() has a command to give.
        self._queued = 0
        # The dispatch loop, while it waits for the next command.
        self._dispatcher: trio.lowlevel.Task | None = None
        self._track = state.deadlines.track
        self._untrack = state.deadlines.untrack
        self._operation_timeout = state.config.operation_timeout
        self._finisher = self.finish  # bound once: every routed command carries it
        self.completed = 0
        self.failed = 0
        # Per command name: completed, failed, summed and worst latency.
        self._per_command: dict[str, list[float]] = {}

    # ------------------------------------------------------------------ submission

    async def submit(self, command: Command[Any]) -> Any:
        """Queue ``command`` (waiting for room in the channel) and wait for its answer."""
        try:
            foreign = trio.lowlevel.current_trio_token() is not self._token
        except RuntimeError:
            foreign = True
        if foreign:
            raise WrongThread(
                f"{command.name}: the runtime was called from outside the Trio run that "
                "opened it; from another thread use Runtime.from_thread"
            )
        state = self._state
        if state.closing:
            await trio.lowlevel.checkpoint()
            raise state.closed_error()
        try:
            self._send_channel.send_nowait(command)
        except trio.WouldBlock:
            full = True
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            await trio.lowlevel.checkpoint()
            raise state.closed_error() from None
        else:
            full = False
        if full:
            # The channel is full: wait for room (backpressure on callers). Not
            # inside the except clause, which would keep the WouldBlock and its
            # traceback alive for as long as the caller waits.
            try:
                await self._send_channel.send(command)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                raise state.closed_error() from None
        # _wake_dispatcher, written out: this is every command's path.
        self._queued += 1
        dispatcher = self._dispatcher
        if dispatcher is not None:
            self._dispatcher = None
            trio.lowlevel.reschedule(dispatcher)
        if state.observer is not None:
            state.observer.command_submitted(command)
        return await command.wait()

    def _wake_dispatcher(self) -> None:
        """Count one more queued command and wake the dispatch loop if it waits."""
        self._queued += 1
        dispatcher = self._dispatcher
        if dispatcher is not None:
            self._dispatcher = None
            trio.lowlevel.reschedule(dispatcher)

    def submit_nowait(self, command: Command[Any]) -> bool:
        """Queue a command nobody waits for (``try_shutdown``), from any thread.

        Returns False if it was refused (the runtime is closing or its channel
        is full). From another thread the command is queued by the Trio thread
        soon after; it is never lost while the runtime runs.
        """
        if running_trio_token() is not self._token:
            # Another thread, another run, or plain code on this thread after
            # (or outside) the run: only the token reaches the run safely.
            return call_soon_in_run(self._token, self.submit_nowait, command)
        state = self._state
        if state.closing:
            return False
        try:
            self._send_channel.send_nowait(command)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            if command.spec is cmds.SHUTDOWN_AGENT and not state.closing:
                # Never lost: a full channel only delays it.
                state.nursery.start_soon(self._submit_later, command)
                return True
            return False
        self._wake_dispatcher()
        return True

    async def _submit_later(self, command: Command[Any]) -> None:
        # On a closed channel it is dropped: shutdown ends every agent anyway.
        with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            await self._send_channel.send(command)
            self._wake_dispatcher()

    @property
    def queued(self) -> int:
        """Commands waiting in the channel."""
        return self._send_channel.statistics().current_buffer_used

    # ------------------------------------------------------------------ dispatch

    async def dispatch_loop(self) -> None:
        """Route every command that comes through the channel, in order, in batches.

        The loop takes commands out with ``receive_nowait`` while it knows some
        are queued, so a batch costs no scheduler round per command, and waits
        for the next one by parking until a caller wakes it.

        That park is hand-built rather than ``await receive()`` (which raises
        and catches ``WouldBlock`` to learn there is nothing, then makes a
        scheduler round per command): the ``primitives`` benchmark
        (benchmarks/RESULTS.md) measured 12.4 against 16.0 µs of CPU per
        command for one caller, and par (7.4 against 7.3 µs) for 100 callers
        at once.
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
        state = self._state
        if command.dropped:
            # Its caller gave up before it ran.
            if state.observer is not None:
                state.observer.command_answered(command, outcome.Error(WorkCancelled()))
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
                state.spawn(command, self._lifecycle.create_agent, *command.args)
            elif record is None:
                raise AgentNotFound(f"{spec.name}: no agent {command.agent_id!r}")
            elif spec.is_llm:
                self._lifecycle.route_message(record, command)
            elif spec is cmds.SIGNAL_IDLE:
                self._wakeups.signal_idle(record.agent_id)
                command.complete(outcome.Value(None))
            elif spec is cmds.WAIT_FOR_WAKEUP:
                state.spawn(command, self._wait_for_wakeup, record.agent_id, *command.args)
            else:
                state.spawn(command, self._lifecycle.end_agent, record, _ENDINGS[spec])
        except Exception as exc:
            command.complete(outcome.Error(exc))

    async def _wait_for_wakeup(self, _command: Command[Any], agent_id: str, timeout: float) -> bool:
        return await self._wakeups.wait(agent_id, timeout)

    # ------------------------------------------------------------------ answers

    def finish(self, command: Command[Any], result: outcome.Outcome[Any]) -> outcome.Outcome[Any]:
        """Translate a command's outcome for its caller and do the bookkeeping."""
        state = self._state
        self._running.discard(command)
        deadline = self._untrack(command)
        spec = command.spec
        if type(result) is outcome.Value:
            ok = True
            if spec.is_llm:
                record = self._agents.get(command.agent_id)
                if spec is cmds.CHAT:
                    result = self._lifecycle.start_turn(record, command, result.value, deadline)
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
                    state.quota_hit(record.quota, error)
            elif not isinstance(error, AgyError | trio.Cancelled):
                agent_logger(command.agent_id, command.name).error(
                    "command failed unexpectedly", exc_info=error
                )
        # Statistics: count, summed and worst latency per command name.
        elapsed = time.perf_counter() - command.started
        entry = self._per_command.get(spec.name)
        if entry is None:
            entry = self._per_command[spec.name] = [0.0, 0.0, 0.0, 0.0]
        if ok:
            self.completed += 1
            entry[0] += 1
        else:
            self.failed += 1
            entry[1] += 1
        entry[2] += elapsed
        if elapsed > entry[3]:
            entry[3] = elapsed
        if state.quiet is not None:
            state.check_quiet()
        if state.observer is not None:
            state.observer.command_answered(command, result)
        return result

    def _cancelled_error(self, command: Command[Any]) -> BaseException:
        reason = command.cancel_reason
        if reason is CancelReason.CALLER:
            return WorkCancelled()  # the caller gets its own Cancelled
        if reason is CancelReason.TIMEOUT:
            return OperationTimeout(command.name, command.limit)
        return self._state.closed_error()

    def expire(self, item: Command[Any] | RunningTurn) -> None:
        """The watchdog's verdict: ``item`` ran past its time limit."""
        if isinstance(item, Command):
            item.cancel(CancelReason.TIMEOUT)
        else:
            self._lifecycle.expire_turn(item)

    def command_statistics(self) -> dict[str, CommandStatistics]:
        """Counts and latency per command name."""
        return {
            name: CommandStatistics(int(v[0]), int(v[1]), v[2], v[3])
            for name, v in self._per_command.items()
        }

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Refuse new commands (those queued stay, for :meth:`fail_queued`)."""
        self._send_channel.close()

    def has_queued(self) -> bool:
        """Whether commands wait in the channel (the dispatch loop starts them)."""
        return bool(self._receive_channel.statistics().current_buffer_used)

    def fail_queued(self) -> None:
        """Fail every command still queued, without running it, and close the channel."""
        error = self._state.closed_error
        while True:
            try:
                command = self._receive_channel.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            if not command.dropped:
                command.start()
                command.complete(outcome.Error(error()))
        self._receive_channel.close()
