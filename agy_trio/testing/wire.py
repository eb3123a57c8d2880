"""The OpenAI chat-completions wire format, as the model server speaks it.

Reading: :class:`ChatRequest` is a tolerant view of a request body (malformed
parts are skipped, never raised). Writing: a :class:`~agy_trio.testing.Reply`
becomes either the ``chat.completion.chunk`` events of a streamed answer
(:func:`stream_events`, framed by :func:`sse_frame`) or one ``chat.completion``
object (:func:`completion_body`); errors use OpenAI's error object
(:func:`error_body`).

The google-antigravity harness relies on these details of a stream: the first
event carries ``role: "assistant"``; a tool call's id and name come once, in
its first chunk, and its arguments follow split across chunks; the event
before the last carries ``finish_reason``; when the request asks for usage, a
last chunk has ``choices: []`` and the ``usage`` object; ``data: [DONE]``
ends the stream.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from typing import Any, Final

import attrs

from agy_trio.testing.script import CompletionUsage, Reply

__all__ = [
    "DONE_FRAME",
    "MODEL_ID",
    "ChatRequest",
    "completion_body",
    "content_text",
    "default_error_message",
    "error_body",
    "sse_frame",
    "stream_events",
]

#: The model id reported by ``GET /v1/models``; any model name is accepted in requests.
MODEL_ID: Final = "agy-trio-local"

# The fields the harness adds to every tool schema it declares, then strips
# before calling the tool: a model has to fill them or the call is rejected.
_HARNESS_TOOL_FIELDS: Final = ("toolAction", "toolSummary")

_USER_REQUEST_RE: Final = re.compile(r"<USER_REQUEST>\s*(.*?)\s*</USER_REQUEST>", re.DOTALL)


def content_text(content: object) -> str:
    """The text of a message's ``content``: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


