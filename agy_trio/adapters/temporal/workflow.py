"""The conversation workflow: one per agent.

:class:`ConversationWorkflow` is an agent. It holds the agent's settings and
transcript, queues its turns and runs each one as an activity on a worker
(first on the worker that holds the live SDK conversation, then on any). A
turn lost with its worker (no heartbeat) is started again on another worker,
told what the caller already saw; a tool call the lost attempt finished is
not run again (:meth:`ConversationWorkflow.claim_tool`).

This module is imported again inside Temporal's workflow sandbox for every
workflow run: it must stay free of side effects at import time, and imports
agy_trio's plain data modules through the sandbox's pass-through door.
"""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import replace
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.converter import value_to_type
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutType
from temporalio.exceptions import TimeoutError as TemporalTimeout

with workflow.unsafe.imports_passed_through():
    from agy_trio.adapters.temporal import messages
    from agy_trio.adapters.temporal.segments import canonical, segments_text

__all__ = ["ConversationWorkflow"]

_FINAL = frozenset({"done", "cancelled", "failed"})
_KEPT_TURNS = 64  # finished turns whose status stays available by id
_KEPT_RECORDS = 32
_FORGET_TIMEOUT = timedelta(seconds=10)


class _WorkflowTurn:
    """A turn as the workflow tracks it."""

    def __init__(self, request: messages.TurnRequest) -> None:
        self.request = request
        self.turn_id = request.turn_id
        self.state = "queued"
        self.attempts = 0
        self.workers: list[str] = []
        self.quota_wait = 0.0
        self.cancel_requested = False
        self.handle: workflow.ActivityHandle[messages.TurnOutcome] | None = None
        self.shown: list[messages.Segment] = []
        self.tools: dict[str, tuple[int, messages.ToolRecord | None]] = {}
        self.segments: list[messages.Segment] = []
        self.usage = messages.UsageData()
        self.stop_reason: str | None = None
        self.error: messages.TurnFailure | None = None
        self.structured_output: Any = None

    @property
    def final(self) -> bool:
        return self.state in _FINAL

    def status(self) -> messages.TurnStatus:
        return messages.TurnStatus(
            turn_id=self.turn_id,
            state=self.state,
            segments=list(self.segments if self.final else self.shown),
            usage=self.usage,
            stop_reason=self.stop_reason,
            error=self.error,
            structured_output=self.structured_output,
        )


def _prompt_text(request: messages.TurnRequest) -> str:
    return "\n".join(part.text for part in request.parts if part.text)


def _failure(error: ApplicationError) -> messages.TurnFailure:
    if error.details:
        try:
            failure: messages.TurnFailure = value_to_type(messages.TurnFailure, error.details[0])
        except (TypeError, ValueError, KeyError):
            pass
        else:
            return failure
    kind = messages.FailureKind.named(error.type)
    message = error.message
    if kind is messages.FailureKind.BACKEND_ERROR and error.type not in (None, kind.value):
        message = f"{error.type}: {message}"
    return messages.TurnFailure(kind=kind, message=message)


def _heartbeat_segments(error: TemporalTimeout) -> list[messages.Segment] | None:
    details = error.last_heartbeat_details
    if not details:
        return None
    try:
        segments: list[messages.Segment] = value_to_type(list[messages.Segment], details[0])
    except (TypeError, ValueError, KeyError):
        return None
    return segments


