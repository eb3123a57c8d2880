"""A2A's view of a served turn: a Task, and the stream updates each turn event makes.

An A2A task is one turn; its context is the conversation (the agent). Both
are rendered from the turn's :class:`~agy_trio.serve.turn_log.TurnLog`, with
a2a-sdk's own protobuf types, so every protocol shows the same events:

============================  ==============================================
turn event                    A2A
============================  ==============================================
(started)                     ``Task``, state ``submitted``; then ``working``
``Text``                      ``TaskArtifactUpdateEvent`` of the ``answer``
                              artifact (``append`` after the first piece)
``Thought``, tool calls       ``working`` status updates whose message
                              carries the thought, or the call as data
``ApprovalAsked``             ``input-required``: the message names the
                              tool call, its arguments and the rule's
                              reason; a message on the same task answers
``ApprovalAnswered``          ``working`` again
``TurnFinished``              ``completed`` (``canceled`` when cancelled)
``TurnFailed``                ``failed``, the error's class and message
============================  ==============================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

from a2a.types import (
    Artifact,
    Message,
    Part,
    Role,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from google.protobuf import json_format, struct_pb2

from agy_trio.core.events import StopReason
from agy_trio.serve.turn_log import (
    ApprovalAnswered,
    ApprovalAsked,
    Text,
    Thought,
    ToolFinished,
    ToolStarted,
    TurnEvent,
    TurnFailed,
    TurnFinished,
    TurnLog,
)

__all__ = ["ANSWER_ARTIFACT", "A2AEvent", "TaskView", "data_part", "pending_approval"]

ANSWER_ARTIFACT = "answer"
"""The id of the artifact that holds a task's answer."""

A2AEvent: TypeAlias = Task | Message | TaskStatusUpdateEvent | TaskArtifactUpdateEvent
"""What a2a-sdk's dispatcher streams."""

_INTERRUPTED = frozenset({TaskState.TASK_STATE_INPUT_REQUIRED})
_TERMINAL = frozenset(
    {TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_CANCELED, TaskState.TASK_STATE_FAILED}
)


def data_part(value: Any) -> Part:
    """A ``Part`` carrying ``value`` (JSON) as data."""
    return Part(data=json_format.ParseDict(value, struct_pb2.Value()))


def pending_approval(log: TurnLog) -> ApprovalAsked | None:
    """The approval the turn waits on now, if any (the last one asked and not answered)."""
    answered: set[str] = set()
    for event in reversed(log.events):
        payload = event.payload
        if type(payload) is ApprovalAnswered:
            answered.add(payload.approval_id)
        elif type(payload) is ApprovalAsked and payload.approval_id not in answered:
            return payload
    return None


def _finished_state(payload: TurnFinished | TurnFailed) -> TaskState:
    if type(payload) is TurnFailed:
        return TaskState.TASK_STATE_FAILED
    assert isinstance(payload, TurnFinished)
    if payload.stop_reason is StopReason.CANCELLED:
        return TaskState.TASK_STATE_CANCELED
    if payload.stop_reason in (StopReason.SAFETY, StopReason.ERROR):
        return TaskState.TASK_STATE_FAILED
    return TaskState.TASK_STATE_COMPLETED


