"""The OpenAI Responses wire format: one turn's events as Response objects and stream events.

A :class:`ResponseRender` turns the events of one served turn into what the
Responses API sends: the stream events (``response.created``,
``response.in_progress``, ``response.output_item.added`` ...,
``response.completed``), each with its ``sequence_number``, and the
``Response`` object itself, whose ``output`` the same events build. The
rendering is a pure function of the turn's events, so rendering a turn again
from its first event gives the very same stream: that is how ``GET
/v1/responses/{id}?stream=true&starting_after=N`` resumes a stream without a
second record of it.

Items follow the turn: consecutive thoughts make one ``reasoning`` item
(``reasoning_text`` content, ``response.reasoning_text.delta`` events),
consecutive text one assistant ``message`` item (``output_text`` content),
and each tool call a ``function_call`` item (its arguments in one delta),
followed by a ``function_call_output`` item with its result once the tool
ran. Every item added is done before the next one is added, and before the
response's last event.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import attrs

from agy_trio.core.events import StopReason, Usage, json_safe

__all__ = ["ResponseRecord", "ResponseRender", "new_item_id", "openai_error", "usage_object"]


def new_item_id(prefix: str) -> str:
    """A fresh id in OpenAI's style, e.g. ``resp_3f9c...`` or ``msg_...``."""
    return f"{prefix}_{secrets.token_hex(12)}"


