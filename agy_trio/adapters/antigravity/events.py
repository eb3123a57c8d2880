"""From the google-antigravity SDK's data to agy_trio's: content, events, usage, history.

Pure translation, no I/O: what goes into the SDK (content parts), what comes
out of it (usage, stop reasons, steps turned into history messages, the
harness's reports of a truncated or blocked answer), and two repairs of what
the harness hands over on the OpenAI-compatible path: inline ``<think>``
reasoning separated from the answer, and tool arguments whose integers the
harness turned into floats.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping, Sequence, Set
from typing import TYPE_CHECKING, Any

from agy_trio.adapters.antigravity.sdk import load_sdk
from agy_trio.core.content import BlobPart, Part, TextPart
from agy_trio.core.events import Message, StopReason, ToolCall, Usage
from agy_trio.errors import AgyError, ConfigError, MaxTokensReached, SafetyBlocked

if TYPE_CHECKING:
    from agy_trio.core.tools import Tool

__all__ = [
    "ThoughtSplitter",
    "normalize_arguments",
    "refusal",
    "sdk_content",
    "stop_reason",
    "tool_name",
    "transcript",
    "usage_of",
    "without_thoughts",
]


# The SDK's StopReason values (types.py:1376) that are not a normal end: a
# budget limit, or the model quota; each has a member of ours by the same name.
_SDK_STOPS = {
    member.name: member
    for member in (
        StopReason.MAX_MODEL_CALLS_EXCEEDED,
        StopReason.MAX_TOOL_CALLS_EXCEEDED,
        StopReason.MAX_INPUT_TOKENS_EXCEEDED,
        StopReason.MAX_OUTPUT_TOKENS_EXCEEDED,
        StopReason.MAX_TOTAL_TOKENS_EXCEEDED,
        StopReason.QUOTA_EXHAUSTED,
    )
}


def stop_reason(sdk_reason: Any) -> StopReason:
    """The end of a turn that the SDK's ``StopReason`` means.

    A budget or quota stop becomes our member of the same name;
    ``UNSPECIFIED`` (and anything unknown) a normal end.
    """
    value = getattr(sdk_reason, "value", sdk_reason)
    return _SDK_STOPS.get(str(value), StopReason.END_TURN)


def usage_of(metadata: Any) -> Usage:
    """The SDK's ``UsageMetadata`` (None: nothing reported) as :class:`Usage`."""
    if metadata is None:
        return Usage()
    return Usage(
        input_tokens=metadata.prompt_token_count or 0,
        output_tokens=metadata.candidates_token_count or 0,
        thinking_tokens=metadata.thoughts_token_count or 0,
        cached_tokens=metadata.cached_content_token_count or 0,
    )


def tool_name(value: Any) -> str:
    """A tool's name, whether the SDK gives it as a ``BuiltinTools`` member or a string."""
    return str(value.value) if isinstance(value, enum.Enum) else str(value)


def sdk_content(parts: Sequence[Part]) -> list[Any]:
    """Our content parts as SDK content primitives.

    Raises:
        ConfigError: A blob's MIME type is one the SDK does not take.
    """
    types = load_sdk().types
    content: list[Any] = []
    for part in parts:
        if isinstance(part, TextPart):
            content.append(part.text)
        elif isinstance(part, BlobPart):
            try:
                content.append(types.from_bytes(part.data, part.mime_type))
            except ValueError as exc:
                raise ConfigError(str(exc), field="content") from None
    return content


