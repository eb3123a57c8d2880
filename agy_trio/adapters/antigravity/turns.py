"""One agent's turns on its SDK conversation: queued, streamed, retried, cancelled.

The turns of an agent run one at a time (:class:`TurnRunner` holds the turn
slot). Each :class:`SdkTurn` streams its events into a
:class:`~agy_trio.adapters.stream_bridge.StreamBridge` that the Trio side
reads; the :class:`StepPump` turns the SDK's steps into those events.

Two of the SDK's behaviours shape this module:

* **Cancellation.** Cancelling the task that reads an SDK response does not
  stop the turn; only the SDK's own ``cancel()`` does. Every cancel path here
  (:meth:`TurnRunner.cancel_turns`, a reader that went away, a task cancelled
  at shutdown) calls it, and the SDK's ``AntigravityCancelledError`` (a
  subclass of ``asyncio.CancelledError``) is told apart from a cancellation of
  our own task, so the next turn starts at once.
* **Fatal errors.** A turn that fails with an error that kills the SDK
  session is raised typed and the session reopened
  (:mod:`~agy_trio.adapters.antigravity.recovery`) before the next turn may
  start. A model request that failed at the connection level before the
  turn produced anything is asked again
  (:class:`~agy_trio.adapters.antigravity.transient.ConnectionRetry`, on by
  default); under a :class:`~agy_trio.adapters.antigravity.retry.RetryPolicy`,
  another transient failure is retried in the same turn too.

And one of the harness's: when it cannot reach the model endpoint it may
retry on its own until the turn times out. An
:class:`~agy_trio.adapters.antigravity.reachability.UnreachableWatch` gives
each attempt up after ``unreachable_timeout`` instead, with the cause.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

# Named apart from agy_trio.core.events, which this module uses too.
from agy_trio.adapters.antigravity import events as sdk_events
from agy_trio.adapters.antigravity.errors import (
    classify_error,
    describe,
    is_cancellation,
    is_fatal,
)
from agy_trio.adapters.antigravity.reachability import UnreachableWatch
from agy_trio.adapters.antigravity.recovery import Recovery
from agy_trio.adapters.antigravity.sdk import last_stop_reason, load_sdk
from agy_trio.adapters.antigravity.steps import StepPump
from agy_trio.adapters.antigravity.tools import TrioBridge
from agy_trio.adapters.antigravity.transient import is_refusal
from agy_trio.core import events
from agy_trio.core.content import Part
from agy_trio.core.contract import TurnSink
from agy_trio.errors import AgyError, BackendError, ChannelClosed

__all__ = ["SdkTurn", "StepPump", "Turn", "TurnRunner"]

log = logging.getLogger("agy_trio.antigravity")


class SdkTurn:
    """One turn of one agent; lives on its host loop.

    Args:
        content: The prompt as SDK content.
        bridge: Where its events go (None: nobody reads them).
    """

    def __init__(self, content: list[Any], bridge: TurnSink | None) -> None:
        self.content = content
        self.bridge = bridge
        self.started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None
        self.cancel_requested = False
        self.cancelled = asyncio.Event()  # set with cancel_requested, to cut waits short
        self.produced = False
        # Whether the prompt has reached the SDK: from then on it is part of
        # the conversation, which the caller was promised when the turn started.
        self.sent = False
        # Set once the harness has recorded the prompt (its user step came
        # back): halting the turn before that can drop the prompt from the
        # conversation, so a cancel waits for it (bounded, see ACK_GRACE).
        self.acknowledged = asyncio.Event()
        self.usage = events.Usage()
        # The agent's usage so far by trajectory (its own, each subagent's).
        self.trajectory_usages: dict[str, events.Usage] = {}
        # How the turn's stream ended, once it has.
        self.stopped: events.StopReason | None = None
        # The conversation the prompt was last sent on, and the length of its
        # history just before: the turn's own steps come after.
        self.history_mark: tuple[Any, int] | None = None
        # Ids of the SDK's tool-call chunks for our own tools, waiting for the
        # tool wrapper to pick them up (the SDK calls the tool without its id).
        self.pending_ids: dict[str, collections.deque[str | None]] = collections.defaultdict(
            collections.deque
        )
        # Where each of those calls was made: (depth, trajectory id); depth > 0
        # for a subagent's call.
        self.call_steps: dict[str, tuple[int, str]] = {}
        self.tool_tasks: set[asyncio.Task[Any]] = set()
        # Set when the harness reports a truncated or blocked answer.
        self.refusal: AgyError | None = None
        # What the model handed over through the finish tool in this turn.
        self.structured_output: Any = None

    async def emit(self, event: events.ChatEvent) -> None:
        """Stream ``event``, waiting while the reader is behind."""
        self.produced = True
        if self.bridge is not None:
            await self.bridge.put(event)

    def emit_nowait(self, event: events.ChatEvent) -> None:
        """Stream ``event`` without waiting (a tool outcome)."""
        # Tool outcomes come from the SDK's tool tasks, not from the turn's
        # pump: they skip backpressure so that the bridge keeps one producer
        # that may wait.
        self.produced = True
        if self.bridge is not None:
            self.bridge.put_nowait(event)

    def end(self, stop: events.StopReason) -> None:
        """End the stream with a :class:`TurnEnd`."""
        self.stopped = stop
        if self.bridge is not None:
            self.bridge.put_nowait(
                events.TurnEnd(
                    self.usage, stop, self.structured_output, dict(self.trajectory_usages)
                )
            )
            self.bridge.finish()

    def fail(self, error: BaseException) -> None:
        """End the stream with ``error``."""
        if self.bridge is not None:
            self.bridge.finish(error)
        else:
            log.warning("a turn started by send() failed: %s", describe(error))


Turn = SdkTurn
"""The earlier name of :class:`SdkTurn`."""


class _ConsumerGone(Exception):
    """The reader of a turn's stream went away; the turn is cancelled."""


