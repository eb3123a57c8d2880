"""Served turns: each runs in the server's nursery, recorded into its :class:`TurnLog`.

A request that starts a turn does not own it. :meth:`TurnRunner.start` opens
the turn's log, attaches a first reader (the request's own response) and runs
the turn in the server's nursery, where every event it produces is recorded
once. Readers come and go (``GET /v1/turns/{id}/events`` re-attaches); the turn
only notices when the last one leaves: it then goes on for ``reattach_grace``
seconds, and is cancelled (recorded as ``cancelled``, the agent left free) if
nobody came back. A turn parked on an approval has no reader by design, so
the grace never runs while it is parked; the approval's own timeout bounds it.

Protocol renderers start turns with :meth:`TurnRunner.start` and read them
with the returned :class:`~agy_trio.serve.turn_log.TurnReader`::

    log, reader = await runner.start(handle, prompt)
    async with reader:
        async for event in reader:
            ...  # render event.payload
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, cast

import trio

from agy_trio.core import events
from agy_trio.core.agent import AgentHandle
from agy_trio.core.content import Content
from agy_trio.core.exception_groups import leaves
from agy_trio.core.streaming import ChatResponse
from agy_trio.errors import AgyError, ConfigError, QuotaExceeded, RuntimeClosed
from agy_trio.serve.turn_log import (
    Text,
    Thought,
    ToolFinished,
    ToolStarted,
    TurnFailed,
    TurnFinished,
    TurnLog,
    TurnLogs,
    TurnReader,
    UsageReport,
    new_id,
)
from agy_trio.serve.wire import Redactor, error_message, error_type

__all__ = ["DEFAULT_REATTACH_GRACE", "ServedTurn", "TurnRunner"]

log = logging.getLogger("agy_trio.serve")

DEFAULT_REATTACH_GRACE = 5.0
"""Seconds a turn goes on after its last reader left (``--reattach-grace``)."""


class ServedTurn:
    """One turn the server runs: its log, its cancel scope, its announced tool calls."""

    __slots__ = ("_announced", "closing", "done", "handle", "log", "scope")

    def __init__(self, handle: AgentHandle, log: TurnLog) -> None:
        self.handle = handle
        self.log = log
        self.scope = trio.CancelScope()
        self.closing = False  # the server is stopping: record RuntimeClosed
        self.done = trio.Event()
        # Tool calls recorded before the backend reported them (an approval
        # announces its call first), matched again by name and arguments.
        self._announced: list[ToolStarted] = []

    def announce_tool(self, name: str, arguments: Mapping[str, Any]) -> str:
        """Record that the model called ``name`` now (before its outcome); its call id."""
        started = ToolStarted(new_id("call"), name, arguments)
        self._announced.append(started)
        self.log.record(started)
        return started.call_id

    def _tool_call(self, event: events.ToolCall) -> None:
        arguments = dict(event.arguments)
        wire_arguments = events.json_safe(arguments)
        for index, started in enumerate(self._announced):
            if started.name == event.name and started.arguments == wire_arguments:
                del self._announced[index]
                call_id = started.call_id
                break
        else:
            call_id = event.call_id or new_id("call")
            self.log.record(ToolStarted(call_id, event.name, arguments, event.server_name))
        self.log.record(
            ToolFinished(
                call_id, event.name, arguments, event.result, event.error, event.server_name
            )
        )


class TurnRunner:
    """Runs served turns in the server's nursery and keeps their logs.

    Args:
        logs: Where the turns' logs are kept.
        redact: Masks secrets in recorded error messages.
        reattach_grace: Seconds a turn without readers goes on (0: cancel at once).
    """

    def __init__(
        self, logs: TurnLogs, redact: Redactor, *, reattach_grace: float = DEFAULT_REATTACH_GRACE
    ) -> None:
        if isinstance(reattach_grace, bool) or not isinstance(reattach_grace, int | float):
            raise ConfigError("must be a number of seconds", field="reattach_grace")
        if not reattach_grace >= 0:
            raise ConfigError("must not be negative", field="reattach_grace")
        self.logs = logs
        self.reattach_grace = float(reattach_grace)
        self._redact = redact
        self._nursery: trio.Nursery | None = None
        self._turns: dict[str, ServedTurn] = {}
        self._closing = False
        self.on_turn_end: list[Callable[[ServedTurn], None]] = []
        """Called with each turn once its log ended (approvals drop what it left)."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Host the turns until cancelled (the server's lifespan runs this)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def current(self, agent_id: str) -> ServedTurn | None:
        """The turn ``agent_id`` runs through the server now, if any."""
        current = self.logs.current(agent_id)
        return self._turns.get(current.turn_id) if current is not None else None

    def turn(self, turn_id: str) -> ServedTurn | None:
        """The running turn ``turn_id``, if it still runs."""
        return self._turns.get(turn_id)

    async def start(self, handle: AgentHandle, prompt: Content) -> tuple[TurnLog, TurnReader]:
        """Start a turn of ``handle`` in the server's nursery.

        Returns once the turn has started, so that what refuses it (a prompt
        over the model's limit, quota, an agent gone) is raised here, for the
        caller to answer with an HTTP status before any stream.

        Returns:
            The turn's log, and a reader already attached from its first event
            (so the grace cannot cancel the turn before the caller reads).

        Raises:
            RuntimeClosed: The server is stopping (or is not running).
            AgyError: The turn was refused before it started (nothing recorded
                is left to read: the turn's log ends with the failure).
        """
        if self._closing or self._nursery is None:
            await trio.lowlevel.checkpoint()
            raise RuntimeClosed("the server is shutting down")
        turn_log = self.logs.new(handle.agent_id)
        turn = ServedTurn(handle, turn_log)
        self._turns[turn_log.turn_id] = turn
        reader = turn_log.attach()
        try:
            await self._nursery.start(self._run_turn, turn, prompt)
        except BaseException as error:
            reader.close()
            refusal = leaves(error) if isinstance(error, BaseExceptionGroup) else [error]
            if len(refusal) == 1 and isinstance(refusal[0], AgyError):
                raise refusal[0] from None
            raise
        return turn_log, reader

    async def _run_turn(
        self, turn: ServedTurn, prompt: Content, *, task_status: trio.TaskStatus[None]
    ) -> None:
        started = False
        try:
            # One scope for the whole turn, its start included: the server
            # stopping (or the grace) cancels it wherever it is.
            with turn.scope:
                response = await self._begin(turn, prompt)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._enforce_grace, turn)
                    task_status.started()
                    started = True
                    await self._drive(turn, response)
                    nursery.cancel_scope.cancel()
            if not started:  # cancelled before it started: only a stopping server does that
                self._fail(turn.log, RuntimeClosed("the server is shutting down"))
                raise RuntimeClosed("the server is shutting down")
        finally:
            self._turns.pop(turn.log.turn_id, None)
            self.logs.ended(turn.log)
            for callback in self.on_turn_end:
                callback(turn)
            turn.done.set()

    async def _begin(self, turn: ServedTurn, prompt: Content) -> ChatResponse:
        """Start the turn at the runtime; what refuses it is recorded, and raised."""
        try:
            return await turn.handle.chat(prompt)
        except AgyError as error:
            self._fail(turn.log, error)
            raise

    async def _drive(self, turn: ServedTurn, response: ChatResponse) -> None:
        """Record the started turn's events (inside ``turn.scope``) until its end."""
        turn_log = turn.log
        text: list[str] = []
        structured: Any = None
        try:
            # Leaving the block early (cancellation) cancels the turn at the
            # backend; aclosing: a cancel while recording closes the events'
            # generator now, not in the garbage collector.
            stream = cast(AsyncGenerator[events.ChatEvent, None], response.events())
            async with response, contextlib.aclosing(stream):
                # Read to the very end, past TurnEnd: a response that has not
                # seen the end of its stream would cancel the turn on exit.
                async for event in stream:
                    if turn_log.finished:
                        # The server's shutdown already ended the log (RuntimeClosed):
                        # what the backend still streams has no reader; leaving the
                        # block cancels the turn at the backend.
                        return
                    kind = type(event)
                    if kind is events.TextDelta:
                        assert isinstance(event, events.TextDelta)
                        text.append(event.text)
                        turn_log.record(Text(event.text))
                    elif kind is events.ThoughtDelta:
                        assert isinstance(event, events.ThoughtDelta)
                        turn_log.record(Thought(event.text))
                    elif kind is events.ToolCall:
                        assert isinstance(event, events.ToolCall)
                        turn._tool_call(event)
                    elif kind is events.TurnEnd:
                        assert isinstance(event, events.TurnEnd)
                        structured = event.structured_output
                        turn_log.record(UsageReport(event.usage))
            usage = response.usage or events.Usage()
            stop_reason = response.stop_reason or events.StopReason.END_TURN
            if not turn_log.finished:
                turn_log.record(TurnFinished(stop_reason, "".join(text), usage, structured))
        except AgyError as error:
            self._fail(turn_log, error)
        except Exception as error:
            log.exception("turn %s of %s failed", turn_log.turn_id, turn_log.agent_id)
            self._fail(turn_log, error)
        finally:
            # Cancelled (the scope): what the readers are told.
            if not turn_log.finished:
                if turn.closing:
                    self._fail(turn_log, RuntimeClosed("the server is shutting down"))
                else:
                    turn_log.record(
                        TurnFinished(events.StopReason.CANCELLED, "".join(text), events.Usage())
                    )

    def _fail(self, turn_log: TurnLog, error: BaseException) -> None:
        if turn_log.finished:
            return
        retry_after = error.retry_after if isinstance(error, QuotaExceeded) else None
        turn_log.record(
            TurnFailed(error_type(error), error_message(error, self._redact), retry_after)
        )

    async def _enforce_grace(self, turn: ServedTurn) -> None:
        """Cancel the turn once it has had no reader (and no approval) for the grace."""
        turn_log = turn.log
        while not turn_log.finished:
            since = turn_log.unattended_since
            if since is None:
                await turn_log.wait_changed()
                continue
            # Counted from the moment the last reader left, not from when this
            # task noticed.
            with trio.CancelScope(deadline=since + self.reattach_grace) as timer:
                while turn_log.unattended_since == since and not turn_log.finished:
                    await turn_log.wait_changed()
            if timer.cancelled_caught:
                log.info(
                    "turn %s of %s: no reader came back within %g s; cancelling it",
                    turn_log.turn_id,
                    turn_log.agent_id,
                    self.reattach_grace,
                )
                turn.scope.cancel()
                return

    async def close(self, grace: float) -> None:
        """Cancel every running turn (recorded as ``RuntimeClosed``) and wait ``grace`` s at most.

        New turns are refused from now on. Idempotent.
        """
        self._closing = True
        turns = list(self._turns.values())
        for turn in turns:
            turn.closing = True
            # Recorded first, so that readers learn it at once even when the
            # backend's own cancel takes a while (a stalled harness).
            self._fail(turn.log, RuntimeClosed("the server is shutting down"))
            turn.scope.cancel()
        with trio.move_on_after(grace):
            for turn in turns:
                await turn.done.wait()
        if any(not turn.done.is_set() for turn in turns):
            log.warning("served turns did not stop within %g s", grace)
        await trio.lowlevel.checkpoint()