def normalize_arguments(tool: Tool, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Undo the SDK's float-for-every-number: ``3.0`` becomes ``3`` where the schema says integer.

    The harness passes tool arguments as a protobuf Struct, whose numbers are
    all doubles; the model wrote an integer.
    """
    properties = tool.parameters.get("properties", {})
    normalized = dict(arguments)
    for key, value in arguments.items():
        schema = properties.get(key)
        if (
            isinstance(value, float)
            and value.is_integer()
            and isinstance(schema, dict)
            and schema.get("type") == "integer"
        ):
            normalized[key] = int(value)
    return normalized


def _tool_text(call: ToolCall) -> str:
    if call.error is not None:
        return call.error
    return "" if call.result is None else repr(call.result)


def transcript(
    steps: Sequence[Any], outcomes: Mapping[str, ToolCall], interrupted: Set[int] = frozenset()
) -> tuple[list[Message], list[int], int]:
    """Turn SDK steps into (messages, compaction indices, completed turns).

    The SDK's history holds every partial update of every step. Only finished
    steps become messages: the user's prompts, tool calls (once each, with
    their outcome when this backend ran them) and the model's complete
    answers. Prompts a :class:`RetryPolicy` sent again, or the empty
    continuation it sent, are not shown twice; system error steps are left out
    (the error was raised to the caller). Compaction indices are positions in
    the returned message list. The messages of a turn whose prompt step's
    index is in ``interrupted`` are marked so (the SDK records an interrupted
    answer as if it were whole), and the turn does not count as completed.
    """
    sdk_types = load_sdk().types
    messages: list[Message] = []
    compactions: list[int] = []
    seen_calls: set[str] = set()
    pending: list[ToolCall] = []
    completed = 0
    answered = True
    cut = False  # whether the messages being read belong to an interrupted turn
    for step in steps:
        if step.type == sdk_types.StepType.COMPACTION:
            compactions.append(len(messages))
            continue
        if step.source == sdk_types.StepSource.USER:
            text = step.content or ""
            if not text.strip():
                continue  # an empty continuation sent by a retry
            if messages and messages[-1].role == "user" and messages[-1].text == text:
                if step.step_index in interrupted and not messages[-1].interrupted:
                    messages[-1] = Message("user", text, interrupted=True)
                    cut = True
                continue  # the same prompt again after a failure that left no answer
            cut = step.step_index in interrupted
            messages.append(Message("user", text, interrupted=cut))
            answered = False
            continue
        for sdk_call in step.tool_calls:
            name = tool_name(sdk_call.name)
            key = sdk_call.id or f"{name}:{json.dumps(sdk_call.args, default=str)}"
            if key in seen_calls:
                continue
            seen_calls.add(key)
            call = outcomes.get(sdk_call.id or "") or ToolCall(
                tool_name(sdk_call.name),
                dict(sdk_call.args),
                sdk_call.id,
                server_name=getattr(sdk_call, "server_name", None) or None,
            )
            messages.append(Message("tool", _tool_text(call), (call,), interrupted=cut))
            pending.append(call)
        if (
            step.source == sdk_types.StepSource.MODEL
            and step.target == sdk_types.StepTarget.USER
            and step.status == sdk_types.StepStatus.DONE
            and step.content
        ):
            messages.append(
                Message("assistant", without_thoughts(step.content), tuple(pending), cut)
            )
            pending = []
            if not answered and not cut:
                completed += 1
                answered = True
    return messages, compactions, completed


class ThoughtSplitter:
    """Separates ``<think>...</think>`` reasoning from answer text in a text stream.

    OpenAI-compatible reasoning models (DeepSeek-R1, Qwen and others served by
    Ollama or vLLM) write their reasoning inline between these tags; the
    harness passes it on as answer text. Tags may be split across chunks, so
    a possible partial tag at the end of a chunk waits for the next one.
    """

    _OPEN, _CLOSE = "<think>", "</think>"

    def __init__(self) -> None:
        self.inside = False
        self._pending = ""

    def feed(self, text: str) -> list[tuple[bool, str]]:
        """Split ``text``; returns (is_thought, piece) pairs in order."""
        data, self._pending = self._pending + text, ""
        pieces: list[tuple[bool, str]] = []
        while data:
            tag = self._CLOSE if self.inside else self._OPEN
            found = data.find(tag)
            if found >= 0:
                if found:
                    pieces.append((self.inside, data[:found]))
                data = data[found + len(tag) :]
                self.inside = not self.inside
                continue
            keep = next(
                (
                    n
                    for n in range(min(len(tag) - 1, len(data)), 0, -1)
                    if tag.startswith(data[-n:])
                ),
                0,
            )
            if len(data) > keep:
                pieces.append((self.inside, data[: len(data) - keep]))
            self._pending = data[len(data) - keep :]
            break
        return pieces

    def flush(self) -> list[tuple[bool, str]]:
        """Whatever was held back, at the end of the stream."""
        pending, self._pending = self._pending, ""
        return [(self.inside, pending)] if pending else []


_THOUGHT_BLOCK = re.compile(r"<think>.*?(?:</think>|$)\s*", re.DOTALL)


def without_thoughts(text: str) -> str:
    """An answer's text without its inline ``<think>`` reasoning."""
    return _THOUGHT_BLOCK.sub("", text) if "<think>" in text else text


_TRUNCATED = re.compile(r"max(?:imum)? tokens? limit|maximum token limit", re.IGNORECASE)
_BLOCKED = re.compile(r"content safety|safety filter|content[ _-]filter", re.IGNORECASE)


def refusal(message: str) -> AgyError | None:
    """The error a harness system step reports about the model's answer, if any."""
    if _TRUNCATED.search(message):
        return MaxTokensReached(f"the model's answer was cut at its token limit: {message}")
    if _BLOCKED.search(message):
        return SafetyBlocked(f"the model's answer was blocked: {message}")
    return None