class _Cancelled(Exception):
    """A turn cancelled before the SDK started it."""


class TurnRunner:
    """The turns of one agent: one at a time, streamed, retried, cancelled.

    Lives on the agent's host loop.

    Args:
        recovery: The liveness and reopening of the agent's SDK conversation.
        bridge: The agent's tools and hooks.

    Attributes:
        current: The turn playing now (holding the turn slot), if any.
        last_usage: Token usage of the last turn that completed.
    """

    def __init__(self, recovery: Recovery, bridge: TrioBridge) -> None:
        self.recovery = recovery
        self.bridge = bridge
        self.conversation = conversation = recovery.conversation
        self.context = conversation.context
        self.agent_id = conversation.agent_id
        self.turns: set[SdkTurn] = set()
        self.current: SdkTurn | None = None
        self.last_usage = events.Usage()
        # The SDK records an interrupted answer as if it were whole: the step
        # indices of the prompts whose turn was interrupted, for the history.
        self.interrupted: set[int] = set()
        # Whether the model endpoint has answered this agent at least once.
        self.reached = False
        self._lock: asyncio.Lock | None = None
        self._idle: asyncio.Event | None = None

    def loop_state(self) -> tuple[asyncio.Lock, asyncio.Event]:
        """The turn slot and the idle flag, created on the host loop at first use."""
        if self._lock is None or self._idle is None:
            self._lock = asyncio.Lock()
            self._idle = asyncio.Event()
            self._idle.set()
        return self._lock, self._idle

    async def start_turn(self, parts: Sequence[Part], bridge: TurnSink | None) -> SdkTurn:
        """Queue a turn; return once it holds the agent's turn slot."""
        _, idle = self.loop_state()
        self.recovery.check_open()
        turn = SdkTurn(sdk_events.sdk_content(parts), bridge)
        task = asyncio.get_running_loop().create_task(self._run_turn(turn))
        turn.task = task
        self.turns.add(turn)
        idle.clear()
        task.add_done_callback(lambda _: self._turn_done(turn))
        try:
            await asyncio.shield(turn.started)
        except asyncio.CancelledError:
            started = turn.started
            if started.done() and not started.cancelled() and started.exception() is None:
                # The turn holds the slot already and its prompt is on its way:
                # it went, so the caller gets it (as if the cancel came later).
                return turn
            current = asyncio.current_task()
            if turn.cancel_requested and not (current is not None and current.cancelling()):
                # Not our caller: the agent's own cancel stopped the queued turn.
                raise BackendError(QUEUED_CHAT_CANCELLED) from None
            if not task.done():  # our caller gave up: the turn must not run on alone
                await self.cancel_turns([turn])
            raise
        return turn

    def _turn_done(self, turn: SdkTurn) -> None:
        if not turn.started.done():
            # Cancelled before its first step (agent.cancel() reached a turn
            # queued a moment earlier): _run_turn never ran, so nothing else
            # tells start_turn, whose caller would wait for the slot forever.
            turn.started.cancel()
            turn.end(events.StopReason.CANCELLED)
        self.turns.discard(turn)
        if not self.turns and self._idle is not None:
            self._idle.set()

    async def _run_turn(self, turn: SdkTurn) -> None:
        lock, _ = self.loop_state()
        try:
            async with lock:
                if not turn.started.done():
                    turn.started.set_result(None)
                self.current = turn
                try:
                    await self._play(turn)
                finally:
                    self.current = None
        except asyncio.CancelledError:
            if not turn.started.done():
                turn.started.cancel()
            turn.end(events.StopReason.CANCELLED)
            raise
        except BaseException as exc:
            if not turn.started.done():
                turn.started.set_exception(exc)
            raise
        finally:
            if turn.stopped is events.StopReason.CANCELLED:
                self._record_interrupted(turn)

    def _record_interrupted(self, turn: SdkTurn) -> None:
        """Remember the prompt of a turn that was interrupted after it was sent."""
        mark = turn.history_mark
        if mark is None or mark[0] is not self.conversation.conv:
            return  # never sent, or sent on a conversation since replaced
        conv, start = mark
        user = load_sdk().types.StepSource.USER
        self.interrupted.update(s.step_index for s in conv.history[start:] if s.source == user)

    async def _play(self, turn: SdkTurn) -> None:
        halt, recovery = self.conversation.halt, self.recovery
        hooks_ran = False
        try:
            await recovery.ready()
            hooks_ran = await self.bridge.turn_started()
            stop = await self._attempts(turn)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # Our own task is being cancelled (a caller gave up, shutdown):
                # the SDK keeps running the turn unless told to stop.
                await halt()
                raise
            # The SDK's AntigravityCancelledError: the turn was halted, on
            # request or because the model's answer was refused or truncated.
            await self.bridge.turn_ended(hooks_ran)
            _end_cancelled(turn)
            return
        except BaseException as exc:
            error = classify_error(exc)
            if (
                turn.refusal is not None
                or turn.cancel_requested
                or isinstance(exc, _ConsumerGone | _Cancelled)
            ):
                await halt()
                await self.bridge.turn_ended(hooks_ran)
                _end_cancelled(turn)
                if is_fatal(exc) or isinstance(error, ChannelClosed):
                    # The turn failed as it was being cancelled (a 503, or the
                    # harness died): the session is as unusable as after any
                    # fatal error (the SDK's next turn would answer nothing).
                    recovery.start(exc)
                return
            await self.bridge.turn_ended(hooks_ran)
            if is_fatal(exc):
                recovery.start(exc)
                # Hold the turn slot until the session is usable again, so the
                # next turn never meets the dead one; and only then tell the
                # caller, who then finds the agent idle.
                with contextlib.suppress(Exception):
                    await recovery.ready()
            turn.fail(error)
            if not isinstance(exc, Exception):
                raise
            return
        self.last_usage = turn.usage
        await self.bridge.turn_ended(hooks_ran)
        turn.end(stop)

    async def _attempts(self, turn: SdkTurn) -> events.StopReason:
        content: list[Any] | None = turn.content
        retry, reconnect = self.context.settings.retry, self.context.settings.connection_retry
        attempt = reconnects = 0
        resent = False
        while True:
            try:
                return await self._attempt(turn, content)
            except Exception as exc:
                if not (resent or turn.produced) and _harness_lost(exc):
                    # The harness died before the turn produced anything (killed
                    # while the agent was idle, say): the prompt may never have
                    # got through, and the caller was told the turn started.
                    # Reopen and send it again, once, even when the turn is
                    # being cancelled (it is then halted once the new harness
                    # has recorded the prompt); the history shows a prompt
                    # repeated after a failure once.
                    resent = True
                    log.info("agent %s: sending again after %s", self.agent_id, describe(exc))
                    self.recovery.start(exc)
                    await self.recovery.ready()
                    content = turn.content
                    turn.sent = False
                    turn.acknowledged.clear()
                    continue
                if turn.cancel_requested:
                    raise
                # A request that never got through, before any output: asked
                # again without the caller's say (see transient.ConnectionRetry).
                # A refused connection to an endpoint that never answered this
                # agent is nobody listening, not a restart: it fails at once.
                delay = (
                    reconnect.delay(reconnects, exc, produced=turn.produced)
                    if reconnect is not None and (self.reached or not is_refusal(exc))
                    else None
                )
                if delay is not None:
                    reconnects += 1
                    # INFO: if every attempt fails, the caller gets the error itself.
                    log.info(
                        "agent %s: the model request did not get through (%s); "
                        "asking again in %.2f s (%d/%d)",
                        self.agent_id,
                        describe(exc),
                        delay,
                        reconnects,
                        reconnect.retries if reconnect is not None else 0,
                    )
                    self.context.counters.count("reconnects")
                    self.recovery.start(exc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(turn.cancelled.wait(), delay)
                    await self.recovery.ready()
                    continue
                if retry is None:
                    raise
                delay = retry.delay(attempt, classify_error(exc))
                if delay is None:
                    raise
                log.info(
                    "agent %s: retrying in %.2f s after %s", self.agent_id, delay, describe(exc)
                )
                self.context.counters.count("retries")
                if is_fatal(exc):
                    self.recovery.start(exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(turn.cancelled.wait(), delay)
                await self.recovery.ready()
                attempt += 1
                # Nothing produced yet: ask again. Otherwise continue from the
                # saved history (tool results included) without repeating it.
                content = None if turn.produced else turn.content

    async def _attempt(self, turn: SdkTurn, content: list[Any] | None) -> events.StopReason:
        conv = await self.recovery.ready()
        if not await self.conversation.until_idle(self.context.settings.cancel_grace):
            # The harness has not ended an earlier turn (a halt it has not
            # answered yet: stalled, or loaded): sent now, the prompt would
            # meet that halt or the old turn's end. A fresh session cannot.
            log.warning("agent %s: the harness is still in an earlier turn", self.agent_id)
            self.recovery.start(BackendError("the harness did not end the earlier turn"))
            conv = await self.recovery.ready()
        if turn.cancel_requested and turn.sent:
            raise _Cancelled("the turn was cancelled before it was tried again")
        # Even a turn cancelled already sends its prompt (then halts below):
        # its caller was told the turn started, so the prompt belongs to the
        # conversation. Steps rather than the SDK's ChatResponse chunks: the
        # chunks hide the system steps that report a truncated or refused answer.
        history = conv.history
        turn.history_mark = (conv, len(history))
        floor = history[-1].step_index if history else -1
        await conv.send(content)
        turn.sent = True
        halting: asyncio.Task[None] | None = None
        if turn.cancel_requested:
            # Cancelled while the prompt was being sent: the SDK's earlier halt
            # (if any) concerned no turn, so halt this one once it is recorded.
            halting = asyncio.get_running_loop().create_task(self._halt_when_recorded(turn))
        watch = UnreachableWatch(self.context.settings.unreachable_timeout, self.conversation.halt)
        pump = StepPump(self, turn, watch, floor)
        user = load_sdk().types.StepSource.USER
        try:
            async for step in conv.receive_steps():
                if step.source == user:
                    turn.acknowledged.set()
                await pump.step(step)
            await pump.flush()
        except ChannelClosed as exc:
            raise _ConsumerGone(str(exc)) from None
        except asyncio.CancelledError as exc:
            if watch.error is not None and is_cancellation(exc):
                raise watch.error from None  # our watch halted the SDK turn
            raise
        finally:
            await watch.close()
            if halting is not None:
                halting.cancel()
                await asyncio.wait([halting])
        if watch.error is not None:
            raise watch.error
        turn.usage = sdk_events.usage_of(conv.last_turn_usage)
        turn.trajectory_usages = {
            trajectory: sdk_events.usage_of(usage)
            for trajectory, usage in getattr(conv, "trajectory_usages", {}).items()
        }
        return sdk_events.stop_reason(last_stop_reason(conv))

    async def _halt_when_recorded(self, turn: SdkTurn) -> None:
        """Halt the SDK turn once the harness has recorded its prompt (at most ACK_GRACE later).

        Nothing is halted if the turn is no longer the agent's current one: it
        ended meanwhile (a 503, say), and the SDK's cancel stops whatever runs
        on the session now, which would be the next turn, perhaps before the
        harness has recorded that turn's prompt.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(turn.acknowledged.wait(), ACK_GRACE)
        if self.current is turn:
            await self.conversation.halt()

    async def cancel_turns(self, turns: Sequence[SdkTurn] | None) -> None:
        """The backend's own cancel: stop ``turns`` (default: all) and wait until they are over.

        The current turn is halted through the SDK (which is what really stops
        the harness); turns still queued are simply cancelled. A turn that has
        not ended within the cancel grace has its task cancelled.
        """
        targets = [t for t in (self.turns if turns is None else turns) if t.task is not None]
        pending = [t for t in targets if t.task is not None and not t.task.done()]
        if not pending:
            return
        for turn in pending:
            turn.cancel_requested = True
            turn.cancelled.set()
            if turn.bridge is not None:
                # Nobody waits for the rest: a pump parked at high water must
                # not hold the turn until the cancel grace runs out.
                turn.bridge.release()
        current = self.current
        for turn in pending:
            if turn is current:
                for tool_task in list(turn.tool_tasks):
                    tool_task.cancel()
                if turn.sent:
                    await self._halt_when_recorded(turn)
                else:
                    # Not sent yet: the attempt sends it, then halts (see _attempt).
                    await self.conversation.halt()
            elif turn.task is not None:
                turn.task.cancel()
        tasks = {t.task for t in pending if t.task is not None}
        _, stuck = await asyncio.wait(tasks, timeout=self.context.settings.cancel_grace)
        for task in stuck:
            task.cancel()
        if stuck:
            await asyncio.wait(stuck)


QUEUED_CHAT_CANCELLED = (
    "the chat was cancelled by agent.cancel() while it waited for the turn before it; "
    "its prompt was not sent"
)
"""What a chat whose turn was queued behind another is told when ``agent.cancel()`` stops it."""

ACK_GRACE = 2.0
"""Seconds a cancel waits for the harness to record a sent prompt before it halts anyway."""


def _harness_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the harness process (or the link to it) is gone."""
    return is_fatal(exc) and isinstance(classify_error(exc), ChannelClosed)


def _end_cancelled(turn: SdkTurn) -> None:
    """End a halted turn: with the refusal that halted it, if any, else as cancelled."""
    if turn.refusal is not None:
        turn.fail(turn.refusal)
    else:
        turn.end(events.StopReason.CANCELLED)