@workflow.defn(name=messages.CONVERSATION_WORKFLOW)
class ConversationWorkflow:
    """One agent: its settings, its transcript and its turns."""

    @workflow.init
    def __init__(self, setup: messages.AgentSetup) -> None:
        self._setup = setup
        self._state = setup.state if setup.state is not None else messages.ConversationState()
        self._queue: deque[_WorkflowTurn] = deque()
        self._turns: dict[str, _WorkflowTurn] = {}
        self._current: _WorkflowTurn | None = None
        self._ending = False
        self._turns_this_run = 0
        # Workers that said they are leaving: never the holder again.
        self._released: deque[str] = deque(maxlen=64)
        # Turns whose caller gave up before hearing back: never to be queued.
        self._withdrawn: set[str] = set()

    # ------------------------------------------------------------------ the main loop

    @workflow.run
    async def run(self, setup: messages.AgentSetup) -> messages.ConversationState:
        """Play queued turns one at a time until the agent is shut down."""
        del setup
        while True:
            await workflow.wait_condition(
                lambda: bool(self._queue) or self._ending or self._should_continue()
            )
            if self._ending:
                break
            if self._queue:
                await self._play(self._queue.popleft())
                continue
            # Idle with a long history: start afresh with the state carried over.
            await workflow.wait_condition(workflow.all_handlers_finished)
            if not self._queue and not self._ending:
                workflow.continue_as_new(replace(self._setup, state=self._state))
        for turn in list(self._queue):
            self._finish_unstarted(turn)
        self._queue.clear()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    def _should_continue(self) -> bool:
        return (
            self._current is None
            and not self._queue
            and (
                self._turns_this_run >= self._setup.turns_per_run
                or workflow.info().is_continue_as_new_suggested()
            )
        )

    # ------------------------------------------------------------------ one turn

    async def _play(self, turn: _WorkflowTurn) -> None:
        setup, state = self._setup, self._state
        self._current = turn
        self._turns_this_run += 1
        turn.state = "running"
        history_length = len(state.transcript)
        state.transcript.append(messages.MessageData("user", _prompt_text(turn.request)))
        deadline = workflow.now() + timedelta(seconds=setup.turn_timeout)
        outcome: messages.TurnOutcome | None = None
        while not turn.cancel_requested:
            remaining = (deadline - workflow.now()).total_seconds()
            if remaining <= 0:
                turn.error = messages.TurnFailure(
                    messages.FailureKind.OPERATION_TIMEOUT,
                    "the turn ran out of time",
                    duration=setup.turn_timeout,
                )
                break
            if turn.attempts >= setup.max_attempts:
                turn.error = messages.TurnFailure(
                    messages.FailureKind.CHANNEL_CLOSED,
                    f"the turn was lost {turn.attempts} times with the workers running it",
                    segments=turn.shown,
                )
                break
            turn.attempts += 1
            queue = state.holder or setup.task_queue
            sticky = queue != setup.task_queue
            task = messages.TurnTask(
                workflow_id=workflow.info().workflow_id,
                conversation_id=setup.conversation_id,
                turn_id=turn.turn_id,
                attempt=turn.attempts,
                parts=turn.request.parts,
                history_length=history_length,
                lineage=state.lineage,
                shown=turn.shown,
                turn_timeout=remaining,
            )
            turn.handle = workflow.start_activity(
                messages.ACTIVITY_RUN_TURN,
                task,
                result_type=messages.TurnOutcome,
                task_queue=queue,
                activity_id=f"{turn.turn_id}.{turn.attempts}",
                schedule_to_start_timeout=(
                    timedelta(seconds=setup.sticky_timeout) if sticky else None
                ),
                start_to_close_timeout=timedelta(seconds=remaining),
                heartbeat_timeout=timedelta(seconds=setup.heartbeat_timeout),
                retry_policy=RetryPolicy(maximum_attempts=1),
                cancellation_type=workflow.ActivityCancellationType.TRY_CANCEL,
            )
            try:
                outcome = await turn.handle
                break
            except ActivityError as error:
                if turn.cancel_requested:
                    break
                if not await self._after_failure(turn, error, remaining):
                    break
            finally:
                turn.handle = None
        self._finish(turn, outcome)

    async def _after_failure(
        self, turn: _WorkflowTurn, error: ActivityError, remaining: float
    ) -> bool:
        """Decide what a failed attempt means; True to try again."""
        state = self._state
        cause = error.cause
        if isinstance(cause, TemporalTimeout):
            if cause.type is TimeoutType.SCHEDULE_TO_START:
                # The holder did not pick the turn up in time: any worker may.
                state.holder = None
                turn.attempts -= 1
                return True
            # The worker went silent: start again elsewhere, from what it showed.
            shown = _heartbeat_segments(cause)
            if shown is not None:
                turn.shown = shown
            state.holder = None
            return True
        if isinstance(cause, ApplicationError):
            failure = _failure(cause)
            if failure.segments:
                turn.shown = failure.segments
            if failure.kind is messages.FailureKind.QUOTA_EXCEEDED:
                # Every worker already backs off through the quota workflow; this
                # turn waits here, durably, then tries again.
                delay = min(failure.retry_after or 5.0, remaining)
                turn.quota_wait += delay
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: turn.cancel_requested, timeout=delay)
                return True
            if failure.kind in messages.RETRYABLE_KINDS:
                state.holder = None
                return True
            turn.error = failure
            return False
        if isinstance(cause, CancelledError):
            # Cancelled by its worker's shutdown, not by us.
            state.holder = None
            return True
        turn.error = messages.TurnFailure(
            messages.FailureKind.BACKEND_ERROR, f"the turn failed: {cause or error}"
        )
        return False

    def _finish(self, turn: _WorkflowTurn, outcome: messages.TurnOutcome | None) -> None:
        state = self._state
        self._current = None
        state.revision += 1
        if outcome is not None and not turn.cancel_requested:
            segments = canonical(outcome.segments)
            text = segments_text(segments)
            calls = [s.tool for s in segments if s.kind == "tool" and s.tool is not None]
            state.transcript.append(messages.MessageData("assistant", text, calls))
            state.turns += 1
            state.last_usage = outcome.usage
            state.total_usage = state.total_usage.plus(outcome.usage)
            state.last_response = text
            state.lineage = f"{state.revision}:{turn.turn_id}:{turn.attempts}"
            # A worker may finish a turn while it leaves (the signal can be read first).
            state.holder = None if outcome.worker in self._released else outcome.worker
            turn.workers.append(outcome.worker)
            turn.quota_wait += outcome.quota_wait
            turn.segments = segments
            turn.usage = outcome.usage
            turn.stop_reason = outcome.stop_reason
            turn.structured_output = outcome.structured_output
            turn.state = "done"
        elif turn.cancel_requested:
            state.lineage = f"{state.revision}:-"
            turn.segments = canonical(turn.shown)
            turn.stop_reason = "cancelled"
            turn.state = "cancelled"
        else:
            state.lineage = f"{state.revision}:-"
            turn.segments = canonical(turn.shown)
            turn.stop_reason = "error"
            turn.state = "failed"
        state.records.append(
            messages.TurnRecord(
                turn.turn_id, turn.state, turn.attempts, turn.workers, turn.quota_wait
            )
        )
        del state.records[:-_KEPT_RECORDS]
        self._forget_old_turns()

    def _finish_unstarted(self, turn: _WorkflowTurn) -> None:
        turn.stop_reason = "cancelled"
        turn.state = "cancelled"

    def _forget_old_turns(self) -> None:
        finished = [t for t in self._turns.values() if t.final]
        for turn in finished[:-_KEPT_TURNS]:
            del self._turns[turn.turn_id]

    def _cancel(self, turn: _WorkflowTurn) -> None:
        if turn.final:
            return
        if turn.state == "queued":
            self._queue.remove(turn)
            self._finish_unstarted(turn)
            return
        turn.cancel_requested = True
        if turn.handle is not None:
            turn.handle.cancel()

    # ------------------------------------------------------------------ updates

    @workflow.update
    async def submit_turn(self, request: messages.TurnRequest) -> messages.TurnStatus:
        """Queue a turn; answer once it holds the agent (its prompt is in the history)."""
        turn = _WorkflowTurn(request)
        self._turns[turn.turn_id] = turn
        self._queue.append(turn)
        await workflow.wait_condition(lambda: turn.state != "queued")
        return turn.status()

    @submit_turn.validator
    def _validate_submit(self, request: messages.TurnRequest) -> None:
        if self._ending:
            raise ValueError("the agent is shutting down")
        if request.turn_id in self._turns or request.turn_id in self._withdrawn:
            raise ValueError(f"turn {request.turn_id} was already submitted or withdrawn")
        if not request.parts:
            raise ValueError("a turn needs a prompt")

    @workflow.update
    def withdraw_turn(self, turn_id: str) -> bool:
        """The caller of a turn gave up: drop it if it has not started.

        Returns True if the turn will never run (it was queued, or never
        arrived), False if it already started (its caller gets its response).
        """
        turn = self._turns.get(turn_id)
        if turn is None:
            self._withdrawn.add(turn_id)
            return True
        if turn.state == "queued":
            self._cancel(turn)
            return True
        return False

    @workflow.update
    async def wait_turn(self, turn_id: str) -> messages.TurnStatus:
        """Answer once the turn is over, with everything it showed."""
        turn = self._turns.get(turn_id)
        if turn is None:
            raise ApplicationError(f"no turn {turn_id}", type="AgentNotFound", non_retryable=True)
        await workflow.wait_condition(lambda: turn.final)
        return turn.status()

    @workflow.update
    async def cancel_turns(self, turn_ids: list[str] | None) -> None:
        """Cancel the named turns (None: the running one and every queued one)."""
        candidates = [self._current, *self._queue] if self._current else list(self._queue)
        targets = [t for t in candidates if turn_ids is None or t.turn_id in turn_ids]
        if turn_ids is not None:
            targets += [
                t for tid in turn_ids if (t := self._turns.get(tid)) is not None and t.final
            ]
        for turn in targets:
            self._cancel(turn)
        await workflow.wait_condition(lambda: all(t.final for t in targets))

    @workflow.update
    async def wait_for_idle(self) -> None:
        """Answer once no turn runs or waits."""
        await workflow.wait_condition(lambda: self._current is None and not self._queue)

    @workflow.update
    def clear_history(self) -> None:
        """Forget the conversation so far (workers holding it rebuild it)."""
        state = self._state
        state.transcript = []
        state.last_response = None
        state.compactions = []
        state.revision += 1
        state.lineage = f"{state.revision}:-"

    @workflow.update
    def claim_tool(self, request: messages.ToolClaimRequest) -> messages.ToolClaim:
        """Say whether an attempt may run a tool call (at most once per call)."""
        turn = self._current
        if (
            turn is None
            or turn.turn_id != request.turn_id
            or turn.attempts != request.attempt
            or turn.cancel_requested
        ):
            raise ApplicationError(
                "this attempt of the turn is no longer current", type="StaleAttempt"
            )
        known = turn.tools.get(request.key)
        if known is None:
            turn.tools[request.key] = (request.attempt, None)
            return messages.ToolClaim("run")
        _owner, record = known
        if record is not None:
            return messages.ToolClaim("done", record)
        return messages.ToolClaim("unknown")

    @workflow.update
    async def end(self, how: str) -> None:
        """Stop the agent: cancel its turns; ``"delete"`` also forgets it on its worker."""
        targets = [t for t in [self._current, *self._queue] if t is not None]
        for turn in targets:
            self._cancel(turn)
        await workflow.wait_condition(lambda: all(t.final for t in targets))
        holder = self._state.holder
        if how == "delete" and holder is not None:
            try:
                await workflow.execute_activity(
                    messages.ACTIVITY_FORGET,
                    self._setup.conversation_id,
                    task_queue=holder,
                    schedule_to_start_timeout=timedelta(seconds=self._setup.sticky_timeout),
                    start_to_close_timeout=_FORGET_TIMEOUT,
                    retry_policy=RetryPolicy(maximum_attempts=1),
                )
            except ActivityError:
                workflow.logger.info("the holder of the conversation could not forget it")
        if how != "delete":
            self._ending = True

    # ------------------------------------------------------------------ signals

    @workflow.signal
    def tool_done(self, done: messages.ToolDone) -> None:
        """Record how a tool call ended, so that a retried turn reuses it."""
        turn = self._turns.get(done.turn_id)
        if turn is None:
            return
        known = turn.tools.get(done.record.key)
        if known is not None and known[1] is None:
            turn.tools[done.record.key] = (known[0], done.record)

    @workflow.signal
    def release(self, worker: str) -> None:
        """A worker is leaving: send the next turn to any worker."""
        self._released.append(worker)
        if self._state.holder == worker:
            self._state.holder = None

    # ------------------------------------------------------------------ queries

    @workflow.query
    def snapshot(self) -> messages.ConversationSnapshot:
        """What a worker needs to rebuild the conversation."""
        state = self._state
        return messages.ConversationSnapshot(
            self._setup.settings, list(state.transcript), state.lineage
        )

    @workflow.query
    def turn_status(self, turn_id: str) -> messages.TurnStatus | None:
        """Where a turn is (None: unknown or long finished)."""
        turn = self._turns.get(turn_id)
        return None if turn is None else turn.status()

    @workflow.query
    def state(self) -> messages.ConversationState:
        """The whole state (history, counters, holder, recent turn records)."""
        return self._state

    @workflow.query
    def history(self) -> list[messages.MessageData]:
        """The conversation so far."""
        return list(self._state.transcript)

    @workflow.query
    def turn_count(self) -> int:
        """Completed turns."""
        return self._state.turns

    @workflow.query
    def total_usage(self) -> messages.UsageData:
        """Usage over all turns."""
        return self._state.total_usage

    @workflow.query
    def last_turn_usage(self) -> messages.UsageData:
        """Usage of the last completed turn."""
        return self._state.last_usage

    @workflow.query
    def last_response(self) -> str | None:
        """The last answer's text."""
        return self._state.last_response

    @workflow.query
    def compaction_indices(self) -> list[int]:
        """History indices at which the conversation was compacted."""
        return list(self._state.compactions)

    @workflow.query
    def is_idle(self) -> bool:
        """Whether no turn runs or waits."""
        return self._current is None and not self._queue
