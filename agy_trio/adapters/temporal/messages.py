"""The values that travel between the client, the conversation workflow and the workers.

Plain dataclasses, because Temporal's data converter writes them as JSON and
reads them back by their type hints. The module has no side effects and
imports nothing but the standard library: the workflow sandbox re-imports
workflow modules on every run, and this one is imported through its
pass-through door.

Names of workflows, activities, queries, updates and signals are here too, so
that the client, the workflow and the worker spell them once.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ACTIVITY_FORGET",
    "ACTIVITY_RUN_TURN",
    "CONVERSATION_WORKFLOW",
    "QUOTA_WORKFLOW",
    "RETRYABLE_KINDS",
    "AgentSetup",
    "ConversationSnapshot",
    "ConversationState",
    "FailureKind",
    "MessageData",
    "PartData",
    "QuotaHit",
    "QuotaStatus",
    "Segment",
    "ToolClaim",
    "ToolClaimRequest",
    "ToolDone",
    "ToolRecord",
    "TurnFailure",
    "TurnOutcome",
    "TurnRecord",
    "TurnRequest",
    "TurnStatus",
    "TurnTask",
    "UsageData",
    "conversation_workflow_id",
    "quota_workflow_id",
    "worker_queue",
]


class FailureKind(enum.StrEnum):
    """Why a turn failed, across processes: the agy_trio error the client rebuilds.

    ``WORKER_LEAVING`` is the one kind that is no error class: the worker
    playing the turn shut down, and another attempt elsewhere may cure it.
    """

    QUOTA_EXCEEDED = "QuotaExceeded"
    SAFETY_BLOCKED = "SafetyBlocked"
    MAX_TOKENS_REACHED = "MaxTokensReached"
    BACKEND_ERROR = "BackendError"
    CHANNEL_CLOSED = "ChannelClosed"
    OPERATION_TIMEOUT = "OperationTimeout"
    POLICY_DENIED = "PolicyDenied"
    AGENT_NOT_FOUND = "AgentNotFound"
    CONFIG_ERROR = "ConfigError"
    WORKER_LEAVING = "WorkerLeaving"

    @classmethod
    def named(cls, name: str | None) -> FailureKind:
        """The kind called ``name`` on the wire; BACKEND_ERROR for a name it does not know."""
        try:
            return cls(name or cls.BACKEND_ERROR)
        except ValueError:
            return cls.BACKEND_ERROR


RETRYABLE_KINDS = frozenset({FailureKind.CHANNEL_CLOSED, FailureKind.WORKER_LEAVING})
"""Failure kinds a new attempt on another worker may cure: the worker or its harness went away."""

CONVERSATION_WORKFLOW = "agy_trio.Conversation"
QUOTA_WORKFLOW = "agy_trio.Quota"
ACTIVITY_RUN_TURN = "agy_trio.run_turn"
ACTIVITY_FORGET = "agy_trio.forget_conversation"


def conversation_workflow_id(conversation_id: str) -> str:
    """The id of the workflow that holds conversation ``conversation_id``."""
    return f"agy-trio-conversation-{conversation_id}"


def quota_workflow_id(quota_key: str) -> str:
    """The id of the workflow that holds the quota backoff of one key.

    ``quota_key`` is already a fingerprint (never a key itself).
    """
    digest = hashlib.sha256(quota_key.encode()).hexdigest()[:16]
    return f"agy-trio-quota-{digest}"


def worker_queue(task_queue: str, identity: str) -> str:
    """The task queue only the worker ``identity`` polls (turns that should stay there)."""
    return f"{task_queue}@{identity}"


# ---------------------------------------------------------------------------- content and history


@dataclass
class PartData:
    """One part of a prompt: text, or base64 data with its MIME type."""

    text: str | None = None
    data_b64: str | None = None
    mime_type: str | None = None


@dataclass
class UsageData:
    """Token usage, as :class:`agy_trio.core.events.Usage`."""

    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cached_tokens: int = 0

    def plus(self, other: UsageData) -> UsageData:
        """The sum of two usages, field by field."""
        mine, theirs = dataclasses.astuple(self), dataclasses.astuple(other)
        return UsageData(*(a + b for a, b in zip(mine, theirs, strict=True)))


@dataclass
class ToolRecord:
    """One tool call of a turn and its outcome.

    Attributes:
        key: What identifies the call across attempts of the turn (see the worker).
        name: The tool's name.
        arguments: Its arguments, as JSON.
        call_id: The model's id for the call, when it gave one.
        result: What the tool returned, as JSON (its ``repr`` when it is not JSON).
        error: Why it failed, if it did.
    """

    key: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    call_id: str | None = None
    result: Any = None
    error: str | None = None


@dataclass
class Segment:
    """A piece of what a turn shows: answer text, thought text or a tool call."""

    kind: str  # "text", "thought" or "tool"
    text: str = ""
    tool: ToolRecord | None = None


@dataclass
class MessageData:
    """One history entry, as :class:`agy_trio.core.events.Message`."""

    role: str
    text: str
    tool_calls: list[ToolRecord] = field(default_factory=list)


# ---------------------------------------------------------------------------- the conversation


@dataclass
class TurnRecord:
    """How one finished turn went (kept for diagnostics and tests)."""

    turn_id: str
    state: str
    attempts: int
    workers: list[str] = field(default_factory=list)
    quota_wait: float = 0.0


@dataclass
class ConversationState:
    """Everything a conversation workflow keeps; carried over by continue-as-new.

    Attributes:
        transcript: The history, oldest first.
        turns: Completed turns.
        total_usage: Usage summed over all turns.
        last_usage: Usage of the last completed turn.
        last_response: Text of the last answer.
        compactions: History indices at which the conversation was compacted.
        revision: Bumped at every change of the transcript a worker cannot
            follow by itself; with ``lineage`` it tells a worker whether its
            live SDK conversation is still this one.
        lineage: Who made the last change: ``"REVISION:TURN:ATTEMPT"`` for a
            turn, ``"REVISION:-"`` otherwise.
        holder: The task queue of the worker whose live SDK conversation
            matches ``lineage`` (the next turn goes there first).
        records: The last finished turns, newest last.
    """

    transcript: list[MessageData] = field(default_factory=list)
    turns: int = 0
    total_usage: UsageData = field(default_factory=UsageData)
    last_usage: UsageData = field(default_factory=UsageData)
    last_response: str | None = None
    compactions: list[int] = field(default_factory=list)
    revision: int = 0
    lineage: str = "0:-"
    holder: str | None = None
    records: list[TurnRecord] = field(default_factory=list)


@dataclass
class AgentSetup:
    """The input of a conversation workflow.

    Attributes:
        conversation_id: The conversation's id.
        settings: The agent's configuration as written by
            :func:`agy_trio.core.serialization.unstructure`, secrets left out.
        task_queue: The queue every worker polls.
        turn_timeout: Seconds one turn may take, all attempts together.
        heartbeat_timeout: Seconds of worker silence after which a turn is
            retried elsewhere.
        sticky_timeout: Seconds a turn waits for the worker holding the
            conversation before it goes to any worker.
        max_attempts: Attempts of one turn lost to dead workers before it fails.
        turns_per_run: Turns after which the workflow continues as new (a fresh
            history carrying the state over), if Temporal has not suggested it before.
        state: What an earlier run of the conversation left (resume,
            continue-as-new).
    """

    conversation_id: str
    settings: dict[str, Any]
    task_queue: str
    turn_timeout: float
    heartbeat_timeout: float = 5.0
    sticky_timeout: float = 3.0
    max_attempts: int = 5
    turns_per_run: int = 500
    state: ConversationState | None = None


@dataclass
class TurnRequest:
    """A prompt for the conversation, named by the client so it can cancel it."""

    turn_id: str
    parts: list[PartData]


@dataclass
class TurnStatus:
    """Where a turn is; the final one holds everything it showed.

    Attributes:
        turn_id: The turn.
        state: ``"queued"``, ``"running"``, ``"done"``, ``"cancelled"`` or ``"failed"``.
        segments: What the turn showed (complete once the state is final).
        usage: Its usage (final states).
        stop_reason: A :class:`~agy_trio.core.events.StopReason` value (final states).
        error: For ``"failed"``: the error's kind, message, HTTP status and Retry-After.
        structured_output: The structured answer the model handed over in the
            turn, as JSON (``"done"`` only); None when it gave none.
    """

    turn_id: str
    state: str
    segments: list[Segment] = field(default_factory=list)
    usage: UsageData = field(default_factory=UsageData)
    stop_reason: str | None = None
    error: TurnFailure | None = None
    structured_output: Any = None


@dataclass
class TurnFailure:
    """Why a turn failed, in a form that crosses processes.

    ``kind`` names an agy_trio error class from a fixed set (see
    :mod:`agy_trio.adapters.temporal.errors`); the client rebuilds that error.
    """

    kind: FailureKind
    message: str
    status: int | None = None
    retry_after: float | None = None
    duration: float | None = None
    segments: list[Segment] = field(default_factory=list)


@dataclass
class ConversationSnapshot:
    """What a worker needs to rebuild a conversation it does not hold."""

    settings: dict[str, Any]
    transcript: list[MessageData]
    lineage: str


# ---------------------------------------------------------------------------- turns on workers


@dataclass
class TurnTask:
    """The input of the turn activity.

    Attributes:
        workflow_id: The conversation's workflow.
        conversation_id: The conversation.
        turn_id: The turn.
        attempt: 1 for the first attempt, then 2, 3, ...
        parts: The prompt.
        history_length: How many transcript entries precede the prompt.
        lineage: The conversation's lineage when the turn started; a worker
            whose live conversation has another one rebuilds it.
        shown: What earlier attempts already showed; this attempt extends it.
        turn_timeout: Seconds the SDK turn may take: what is left of the
            agent's chat timeout, which only the workflow knows (so neither
            field has a default here).
    """

    workflow_id: str
    conversation_id: str
    turn_id: str
    attempt: int
    parts: list[PartData]
    history_length: int
    lineage: str
    shown: list[Segment]
    turn_timeout: float


@dataclass
class TurnOutcome:
    """The result of the turn activity."""

    segments: list[Segment]
    usage: UsageData
    stop_reason: str
    worker: str
    quota_wait: float = 0.0
    structured_output: Any = None  # the turn's structured answer, as JSON


@dataclass
class ToolClaimRequest:
    """A worker asks whether it may run a tool call of an attempt of a turn."""

    turn_id: str
    attempt: int
    key: str


@dataclass
class ToolDone:
    """A worker reports how a tool call it was allowed to run ended."""

    turn_id: str
    attempt: int
    record: ToolRecord


@dataclass
class ToolClaim:
    """The workflow's answer to a worker about to run a tool call.

    ``state`` is ``"run"`` (run it now), ``"done"`` (it ran: reuse ``record``)
    or ``"unknown"`` (an earlier attempt started it and never said how it
    ended: it is not run twice).
    """

    state: str
    record: ToolRecord | None = None


# ---------------------------------------------------------------------------- quota


@dataclass
class QuotaHit:
    """A worker saw a quota error (HTTP 429) for a key."""

    retry_after: float
    worker: str


@dataclass
class QuotaStatus:
    """The backoff of one key: nobody calls the model before ``resume_at`` (epoch seconds)."""

    resume_at: float = 0.0
    hits: int = 0
    last_hit_by: str | None = None