@attrs.frozen(eq=False)
class ChatRequest:
    """One chat-completions request the server received.

    Attributes:
        seq: The request's number on this server, from 1.
        received_at: Wall-clock time of arrival (``time.time()``).
        path: The request path, e.g. ``/v1/chat/completions``.
        body: The parsed JSON body.
    """

    seq: int
    received_at: float
    path: str
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The request's messages (malformed entries skipped)."""
        messages = self.body.get("messages")
        if not isinstance(messages, list):
            return []
        return [m for m in messages if isinstance(m, dict)]

    @property
    def stream(self) -> bool:
        """Whether the client asked for a streamed (SSE) answer."""
        return self.body.get("stream") is True

    @property
    def include_usage(self) -> bool:
        """Whether a streamed answer ends with a usage chunk."""
        options = self.body.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True

    @property
    def model(self) -> str:
        """The model name the client asked for."""
        model = self.body.get("model")
        return model if isinstance(model, str) else MODEL_ID

    @property
    def tools(self) -> dict[str, dict[str, Any]]:
        """The declared function tools, by name, each mapped to its JSON schema."""
        tools: dict[str, dict[str, Any]] = {}
        declared = self.body.get("tools")
        for tool in declared if isinstance(declared, list) else []:
            function = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                parameters = function.get("parameters")
                tools[function["name"]] = parameters if isinstance(parameters, dict) else {}
        return tools

    @property
    def user_request(self) -> str:
        """The text of the last user message, unwrapped from ``<USER_REQUEST>``."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                text = content_text(message.get("content"))
                found = _USER_REQUEST_RE.search(text)
                return found.group(1) if found else text.strip()
        return ""

    @property
    def prompt_text(self) -> str:
        """The system and user messages joined, the text a fault's ``match`` searches."""
        return "\n".join(
            content_text(m.get("content"))
            for m in self.messages
            if m.get("role") in {"system", "user", "developer"}
        )

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form written to the request log: its four fields."""
        return attrs.asdict(self, recurse=False)


# --------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------


def _estimate_tokens(characters: int) -> int:
    # One token per four characters is the usual rule of thumb; never report 0.
    return max(1, math.ceil(characters / 4))


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@attrs.frozen
class _RenderedCall:
    index: int
    id: str
    name: str
    arguments: str


def _render_calls(request: ChatRequest, reply: Reply) -> list[_RenderedCall]:
    tools = request.tools
    rendered: list[_RenderedCall] = []
    for index, call in enumerate(reply.tool_calls):
        arguments = call.arguments
        if not isinstance(arguments, str):
            filled = dict(arguments)
            properties = tools.get(call.name, {}).get("properties", {})
            defaults = {"toolAction": f"Calling {call.name}", "toolSummary": f"{call.name} call"}
            for field in _HARNESS_TOOL_FIELDS:
                if isinstance(properties, dict) and field in properties and field not in filled:
                    filled[field] = defaults[field]
            arguments = json.dumps(filled)
        call_id = call.id or f"call_{request.seq:06d}_{index}"
        rendered.append(_RenderedCall(index, call_id, call.name, arguments))
    return rendered


def _usage(request: ChatRequest, reply: Reply, calls: Sequence[_RenderedCall]) -> CompletionUsage:
    if reply.usage is not None:
        return reply.usage
    prompt = sum(len(content_text(m.get("content"))) for m in request.messages)
    if "tools" in request.body:
        prompt += len(json.dumps(request.body["tools"]))
    completion = len(reply.text) + sum(len(c.name) + len(c.arguments) for c in calls)
    return CompletionUsage(_estimate_tokens(prompt), _estimate_tokens(completion))


def _envelope(request: ChatRequest, kind: str) -> dict[str, Any]:
    # The fields every chat.completion and chat.completion.chunk object starts with.
    return {
        "id": f"chatcmpl-{request.seq:08d}",
        "object": kind,
        "created": int(time.time()),
        "model": request.model,
    }


def stream_events(request: ChatRequest, reply: Reply) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a streamed reply, in order.

    Args:
        request: The request answered; it names the model, the declared tools
            and whether a usage chunk is wanted.
        reply: The reply to stream, split in chunks of ``reply.chunk_size``
            characters.

    Returns:
        The events, without the closing ``[DONE]``.
    """
    calls = _render_calls(request, reply)
    envelope = _envelope(request, "chat.completion.chunk")

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return {**envelope, "choices": [choice]}

    events = [chunk({"role": "assistant", "content": ""})]
    events.extend(chunk({"content": piece}) for piece in _chunks(reply.text, reply.chunk_size))
    for call in calls:
        head = {
            "index": call.index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        events.append(chunk({"tool_calls": [head]}))
        events.extend(
            chunk({"tool_calls": [{"index": call.index, "function": {"arguments": piece}}]})
            for piece in _chunks(call.arguments, reply.chunk_size)
        )
    events.append(chunk({}, reply.effective_finish_reason))
    if request.include_usage:
        usage = _usage(request, reply, calls).to_json()
        events.append({**envelope, "choices": [], "usage": usage})
    return events


def completion_body(request: ChatRequest, reply: Reply) -> dict[str, Any]:
    """The ``chat.completion`` object of a non-streamed reply."""
    calls = _render_calls(request, reply)
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in calls
        ]
    return {
        **_envelope(request, "chat.completion"),
        "choices": [
            {"index": 0, "message": message, "finish_reason": reply.effective_finish_reason}
        ],
        "usage": _usage(request, reply, calls).to_json(),
    }


def sse_frame(event: object) -> bytes:
    """One server-sent event carrying ``event`` as JSON: ``data: {...}`` and a blank line."""
    return b"data: " + json.dumps(event).encode() + b"\n\n"


#: The frame that ends a stream.
DONE_FRAME: Final = b"data: [DONE]\n\n"


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------

_ERROR_TYPES: Final[dict[int, tuple[str, str | None]]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    429: ("requests", "rate_limit_exceeded"),
    503: ("server_error", "service_unavailable"),
}


def error_body(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error object for an HTTP status: ``{"error": {message, type, param, code}}``."""
    default = ("server_error", None) if status >= 500 else ("invalid_request_error", None)
    kind, code = _ERROR_TYPES.get(status, default)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def default_error_message(status: int, retry_after: int | None = None) -> str:
    """The message OpenAI's API gives with an HTTP error status."""
    if status == 429:
        wait = f" Please try again in {retry_after}s." if retry_after is not None else ""
        return f"Rate limit reached for requests.{wait}"
    if status == 401:
        return "Incorrect API key provided."
    if status == 503:
        return "The server is overloaded or not ready yet."
    if status >= 500:
        return "The server had an error while processing your request."
    return "Invalid request."