def openai_error(
    message: str, kind: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """An error body in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def usage_object(usage: Usage) -> dict[str, Any]:
    """A ``ResponseUsage`` object for ``usage``."""
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": 0,
        },
        "output_tokens": usage.output_tokens + usage.thinking_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.thinking_tokens},
        "total_tokens": usage.total_tokens,
    }


@attrs.define
class ResponseRecord:
    """What the server knows of one response besides its turn's events.

    Attributes:
        id: ``resp_...``.
        model: The served profile it was asked of.
        agent_id: The agent that runs it (``previous_response_id`` continues it).
        created_at: Unix time of the request.
        background: Whether it runs on after its client disconnects.
        instructions: The request's ``instructions``, echoed back.
        metadata: The request's ``metadata``, echoed back.
        previous_response_id: The response it continues, if any.
        store: Whether it is kept (``GET`` and ``previous_response_id`` find it).
    """

    id: str
    model: str
    agent_id: str
    created_at: float
    background: bool = False
    instructions: str | None = None
    metadata: dict[str, str] = attrs.field(factory=dict)
    previous_response_id: str | None = None
    store: bool = True


class ResponseRender:
    """Renders one turn, event by event, as Responses stream events and a Response object.

    Feed it the turn's events in order (:meth:`text`, :meth:`thought`,
    :meth:`tool_started`, :meth:`tool_finished`, then :meth:`finished` or
    :meth:`failed`); each call returns the stream events it produces. Start
    with :meth:`start`. :meth:`response` is the Response object as the events
    so far make it.

    Args:
        record: The response being rendered.
    """

    def __init__(self, record: ResponseRecord) -> None:
        self.record = record
        self.status = "in_progress"
        self.output: list[dict[str, Any]] = []
        self.usage: Usage | None = None
        self.error: dict[str, Any] | None = None
        self.completed_at: float | None = None
        self._sequence = 0
        # The item being filled (a message or reasoning item), and its text.
        self._open: dict[str, Any] | None = None
        self._open_text: list[str] = []
        self._calls: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ the object

    def response(self) -> dict[str, Any]:
        """The Response object as it stands."""
        record = self.record
        return {
            "id": record.id,
            "object": "response",
            "created_at": int(record.created_at),
            "completed_at": None if self.completed_at is None else int(self.completed_at),
            "status": self.status,
            "background": record.background,
            "model": record.model,
            "instructions": record.instructions,
            "metadata": dict(record.metadata),
            "previous_response_id": record.previous_response_id,
            "output": [dict(item) for item in self.output],
            "error": self.error,
            "incomplete_details": None,
            "usage": None if self.usage is None else usage_object(self.usage),
            "parallel_tool_calls": False,
            "tool_choice": "auto",
            "tools": [],
            "temperature": None,
            "top_p": None,
            "store": record.store,
            "text": {"format": {"type": "text"}},
            "truncation": "disabled",
        }

    @property
    def output_text(self) -> str:
        """The answer: the text of every message item, joined."""
        return "".join(
            part["text"]
            for item in self.output
            if item["type"] == "message"
            for part in item["content"]
        )

    # ------------------------------------------------------------------ events

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def start(self) -> list[dict[str, Any]]:
        """The first two events: ``response.created`` and ``response.in_progress``."""
        return [
            self._event("response.created", response=self.response()),
            self._event("response.in_progress", response=self.response()),
        ]

    def _item_id(self, prefix: str) -> str:
        # Derived from the response and the item's place, never random: the
        # same turn rendered again (a resumed stream) names its items the same.
        return f"{prefix}_{self.record.id.removeprefix('resp_')}_{len(self.output)}"

    def _add_item(self, item: dict[str, Any]) -> dict[str, Any]:
        self.output.append(item)
        return self._event(
            "response.output_item.added", output_index=len(self.output) - 1, item=dict(item)
        )

    def _open_item(self, kind: str) -> list[dict[str, Any]]:
        """Make sure an item of ``kind`` (message or reasoning) is open; close any other."""
        if self._open is not None and self._open["type"] == kind:
            return []
        events = self._close()
        if kind == "message":
            item: dict[str, Any] = {
                "id": self._item_id("msg"),
                "type": "message",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            }
            part: dict[str, Any] = {"type": "output_text", "text": "", "annotations": []}
        else:
            item = {
                "id": self._item_id("rs"),
                "type": "reasoning",
                "status": "in_progress",
                "summary": [],
                "content": [],
            }
            part = {"type": "reasoning_text", "text": ""}
        self._open, self._open_text = item, []
        events.append(self._add_item(item))
        events.append(
            self._event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=len(self.output) - 1,
                content_index=0,
                part=part,
            )
        )
        return events

    def _close(self) -> list[dict[str, Any]]:
        """Finish the open message or reasoning item, if any."""
        item = self._open
        if item is None:
            return []
        self._open = None
        text = "".join(self._open_text)
        index = len(self.output) - 1
        where = {"item_id": item["id"], "output_index": index, "content_index": 0}
        if item["type"] == "message":
            part: dict[str, Any] = {"type": "output_text", "text": text, "annotations": []}
            done = self._event("response.output_text.done", text=text, logprobs=[], **where)
        else:
            part = {"type": "reasoning_text", "text": text}
            done = self._event("response.reasoning_text.done", text=text, **where)
        item["content"] = [part]
        item["status"] = "completed"
        self.output[index] = item
        return [
            done,
            self._event("response.content_part.done", part=dict(part), **where),
            self._event("response.output_item.done", output_index=index, item=dict(item)),
        ]

    def _delta(self, kind: str, text: str) -> list[dict[str, Any]]:
        events = self._open_item(kind)
        assert self._open is not None
        self._open_text.append(text)
        name = (
            "response.output_text.delta" if kind == "message" else "response.reasoning_text.delta"
        )
        extra: dict[str, Any] = {"logprobs": []} if kind == "message" else {}
        events.append(
            self._event(
                name,
                item_id=self._open["id"],
                output_index=len(self.output) - 1,
                content_index=0,
                delta=text,
                **extra,
            )
        )
        return events

    def text(self, text: str) -> list[dict[str, Any]]:
        """A piece of the answer: an ``output_text`` delta (opening a message item)."""
        return self._delta("message", text)

    def thought(self, text: str) -> list[dict[str, Any]]:
        """A piece of reasoning: a ``reasoning_text`` delta (opening a reasoning item)."""
        return self._delta("reasoning", text)

    def tool_started(self, call_id: str, name: str, arguments: Any) -> list[dict[str, Any]]:
        """The model called a tool: a whole ``function_call`` item, added, argued, done."""
        events = self._close()
        arguments_json = json.dumps(json_safe(arguments), ensure_ascii=False)
        item: dict[str, Any] = {
            "id": self._item_id("fc"),
            "type": "function_call",
            "call_id": call_id,
            "name": name,
            "arguments": "",
            "status": "in_progress",
        }
        events.append(self._add_item(item))
        index = len(self.output) - 1
        where = {"item_id": item["id"], "output_index": index}
        events.append(
            self._event("response.function_call_arguments.delta", delta=arguments_json, **where)
        )
        events.append(
            self._event(
                "response.function_call_arguments.done",
                arguments=arguments_json,
                name=name,
                **where,
            )
        )
        item = {**item, "arguments": arguments_json, "status": "completed"}
        self.output[index] = item
        self._calls[call_id] = item
        events.append(self._event("response.output_item.done", output_index=index, item=item))
        return events

    def tool_finished(
        self, call_id: str, name: str, arguments: Any, result: Any, error: str | None
    ) -> list[dict[str, Any]]:
        """A tool call's outcome: a ``function_call_output`` item (its result, or the error)."""
        events = [] if call_id in self._calls else self.tool_started(call_id, name, arguments)
        output = error if error is not None else json.dumps(json_safe(result), ensure_ascii=False)
        item = {
            "id": self._item_id("fco"),
            "type": "function_call_output",
            "call_id": call_id,
            "name": name,
            "output": output,
            "status": "incomplete" if error is not None else "completed",
        }
        events.append(self._add_item(item))
        events.append(
            self._event("response.output_item.done", output_index=len(self.output) - 1, item=item)
        )
        return events

    def finished(self, stop_reason: StopReason, usage: Usage, at: float) -> list[dict[str, Any]]:
        """The turn ended: ``response.completed`` (``response.incomplete`` if it was cut short)."""
        events = self._close()
        self.usage = usage
        self.completed_at = at
        if stop_reason is StopReason.CANCELLED:
            self.status = "cancelled"
            kind = "response.incomplete"
        elif stop_reason in (StopReason.MAX_TOKENS, StopReason.SAFETY):
            self.status = "incomplete"
            kind = "response.incomplete"
        else:
            self.status = "completed"
            kind = "response.completed"
        response = self.response()
        if stop_reason is StopReason.MAX_TOKENS:
            response["incomplete_details"] = {"reason": "max_output_tokens"}
        elif stop_reason is StopReason.SAFETY:
            response["incomplete_details"] = {"reason": "content_filter"}
        events.append(self._event(kind, response=response))
        return events

    def failed(self, kind: str, message: str, at: float) -> list[dict[str, Any]]:
        """The turn failed: ``response.failed``, with the error's class and message."""
        events = self._close()
        self.status = "failed"
        self.completed_at = at
        code = "rate_limit_exceeded" if kind == "QuotaExceeded" else "server_error"
        self.error = {"code": code, "message": f"{kind}: {message}"}
        events.append(self._event("response.failed", response=self.response()))
        return events
