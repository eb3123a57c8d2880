"""What a worker keeps of a conversation between turns, and how it rebuilds one.

A worker holds live SDK conversations (:class:`LiveConversation`), each tagged
with the lineage of the transcript it reflects. When a turn arrives with
another lineage, the conversation is rebuilt from the workflow's transcript:
:func:`replay_instructions` carries the history into a fresh SDK conversation
as system instructions.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from agy_trio.adapters.temporal.convert import tool_key
from agy_trio.adapters.temporal.messages import MessageData, Segment, TurnTask
from agy_trio.adapters.temporal.segments import VisibleStream, segments_text

if TYPE_CHECKING:
    from agy_trio.core.agent import AgentHandle

__all__ = [
    "LiveConversation",
    "TurnContext",
    "TurnProgress",
    "next_lineage",
    "replay_instructions",
]


class TurnProgress:
    """What a turn has shown, written by Trio and read by the heartbeat task.

    Args:
        shown: What earlier attempts of the turn showed.
    """

    def __init__(self, shown: list[Segment]) -> None:
        self._lock = threading.Lock()
        self._stream = VisibleStream(shown)
        self.version = 0

    def add(self, segment: Segment) -> None:
        """Trio thread: the turn showed one more piece."""
        with self._lock:
            self._stream.add(segment)
            self.version += 1

    def snapshot(self) -> list[Segment]:
        """Any thread: everything the turn shows so far."""
        with self._lock:
            return self._stream.visible()


class TurnContext:
    """The turn a conversation is playing: names its tool calls for the workflow.

    Args:
        task: The activity input of the attempt.
    """

    def __init__(self, task: TurnTask) -> None:
        self.task = task
        self._seen: collections.Counter[str] = collections.Counter()

    def next_key(self, name: str, arguments: Mapping[str, Any]) -> str:
        """The key of the next call of ``name`` with ``arguments`` in this turn."""
        base = tool_key(self.task.turn_id, name, arguments, 0)
        self._seen[base] += 1
        return base[: -len(":0")] + f":{self._seen[base] - 1}"


@attrs.define(eq=False)
class LiveConversation:
    """A live SDK conversation this worker holds for a workflow."""

    conversation_id: str
    workflow_id: str
    lineage: str
    agent: AgentHandle | None = None
    busy: bool = False
    turn: TurnContext | None = None
    last_used: float = attrs.field(factory=time.monotonic)


def next_lineage(task: TurnTask) -> str:
    """The lineage the conversation has once this attempt's turn is committed."""
    revision = int(task.lineage.split(":", 1)[0])
    return f"{revision + 1}:{task.turn_id}:{task.attempt}"


def replay_instructions(
    base: str | None, transcript: list[MessageData], shown: list[Segment]
) -> str | None:
    """System instructions that carry a saved conversation into a fresh SDK conversation.

    Args:
        base: The agent's own system instructions.
        transcript: The messages before the prompt about to be sent.
        shown: What an interrupted earlier attempt of that prompt's answer showed.
    """
    if not transcript and not segments_text(shown):
        return base
    lines: list[str] = [base, ""] if base else []
    if transcript:
        lines.append(
            "This conversation continues from its saved record. The messages so far, oldest first:"
        )
        for message in transcript:
            lines.append(f"[{message.role}]")
            lines.append(message.text)
            for call in message.tool_calls:
                outcome = call.error if call.error is not None else json.dumps(call.result)
                lines.append(
                    f"(called tool {call.name} with {json.dumps(call.arguments)}: {outcome})"
                )
    partial = segments_text(shown)
    if partial:
        lines.append(
            "You had started answering the next message and were interrupted after "
            "writing the text between the markers. Continue from exactly that point, "
            "without repeating it."
        )
        lines.append(f"<<<{partial}>>>")
    return "\n".join(lines)
