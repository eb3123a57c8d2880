"""What a served turn records: typed, JSON-safe event payloads, each a :class:`TurnEvent`.

Every protocol the server speaks renders a turn from these (see
:mod:`agy_trio.serve.turn_log` for the log that holds them):

======================  ==================================================
:class:`Text`           ``text``: a piece of the answer
:class:`Thought`        ``text``: a piece of the model's visible reasoning
:class:`ToolStarted`    ``call_id``, ``name``, ``arguments``,
                        ``server_name`` (an MCP tool's server): the model
                        called a tool (recorded before its result, and
                        before an approval it waits on)
:class:`ToolFinished`   ``call_id``, ``name``, ``arguments``, ``result``,
                        ``error``, ``server_name``: the call's outcome
                        (``error`` set when it failed or was denied)
:class:`ApprovalAsked`  ``approval_id``, ``call_id``, ``agent_id``,
                        ``tool``, ``arguments``, ``reason``: the turn is
                        parked until someone answers
:class:`ApprovalAnswered` ``approval_id``, ``approved``, ``reason``
:class:`UsageReport`    ``usage``: the turn's token usage
                        (:class:`~agy_trio.Usage`), just before its end
:class:`TurnFinished`   ``stop_reason`` (:class:`~agy_trio.StopReason`),
                        ``text`` (the whole answer), ``usage``,
                        ``structured_output`` (with a response schema):
                        the last event of a turn that ended, cancelled
                        included
:class:`TurnFailed`     ``type`` (the agy_trio error class), ``message``
                        (secrets masked), ``retry_after``: the last event
                        of a turn that failed
======================  ==================================================

Exactly one :class:`TurnFinished` or :class:`TurnFailed` ends every log
(:data:`TERMINAL`). Each payload's ``kind`` is its :class:`EventKind`.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Mapping
from typing import Any, TypeAlias

import attrs

from agy_trio.core.events import StopReason, Usage, json_safe

__all__ = [
    "TERMINAL",
    "ApprovalAnswered",
    "ApprovalAsked",
    "EventKind",
    "Payload",
    "Text",
    "Thought",
    "ToolFinished",
    "ToolStarted",
    "TurnEvent",
    "TurnFailed",
    "TurnFinished",
    "UsageReport",
    "new_id",
]


class EventKind(enum.Enum):
    """What a :class:`TurnEvent` reports; the value is its name on the native wire."""

    TEXT = "text"
    THOUGHT = "thought"
    TOOL_STARTED = "tool_started"
    TOOL_FINISHED = "tool_finished"
    APPROVAL_ASKED = "approval_asked"
    APPROVAL_ANSWERED = "approval_answered"
    USAGE = "usage"
    FINISHED = "finished"
    FAILED = "failed"


def _frozen_json(value: Any) -> Any:
    return json_safe(dict(value) if isinstance(value, Mapping) else value)


@attrs.frozen
class _Piece:
    """A piece of the text a model streams."""

    text: str


@attrs.frozen
class Text(_Piece):
    """A piece of the answer."""

    kind = EventKind.TEXT


@attrs.frozen
class Thought(_Piece):
    """A piece of the model's visible reasoning."""

    kind = EventKind.THOUGHT


@attrs.frozen
class _ToolCall:
    """What both ends of a tool call name: the call, the tool, its arguments."""

    call_id: str
    name: str
    arguments: Any = attrs.field(factory=dict, converter=_frozen_json)


@attrs.frozen
class ToolStarted(_ToolCall):
    """The model called a tool; its :class:`ToolFinished` comes later with the same ``call_id``."""

    server_name: str | None = None  # the MCP server of an MCP tool
    kind = EventKind.TOOL_STARTED


@attrs.frozen
class ToolFinished(_ToolCall):
    """A tool call's outcome: ``result``, or ``error`` when it failed or was denied."""

    result: Any = attrs.field(default=None, converter=json_safe)
    error: str | None = None
    server_name: str | None = None  # the MCP server of an MCP tool
    kind = EventKind.TOOL_FINISHED


@attrs.frozen
class ApprovalAsked:
    """A tool call waits for a person's answer (an ``ask_user`` rule without a handler)."""

    approval_id: str
    call_id: str
    agent_id: str
    tool: str
    arguments: Any = attrs.field(factory=dict, converter=_frozen_json)
    reason: str = ""
    kind = EventKind.APPROVAL_ASKED


@attrs.frozen
class ApprovalAnswered:
    """The answer to an :class:`ApprovalAsked` (a timeout answers ``approved=False``)."""

    approval_id: str
    approved: bool
    reason: str = ""
    kind = EventKind.APPROVAL_ANSWERED


@attrs.frozen
class UsageReport:
    """The turn's token usage, recorded just before its :class:`TurnFinished`."""

    usage: Usage
    kind = EventKind.USAGE


@attrs.frozen
class TurnFinished:
    """The last event of a turn that ended (normally, cancelled, or stopped by the model)."""

    stop_reason: StopReason
    text: str
    usage: Usage = attrs.field(factory=Usage)
    # The answer the model handed over through its finish tool, as JSON.
    structured_output: Any = attrs.field(default=None, converter=json_safe)
    kind = EventKind.FINISHED


@attrs.frozen
class TurnFailed:
    """The last event of a turn that failed: the error's class name and (masked) message."""

    type: str
    message: str
    retry_after: float | None = None
    kind = EventKind.FAILED


Payload: TypeAlias = (
    Text
    | Thought
    | ToolStarted
    | ToolFinished
    | ApprovalAsked
    | ApprovalAnswered
    | UsageReport
    | TurnFinished
    | TurnFailed
)
"""Any event payload."""

TERMINAL = frozenset({EventKind.FINISHED, EventKind.FAILED})
"""The kinds that end a log; each log has exactly one of them, last."""


@attrs.frozen
class TurnEvent:
    """One recorded event of a turn.

    Attributes:
        id: 1 for the turn's first event, then 2, 3...: monotonically increasing.
        turn_id: The turn it belongs to.
        payload: What happened.
    """

    id: int
    turn_id: str
    payload: Payload

    @property
    def kind(self) -> EventKind:
        """The payload's kind."""
        return self.payload.kind


def new_id(prefix: str) -> str:
    """A fresh, unguessable id such as ``turn-3f9c...`` (ids are capabilities on the wire)."""
    return f"{prefix}-{secrets.token_hex(8)}"
