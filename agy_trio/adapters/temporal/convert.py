"""agy_trio's values to the plain data of :mod:`~agy_trio.adapters.temporal.messages`, and back."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agy_trio.adapters.temporal.messages import (
    MessageData,
    PartData,
    Segment,
    ToolRecord,
    UsageData,
)
from agy_trio.core.content import BlobPart, Part, TextPart
from agy_trio.core.events import (
    ChatEvent,
    Message,
    TextDelta,
    ThoughtDelta,
    ToolCall,
    Usage,
    json_safe,
)

__all__ = [
    "event_of",
    "message_of",
    "parts_data",
    "parts_of",
    "segment_of",
    "tool_call_of",
    "tool_key",
    "usage_data",
    "usage_of",
]


def parts_data(parts: Sequence[Part]) -> list[PartData]:
    """A prompt as plain data."""
    out: list[PartData] = []
    for part in parts:
        if isinstance(part, TextPart):
            out.append(PartData(text=part.text))
        else:
            data = base64.b64encode(part.data).decode("ascii")
            out.append(PartData(data_b64=data, mime_type=part.mime_type))
    return out


def parts_of(parts: Sequence[PartData]) -> list[Part]:
    """A prompt from plain data."""
    out: list[Part] = []
    for part in parts:
        if part.text is not None:
            out.append(TextPart(part.text))
        elif part.data_b64 is not None and part.mime_type is not None:
            out.append(BlobPart(base64.b64decode(part.data_b64), part.mime_type))
    return out


def usage_data(usage: Usage | None) -> UsageData:
    """Usage as plain data."""
    if usage is None:
        return UsageData()
    return UsageData(
        usage.input_tokens, usage.output_tokens, usage.thinking_tokens, usage.cached_tokens
    )


def usage_of(data: UsageData) -> Usage:
    """Usage from plain data."""
    return Usage(data.input_tokens, data.output_tokens, data.thinking_tokens, data.cached_tokens)


def tool_key(turn_id: str, name: str, arguments: Mapping[str, Any], occurrence: int) -> str:
    """What identifies a tool call across attempts of one turn.

    The model's call id would be the natural key, but it does not reach the
    tool (``AgentServices.call_tool`` gets a name and arguments only); a call
    is the ``occurrence``-th call of ``name`` with these arguments in the turn.
    """
    encoded = json.dumps(json_safe(dict(arguments)), sort_keys=True, default=repr)
    digest = hashlib.sha256(encoded.encode()).hexdigest()[:16]
    return f"{turn_id}:{name}:{digest}:{occurrence}"


def tool_call_of(record: ToolRecord) -> ToolCall:
    """A :class:`ToolCall` event from a record."""
    return ToolCall(
        record.name, dict(record.arguments), record.call_id, record.result, record.error
    )


def segment_of(event: ChatEvent, key: str = "") -> Segment | None:
    """The segment an event adds to what a turn shows (None for ``TurnEnd``)."""
    if isinstance(event, TextDelta):
        return Segment("text", event.text)
    if isinstance(event, ThoughtDelta):
        return Segment("thought", event.text)
    if isinstance(event, ToolCall):
        record = ToolRecord(
            key=key,
            name=event.name,
            arguments=json_safe(dict(event.arguments)),
            call_id=event.call_id,
            result=json_safe(event.result),
            error=event.error,
        )
        return Segment("tool", tool=record)
    return None


def event_of(segment: Segment) -> ChatEvent:
    """The event that shows a segment."""
    if segment.kind == "tool" and segment.tool is not None:
        return tool_call_of(segment.tool)
    if segment.kind == "thought":
        return ThoughtDelta(segment.text)
    return TextDelta(segment.text)


def message_of(data: MessageData) -> Message:
    """A history entry from plain data."""
    return Message(data.role, data.text, tuple(tool_call_of(r) for r in data.tool_calls))


def events_of(segments: Iterable[Segment]) -> list[ChatEvent]:
    """The events that show ``segments``."""
    return [event_of(s) for s in segments]