class TaskView:
    """Renders one turn as an A2A task.

    Args:
        log: The turn's log.
        history: The user's messages on this task so far (the first one
            started it; later ones answered approvals).
    """

    def __init__(self, log: TurnLog, history: Sequence[Message]) -> None:
        self.log = log
        self.history = history
        self.task_id = log.turn_id
        self.context_id = log.agent_id

    # ------------------------------------------------------------------ the task

    def state(self) -> TaskState:
        """The task's state now."""
        end = self.log.end
        if end is not None:
            return _finished_state(end)
        # Only a parked turn can wait on an approval: no scan of the log otherwise.
        if self.log.parked and pending_approval(self.log) is not None:
            return TaskState.TASK_STATE_INPUT_REQUIRED
        return TaskState.TASK_STATE_WORKING if self.log.events else TaskState.TASK_STATE_SUBMITTED

    def is_terminal(self) -> bool:
        """Whether the task ended (completed, canceled or failed)."""
        return self.state() in _TERMINAL

    def is_interrupted(self) -> bool:
        """Whether the task waits for the user (``input-required``)."""
        return self.state() in _INTERRUPTED

    def _message(self, *parts: Part, at: int | None = None) -> Message:
        # Named after the turn event it reports: the same event, the same id.
        return Message(
            message_id=f"{self.task_id}-{self.log.last_id if at is None else at}",
            role=Role.ROLE_AGENT,
            task_id=self.task_id,
            context_id=self.context_id,
            parts=list(parts),
        )

    def _status_message(self) -> Message | None:
        end = self.log.end
        if type(end) is TurnFailed:
            return self._message(Part(text=f"{end.type}: {end.message}"))
        approval = pending_approval(self.log) if self.log.parked else None
        if approval is not None and end is None:
            return self._approval_message(approval)
        return None

    def _approval_message(self, approval: ApprovalAsked, at: int | None = None) -> Message:
        reason = f": {approval.reason}" if approval.reason else ""
        return self._message(
            Part(
                text=(
                    f"May {approval.tool} run{reason}? Answer on this task with data "
                    '{"approved": true} or {"approved": false}.'
                )
            ),
            data_part(
                {
                    "approval_id": approval.approval_id,
                    "tool_call_id": approval.call_id,
                    "tool": approval.tool,
                    "arguments": approval.arguments,
                    "reason": approval.reason,
                }
            ),
            at=at,
        )

    def status(self) -> TaskStatus:
        """The task's status: its state, and the message that explains it (if any)."""
        status = TaskStatus(state=self.state())
        message = self._status_message()
        if message is not None:
            status.message.CopyFrom(message)
        return status

    def task(self, history_length: int | None = None) -> Task:
        """The task as it stands: status, the answer artifact so far, the history."""
        history = list(self.history)
        if history_length is not None:
            history = history[len(history) - history_length :] if history_length else []
        task = Task(
            id=self.task_id, context_id=self.context_id, status=self.status(), history=history
        )
        if self.log.text:
            task.artifacts.append(
                Artifact(
                    artifact_id=ANSWER_ARTIFACT, name="answer", parts=[Part(text=self.log.text)]
                )
            )
        return task

    # ------------------------------------------------------------------ the stream

    def _update(self, state: TaskState, message: Message | None = None) -> TaskStatusUpdateEvent:
        status = TaskStatus(state=state)
        if message is not None:
            status.message.CopyFrom(message)
        return TaskStatusUpdateEvent(
            task_id=self.task_id, context_id=self.context_id, status=status
        )

    def working(self) -> TaskStatusUpdateEvent:
        """The update that says the task is being worked on (its turn started)."""
        return self._update(TaskState.TASK_STATE_WORKING)

    def updates(self, event: TurnEvent, text_before: bool) -> list[A2AEvent]:
        """The stream updates turn event ``event`` makes.

        Args:
            event: The turn event.
            text_before: Whether a piece of the answer came before it (the
                answer artifact is then appended to).
        """
        payload = event.payload
        working = TaskState.TASK_STATE_WORKING
        kind = type(payload)
        if kind is Text:
            assert isinstance(payload, Text)
            return [
                TaskArtifactUpdateEvent(
                    task_id=self.task_id,
                    context_id=self.context_id,
                    artifact=Artifact(
                        artifact_id=ANSWER_ARTIFACT, name="answer", parts=[Part(text=payload.text)]
                    ),
                    append=text_before,
                )
            ]
        if kind is Thought:
            assert isinstance(payload, Thought)
            thought = self._message(Part(text=payload.text), at=event.id)
            thought.metadata.update({"kind": "thought"})
            return [self._update(working, thought)]
        if kind is ToolStarted or kind is ToolFinished:
            assert isinstance(payload, ToolStarted | ToolFinished)
            call: dict[str, Any] = {
                "call_id": payload.call_id,
                "name": payload.name,
                "arguments": payload.arguments,
            }
            if isinstance(payload, ToolFinished):
                call.update(result=payload.result, error=payload.error)
            report = self._message(data_part({"tool_call": call}), at=event.id)
            report.metadata.update({"kind": "tool_call" if kind is ToolStarted else "tool_result"})
            return [self._update(working, report)]
        if kind is ApprovalAsked:
            assert isinstance(payload, ApprovalAsked)
            return [
                self._update(
                    TaskState.TASK_STATE_INPUT_REQUIRED,
                    self._approval_message(payload, at=event.id),
                )
            ]
        if kind is ApprovalAnswered:
            return [self._update(working)]
        if kind is TurnFinished or kind is TurnFailed:
            assert isinstance(payload, TurnFinished | TurnFailed)
            why = None
            if isinstance(payload, TurnFailed):
                why = self._message(Part(text=f"{payload.type}: {payload.message}"), at=event.id)
            return [self._update(_finished_state(payload), why)]
        return []  # the usage report has no A2A counterpart
