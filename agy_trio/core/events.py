"""What comes back from an agent: stream events, token usage, history messages."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any, TypeAlias

import attrs

__all__ = [
    "ChatEvent",
    "Message",
    "StopReason",
    "SubagentText",
    "TextDelta",
    "ThoughtDelta",
    "ToolCall",
    "TurnEnd",
    "Usage",
    "json_safe",
]


@attrs.frozen
class Usage:
    """Token usage of one turn, or summed over many.

    Attributes:
        input_tokens: Tokens sent to the model (prompt, history, tool results).
        output_tokens: Tokens the model produced.
        thinking_tokens: Tokens the model spent thinking, when reported.
        cached_tokens: Input tokens served from a cache, when reported.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output plus thinking tokens."""
        return self.input_tokens + self.output_tokens + self.thinking_tokens

    def __add__(self, other: Usage) -> Usage:
        # Field by field, so a counter added to the class is summed too.
        mine, theirs = attrs.astuple(self), attrs.astuple(other)
        return Usage(*(a + b for a, b in zip(mine, theirs, strict=True)))


class StopReason(enum.Enum):
    """Why a turn ended.

    The ``MAX_*_EXCEEDED`` members say which limit of the agent's
    :class:`~agy_trio.core.budget.Budget` stopped the turn; ``QUOTA_EXHAUSTED``
    that the backend's model quota ran out (the SDK's names for both).
    """

    END_TURN = "end_turn"
    CANCELLED = "cancelled"
    MAX_TOKENS = "max_tokens"
    SAFETY = "safety"
    ERROR = "error"
    MAX_MODEL_CALLS_EXCEEDED = "max_model_calls_exceeded"
    MAX_TOOL_CALLS_EXCEEDED = "max_tool_calls_exceeded"
    MAX_INPUT_TOKENS_EXCEEDED = "max_input_tokens_exceeded"
    MAX_OUTPUT_TOKENS_EXCEEDED = "max_output_tokens_exceeded"
    MAX_TOTAL_TOKENS_EXCEEDED = "max_total_tokens_exceeded"
    QUOTA_EXHAUSTED = "quota_exhausted"


@attrs.frozen
class TextDelta:
    """A piece of the model's answer text."""

    text: str


@attrs.frozen
class ThoughtDelta:
    """A piece of the model's visible reasoning."""

    text: str


@attrs.frozen
class ToolCall:
    """A tool call the model made during a turn, with its outcome.

    Attributes:
        name: The tool's name.
        arguments: The arguments the model passed.
        call_id: The id the model gave the call, when it gave one.
        result: What the tool returned (None if it failed or was denied).
        error: Why the call failed or was denied, if it did.
        server_name: The MCP server the tool belongs to; None for the
            agent's own and built-in tools.
        depth: 0 for a call of the agent itself; 1 for a call of a subagent
            it invoked, 2 for one of that subagent's subagents, ...
        trajectory_id: The harness's id of the trajectory (the agent's or a
            subagent's) the call belongs to, when known.
    """

    name: str
    arguments: dict[str, Any] = attrs.field(factory=dict)
    call_id: str | None = None
    result: Any = None
    error: str | None = None
    server_name: str | None = None
    depth: int = 0
    trajectory_id: str | None = None


@attrs.frozen
class SubagentText:
    """A piece of a subagent's answer text (not part of the agent's own answer).

    Attributes:
        text: The text.
        depth: How deep the subagent is (1: invoked by the agent itself).
        trajectory_id: The harness's id of the subagent's trajectory.
        thought: Whether it is the subagent's reasoning rather than its answer.
    """

    text: str
    depth: int = 1
    trajectory_id: str = ""
    thought: bool = False


@attrs.frozen
class TurnEnd:
    """The last event of a turn: its usage and why it stopped.

    Attributes:
        usage: The turn's token usage.
        stop_reason: Why it stopped.
        structured_output: The answer the model handed over through its
            ``finish`` tool in this turn, parsed from JSON (when the agent has
            a ``response_schema``); None when it gave none.
    """

    usage: Usage = Usage()
    stop_reason: StopReason = StopReason.END_TURN
    structured_output: Any = attrs.field(default=None, hash=False)
    trajectory_usages: Mapping[str, Usage] = attrs.field(factory=dict, hash=False)
    """The agent's usage so far by trajectory (its own and each subagent's), when
    the backend reports it (the SDK's ``Conversation.trajectory_usages``)."""


ChatEvent: TypeAlias = TextDelta | ThoughtDelta | ToolCall | SubagentText | TurnEnd


@attrs.frozen
class Message:
    """One entry of a conversation's history.

    Attributes:
        role: ``"user"``, ``"assistant"`` or ``"tool"``.
        text: The message text (for a tool message, the tool's rendered result).
        tool_calls: Tool calls an assistant message made.
        interrupted: Whether the message belongs to a turn that was
            interrupted before it ended (cancelled, timed out, or abandoned by
            its reader): the prompt, and what was produced of the answer.
    """

    role: str
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    interrupted: bool = False


def json_safe(value: Any) -> Any:
    """``value`` if JSON can carry it, else its ``repr``.

    A tool's arguments and result may be any Python object; where they must
    cross a JSON wire (the HTTP API, Temporal's history) what JSON cannot
    carry is sent as its repr rather than failing the turn.
    """
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value
