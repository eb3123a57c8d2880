"""A local, Trio-native, OpenAI-compatible chat-completions server that stands in for the model.

The google-antigravity harness talks to any OpenAI-compatible endpoint, so a
small server that answers ``POST /v1/chat/completions`` lets the real SDK and
its harness run fully offline: in tests, in benchmarks and from the command
line. The server is a raw ASGI application served by hypercorn's Trio worker.

What it answers:

* **A script**: :class:`Reply` objects consumed in arrival order, or a
  callable that picks a reply per request. When the script has nothing to say,
  the default behaviour (:func:`default_reply`) applies.
* **The default behaviour**, deterministic and documented:

  1. If the conversation ends with ``role: "tool"`` messages, the reply quotes
     each tool result: ``Tool NAME returned: RESULT``.
  2. Else, if the user's request (the text inside ``<USER_REQUEST>`` ...
     ``</USER_REQUEST>``) contains ``call tool NAME with {JSON object}`` (or just
     ``call tool NAME`` for no arguments) and ``NAME`` is one of the request's
     ``tools``, the reply is a call of that tool with those arguments. Several
     such phrases give parallel tool calls. The harness adds two required
     string parameters, ``toolAction`` and ``toolSummary``, to every tool it
     declares; when the schema lists them and the arguments lack them, the
     server fills them in (``"Calling NAME"`` and ``"NAME call"``).
  3. Else the reply is ``You said: REQUEST``.

* **Faults**, queued per server from Python (:meth:`ModelServer.inject_fault`)
  or over HTTP (``POST /control/faults``): HTTP errors (429 with
  ``Retry-After``, 500, 503, 400, 401, ...), slow streams, streams cut mid-way
  and hangs. A fault may target only requests whose prompt contains a marker,
  so one of many concurrent agents can be singled out.

Every chat request body is kept in :attr:`ModelServer.requests` and, on
request, appended to a JSON Lines file.

Example:
    >>> async def demo() -> None:  # doctest: +SKIP
    ...     async with open_model_server([Reply("Hello!")]) as server:
    ...         server.inject_fault(Fault.rate_limit(retry_after=2))
    ...         config = LocalOpenAIAgentConfig(base_url=server.url, model="fake")

Control endpoints (JSON in, JSON out; meant for a trusted loopback test setup):

* ``POST /control/faults``: a fault object or a list of them, with the field
  names of :class:`Fault` (``kind`` is one of ``http_error``, ``slow``,
  ``disconnect``, ``hang``), e.g.
  ``{"kind": "http_error", "status": 429, "retry_after": 2, "match": "agent-7"}``.
* ``GET /control/faults`` lists the queued faults; ``DELETE /control/faults``
  drops them.
* ``POST /control/release`` releases every hung request.
* ``POST /control/replies``: a reply object or a list, with the field names of
  :class:`Reply`; ``tool_calls`` items are ``{"name", "arguments", "id"}``.
* ``GET /control/requests`` returns the logged chat requests.
"""

from __future__ import annotations

import enum
import functools
import json
import logging
import math
import os
import re
import signal
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeAlias, TypeVar

import attrs
import click
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

if TYPE_CHECKING:
    from hypercorn.typing import (
        ASGIReceiveCallable,
        ASGISendCallable,
        ASGISendEvent,
        HTTPScope,
        Scope,
    )

__all__ = [
    "MODEL_ID",
    "ChatRequest",
    "CompletionUsage",
    "Fault",
    "FaultKind",
    "ModelServer",
    "ModelServerStatistics",
    "Reply",
    "Responder",
    "ToolCallSpec",
    "default_reply",
    "main",
    "open_model_server",
    "reply_from_json",
    "run_model_server",
    "serve_model_command",
]

_LOG = logging.getLogger(__name__)

#: The model id reported by ``GET /v1/models``; any model name is accepted in requests.
MODEL_ID: Final = "agy-trio-local"

# The fields the harness adds to every tool schema it declares, then strips
# before calling the tool: a model has to fill them or the call is rejected.
_HARNESS_TOOL_FIELDS: Final = ("toolAction", "toolSummary")

_FINISH_REASONS: Final = frozenset({"stop", "length", "tool_calls", "content_filter"})

# Large enough for the biggest prompt the harness sends (~15k tokens), small
# enough that a runaway client cannot exhaust memory.
_MAX_BODY_BYTES: Final = 32 * 1024 * 1024

# A backstop only: in-flight requests are cancelled before hypercorn is asked
# to stop, so its graceful wait normally ends at once.
_GRACEFUL_TIMEOUT: Final = 2.0

_USER_REQUEST_RE: Final = re.compile(r"<USER_REQUEST>\s*(.*?)\s*</USER_REQUEST>", re.DOTALL)
_CALL_TOOL_RE: Final = re.compile(r"call tool\s+([A-Za-z_][\w.-]*)", re.IGNORECASE)
_WITH_RE: Final = re.compile(r"\s+with\s+(?=\{)", re.IGNORECASE)
_JSON_FENCE_RE: Final = re.compile(r"```(?:json)?\s*\n(.*?)\n?```", re.DOTALL)


# --------------------------------------------------------------------------
# The script model
# --------------------------------------------------------------------------


# Validators shared by the script classes. Their values also arrive as
# untrusted JSON through the control endpoint, so types are checked too.
_v = attrs.validators
_COUNT: Final[Sequence[Any]] = [_v.instance_of(int), _v.ge(0)]
_SECONDS: Final[Sequence[Any]] = [_v.instance_of((int, float)), _v.ge(0)]
_OPTIONAL_TEXT: Final[Any] = _v.optional(_v.instance_of(str))


def _optional_int(minimum: int) -> Any:
    return _v.optional([_v.instance_of(int), _v.ge(minimum)])


@attrs.frozen
class CompletionUsage:
    """Token counts reported in a reply's ``usage`` object.

    Attributes:
        prompt_tokens: Tokens attributed to the request.
        completion_tokens: Tokens attributed to the reply.
    """

    prompt_tokens: int = attrs.field(validator=_COUNT)
    completion_tokens: int = attrs.field(validator=_COUNT)

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def to_json(self) -> dict[str, int]:
        """Return the OpenAI ``usage`` object."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@attrs.frozen
class ToolCallSpec:
    """One tool call the model makes.

    Attributes:
        name: The tool's name, as declared in the request's ``tools``.
        arguments: The arguments. A mapping is serialised to JSON, and the
            harness fields ``toolAction``/``toolSummary`` are added when the
            request's schema for this tool lists them and they are missing. A
            string is sent verbatim, which lets a test send malformed JSON.
        id: The tool call id; by default a unique ``call_...`` id.
    """

    name: str = attrs.field(validator=_v.instance_of(str))
    arguments: Mapping[str, Any] | str = attrs.field(
        factory=dict, validator=_v.instance_of((Mapping, str))
    )
    id: str | None = attrs.field(default=None, validator=_OPTIONAL_TEXT)


def _to_tool_calls(value: Iterable[ToolCallSpec]) -> tuple[ToolCallSpec, ...]:
    return tuple(value)


@attrs.frozen
class Reply:
    """What the model answers to one request.

    Attributes:
        text: The assistant text; may be empty when there are tool calls.
        tool_calls: Tool calls made after the text.
        chunk_size: Characters per streamed content or arguments chunk.
        delay: Seconds to wait before each streamed chunk (a non-streamed
            reply waits as long as its stream would have taken).
        finish_reason: ``"stop"``, ``"tool_calls"``, ``"length"`` or
            ``"content_filter"``; by default ``"tool_calls"`` when there are
            tool calls, else ``"stop"``.
        usage: Token counts to report; by default an estimate of one token per
            four characters of prompt and of reply.
    """

    text: str = attrs.field(default="", validator=_v.instance_of(str))
    tool_calls: tuple[ToolCallSpec, ...] = attrs.field(
        default=(),
        converter=_to_tool_calls,
        validator=_v.deep_iterable(_v.instance_of(ToolCallSpec)),
    )
    chunk_size: int = attrs.field(default=8, validator=[_v.instance_of(int), _v.ge(1)])
    delay: float = attrs.field(default=0.0, validator=_SECONDS)
    finish_reason: str | None = attrs.field(
        default=None, validator=_v.optional(_v.in_(_FINISH_REASONS))
    )
    usage: CompletionUsage | None = attrs.field(
        default=None, validator=_v.optional(_v.instance_of(CompletionUsage))
    )

    @property
    def effective_finish_reason(self) -> str:
        """The finish reason that is sent."""
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"


class FaultKind(enum.Enum):
    """How a fault breaks a request."""

    HTTP_ERROR = "http_error"
    """Answer with an HTTP error status and an OpenAI-style JSON error body."""
    SLOW = "slow"
    """Answer normally, waiting ``chunk_delay`` seconds more before each chunk."""
    DISCONNECT = "disconnect"
    """Close the connection after ``after_chunks`` stream events, without ``[DONE]``."""
    HANG = "hang"
    """Stop answering (after ``after_chunks`` events) until released or shut down."""


@attrs.frozen
class Fault:
    """A failure to inject into upcoming chat requests.

    Faults wait in a per-server queue. Each request takes the first queued
    fault whose ``match`` it satisfies; the fault leaves the queue once it has
    been applied ``times`` times. The factory class methods are the usual way
    to build one.

    Attributes:
        kind: What goes wrong.
        status: The HTTP status of an ``HTTP_ERROR``.
        retry_after: Seconds for the ``Retry-After`` header of an
            ``HTTP_ERROR``; no header when None.
        message: The error message of an ``HTTP_ERROR``.
        chunk_delay: Extra seconds before each chunk of a ``SLOW`` reply.
        after_chunks: How many stream events (the first carries the role) are
            sent before a ``DISCONNECT`` or ``HANG`` bites. A ``HANG`` with 0
            sends nothing at all, not even headers. A ``DISCONNECT`` always
            bites before ``[DONE]``; a non-streamed reply is cut halfway.
        match: Apply only to requests whose system or user messages (the
            whole history, so a marker in an agent's system prompt or first
            message targets all of its later requests) contain this
            substring; None matches every request.
        times: How many requests the fault applies to; None means until the
            queue is cleared.
    """

    kind: FaultKind = attrs.field(converter=FaultKind)
    status: int = attrs.field(default=500, validator=[_v.instance_of(int), _v.ge(400), _v.le(599)])
    retry_after: int | None = attrs.field(default=None, validator=_optional_int(0))
    message: str | None = attrs.field(default=None, validator=_OPTIONAL_TEXT)
    chunk_delay: float = attrs.field(default=0.0, validator=_SECONDS)
    after_chunks: int = attrs.field(default=0, validator=_COUNT)
    match: str | None = attrs.field(default=None, validator=_OPTIONAL_TEXT)
    times: int | None = attrs.field(default=1, validator=_optional_int(1))

    @classmethod
    def rate_limit(
        cls, retry_after: int = 1, *, match: str | None = None, times: int | None = 1
    ) -> Fault:
        """Answer 429 with a ``Retry-After`` header, like a quota-limited API."""
        return cls(
            FaultKind.HTTP_ERROR, status=429, retry_after=retry_after, match=match, times=times
        )

    @classmethod
    def http_error(
        cls,
        status: int,
        *,
        message: str | None = None,
        retry_after: int | None = None,
        match: str | None = None,
        times: int | None = 1,
    ) -> Fault:
        """Answer with an HTTP error status, e.g. 400, 401, 500 or 503."""
        return cls(
            FaultKind.HTTP_ERROR,
            status=status,
            message=message,
            retry_after=retry_after,
            match=match,
            times=times,
        )

    @classmethod
    def slow(cls, chunk_delay: float, *, match: str | None = None, times: int | None = 1) -> Fault:
        """Stream the reply with ``chunk_delay`` extra seconds before each chunk."""
        return cls(FaultKind.SLOW, chunk_delay=chunk_delay, match=match, times=times)

    @classmethod
    def disconnect(
        cls, after_chunks: int = 2, *, match: str | None = None, times: int | None = 1
    ) -> Fault:
        """Close the connection mid-stream, after ``after_chunks`` events."""
        return cls(FaultKind.DISCONNECT, after_chunks=after_chunks, match=match, times=times)

    @classmethod
    def hang(
        cls, after_chunks: int = 0, *, match: str | None = None, times: int | None = 1
    ) -> Fault:
        """Stop answering until :meth:`ModelServer.release_hangs` or shutdown."""
        return cls(FaultKind.HANG, after_chunks=after_chunks, match=match, times=times)

    def to_json(self) -> dict[str, Any]:
        """Return the JSON object form accepted by ``POST /control/faults``."""
        fields = attrs.asdict(self)
        fields["kind"] = self.kind.value
        return fields

    @classmethod
    def from_json(cls, data: object) -> Fault:
        """Build a fault from its JSON object form.

        Raises:
            TypeError: The object or a field has the wrong JSON type.
            ValueError: A field is unknown or out of range.
        """
        return _from_json(cls, data)


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
                text = _content_text(message.get("content"))
                found = _USER_REQUEST_RE.search(text)
                return found.group(1) if found else text.strip()
        return ""

    @property
    def prompt_text(self) -> str:
        """The system and user messages joined, the text a fault's ``match`` searches."""
        return "\n".join(
            _content_text(m.get("content"))
            for m in self.messages
            if m.get("role") in {"system", "user", "developer"}
        )

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form written to the request log."""
        return {
            "seq": self.seq,
            "received_at": self.received_at,
            "path": self.path,
            "body": self.body,
        }


#: A callable script: picks the reply for a request, or None for the default behaviour.
Responder: TypeAlias = Callable[[ChatRequest], Reply | None]


def reply_from_json(data: object) -> Reply:
    """Build a reply from its JSON object form (the field names of :class:`Reply`).

    ``tool_calls`` items are objects with the field names of
    :class:`ToolCallSpec`; ``usage`` is an object with ``prompt_tokens`` and
    ``completion_tokens``.

    Raises:
        TypeError: The object or a field has the wrong JSON type.
        ValueError: A field is unknown or out of range.
    """
    if isinstance(data, dict):
        data = dict(data)
        calls = data.get("tool_calls", [])
        if not isinstance(calls, list):
            raise TypeError("tool_calls must be a list")
        data["tool_calls"] = [_from_json(ToolCallSpec, call) for call in calls]
        if isinstance(data.get("usage"), dict):
            usage = {k: v for k, v in data["usage"].items() if k != "total_tokens"}
            data["usage"] = _from_json(CompletionUsage, usage)
    return _from_json(Reply, data)


_T = TypeVar("_T", bound=attrs.AttrsInstance)


def _from_json(cls: type[_T], data: object) -> _T:
    # The control endpoint feeds this untrusted JSON; any TypeError or
    # ValueError raised here is answered with 400.
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object for {cls.__name__}, got {type(data).__name__}")
    known = {field.name for field in attrs.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    return cls(**data)


# --------------------------------------------------------------------------
# The default behaviour
# --------------------------------------------------------------------------


def _content_text(content: object) -> str:
    # Content is a string, or a list of parts of which only text parts count.
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _tool_result_text(content: str) -> str:
    # The harness wraps results as "Tool response for NAME:\n```json\n{...}\n```";
    # the JSON inside the fence is the part worth quoting.
    fenced = _JSON_FENCE_RE.search(content)
    return (fenced.group(1) if fenced else content).strip()


def _requested_tool_calls(request: ChatRequest) -> list[ToolCallSpec]:
    text = request.user_request
    tools = request.tools
    decoder = json.JSONDecoder()
    calls: list[ToolCallSpec] = []
    for found in _CALL_TOOL_RE.finditer(text):
        name = found.group(1).rstrip(".-")  # "call tool x." ends a sentence, not the name
        arguments: dict[str, Any] = {}
        with_clause = _WITH_RE.match(text, found.end())
        if with_clause is not None:
            try:
                parsed, _ = decoder.raw_decode(text, with_clause.end())
            except json.JSONDecodeError:
                continue
            if not isinstance(parsed, dict):
                continue
            arguments = parsed
        if name in tools:
            calls.append(ToolCallSpec(name, arguments))
    return calls


def default_reply(request: ChatRequest) -> Reply:
    """The reply the server gives when its script has none.

    1. After tool results (the last messages have ``role: "tool"``): a text
       quoting each result, ``Tool NAME returned: RESULT``.
    2. When the user request says ``call tool NAME with {JSON object}`` (or
       ``call tool NAME``) and NAME is a declared tool: that tool call.
    3. Otherwise: ``You said: REQUEST``.

    Args:
        request: The request to answer.

    Returns:
        The reply, streamed in chunks of eight characters.
    """
    results: list[str] = []
    messages = request.messages
    names_by_call_id = {
        call.get("id"): call["function"].get("name")
        for message in messages
        if message.get("role") == "assistant" and isinstance(message.get("tool_calls"), list)
        for call in message["tool_calls"]
        if isinstance(call, dict) and isinstance(call.get("function"), dict)
    }
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        name = message.get("name") or names_by_call_id.get(message.get("tool_call_id")) or "tool"
        results.append(
            f"Tool {name} returned: {_tool_result_text(_content_text(message.get('content')))}"
        )
    if results:
        return Reply("\n".join(reversed(results)))
    calls = _requested_tool_calls(request)
    if calls:
        return Reply(tool_calls=calls)
    return Reply(f"You said: {request.user_request}")


# --------------------------------------------------------------------------
# Wire format
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
    prompt = sum(len(_content_text(m.get("content"))) for m in request.messages)
    if "tools" in request.body:
        prompt += len(json.dumps(request.body["tools"]))
    completion = len(reply.text) + sum(len(c.name) + len(c.arguments) for c in calls)
    return CompletionUsage(_estimate_tokens(prompt), _estimate_tokens(completion))


def _stream_events(request: ChatRequest, reply: Reply) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a streamed reply, in order."""
    calls = _render_calls(request, reply)
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{request.seq:08d}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": request.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

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
        usage = chunk({})
        usage["choices"] = []
        usage["usage"] = _usage(request, reply, calls).to_json()
        events.append(usage)
    return events


def _completion(request: ChatRequest, reply: Reply) -> dict[str, Any]:
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
        "id": f"chatcmpl-{request.seq:08d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": reply.effective_finish_reason}
        ],
        "usage": _usage(request, reply, calls).to_json(),
    }


def _sse(data: str) -> bytes:
    return f"data: {data}\n\n".encode()


_ERROR_TYPES: Final[dict[int, tuple[str, str | None]]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    429: ("requests", "rate_limit_exceeded"),
    503: ("server_error", "service_unavailable"),
}


def _error_body(status: int, message: str) -> dict[str, Any]:
    default = ("server_error", None) if status >= 500 else ("invalid_request_error", None)
    kind, code = _ERROR_TYPES.get(status, default)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _default_error_message(status: int, retry_after: int | None) -> str:
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


async def _send_json(
    send: ASGISendCallable,
    status: int,
    payload: object,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_error(
    send: ASGISendCallable,
    status: int,
    message: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    await _send_json(send, status, _error_body(status, message), headers)


class _BadRequest(Exception):
    """The request body is not what the endpoint expects; answered with 400."""


class _ClientGone(Exception):
    """The client disconnected before its request body arrived; nobody to answer."""


# --------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------


@attrs.frozen
class ModelServerStatistics:
    """A snapshot of a server's state, from :meth:`ModelServer.statistics`.

    Attributes:
        requests_total: Chat requests received so far.
        in_flight: Chat requests being answered now.
        hung: Requests held by a ``HANG`` fault now.
        pending_faults: Faults still queued.
        pending_replies: Scripted replies not yet used.
    """

    requests_total: int
    in_flight: int
    hung: int
    pending_faults: int
    pending_replies: int


@attrs.define
class _QueuedFault:
    fault: Fault
    remaining: int | None


class ModelServer:
    """The state and behaviour of a running model server; made by :func:`open_model_server`.

    All methods must be called from the Trio thread that runs the server.

    Attributes:
        requests: Every chat request received, in arrival order.
    """

    def __init__(
        self, script: Iterable[Reply] | Responder | None = None, log_path: Path | None = None
    ) -> None:
        """Create a server that is not yet listening.

        Args:
            script: Replies to use in arrival order, or a callable choosing
                one per request; the default behaviour answers the rest.
            log_path: A JSON Lines file every chat request is appended to.
        """
        self.requests: list[ChatRequest] = []
        self._responder: Responder | None = script if callable(script) else None
        self._replies: deque[Reply] = deque(() if script is None or callable(script) else script)
        self._faults: list[_QueuedFault] = []
        self._log_path = log_path
        self._log_lock = trio.Lock()
        self._host = ""
        self._port = 0
        self._closing = False
        self._in_flight: set[trio.CancelScope] = set()
        self._hung = 0
        self._release = trio.Event()
        self._changed = trio.Event()
        self._shutdown = trio.Event()

    # -- public face -------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the server listens on (the real one when 0 was asked)."""
        return self._port

    @property
    def host(self) -> str:
        """The host clients should connect to."""
        return self._host

    @property
    def root_url(self) -> str:
        """The URL of the server's root, e.g. ``http://127.0.0.1:8765``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def url(self) -> str:
        """The OpenAI base URL, e.g. ``http://127.0.0.1:8765/v1``."""
        return f"{self.root_url}/v1"

    def add_replies(self, *replies: Reply) -> None:
        """Append replies to the script; they are used before the default behaviour.

        Has no effect on requests while the script is a callable, which is
        consulted first.
        """
        self._replies.extend(replies)
        self._notify()

    def inject_fault(self, fault: Fault) -> None:
        """Queue a fault for the next matching request(s)."""
        self._faults.append(_QueuedFault(fault, fault.times))
        self._notify()

    def clear_faults(self) -> int:
        """Drop every queued fault.

        Returns:
            How many faults were dropped.
        """
        dropped = len(self._faults)
        self._faults.clear()
        self._notify()
        return dropped

    @property
    def pending_faults(self) -> list[Fault]:
        """The queued faults, each with ``times`` set to its remaining count."""
        return [attrs.evolve(q.fault, times=q.remaining) for q in self._faults]

    def release_hangs(self) -> int:
        """Let every request held by a ``HANG`` fault carry on and answer.

        Returns:
            How many requests were released.
        """
        released = self._hung
        self._release.set()
        self._release = trio.Event()
        return released

    def statistics(self) -> ModelServerStatistics:
        """Return a snapshot of the server's counters."""
        return ModelServerStatistics(
            requests_total=len(self.requests),
            in_flight=len(self._in_flight),
            hung=self._hung,
            pending_faults=len(self._faults),
            pending_replies=len(self._replies),
        )

    async def wait_for_requests(self, count: int) -> None:
        """Wait until at least ``count`` chat requests have been received."""
        while len(self.requests) < count:
            await self._changed.wait()

    async def wait_for_hung(self, count: int = 1) -> None:
        """Wait until at least ``count`` requests are held by ``HANG`` faults."""
        while self._hung < count:
            await self._changed.wait()

    async def wait_for_idle(self) -> None:
        """Wait until no chat request is being answered (e.g. after a client left)."""
        while self._in_flight:
            await self._changed.wait()

    # -- life cycle ----------------------------------------------------------

    async def _serve(
        self, host: str, port: int, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        # Binding here rather than in hypercorn reports a busy port as a plain
        # OSError before anything starts, knows the real port when 0 was asked,
        # and never leaves a socket behind when binding fails.
        with await _listening_socket(host, port) as listener:
            bound_host, self._port = listener.getsockname()[:2]
            self._host = _connectable_host(bound_host)
            config = Config()
            # hypercorn adopts (and trio closes) a duplicate of the descriptor;
            # the original stays ours and is closed when this block ends.
            config.bind = [f"fd://{os.dup(listener.fileno())}"]
            config.accesslog = None
            config.errorlog = _LOG
            config.graceful_timeout = _GRACEFUL_TIMEOUT
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    functools.partial(
                        serve, self, config, shutdown_trigger=self._shutdown.wait, mode="asgi"
                    )
                )
                task_status.started()

    def _begin_shutdown(self) -> None:
        # Cancelling in-flight requests first lets hypercorn's graceful stop
        # finish at once instead of waiting for hung or slow answers.
        self._closing = True
        for scope in self._in_flight:
            scope.cancel()
        self._shutdown.set()

    # -- ASGI --------------------------------------------------------------

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Handle one ASGI connection scope (the hypercorn entry point)."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, _shielded(send))

    async def _lifespan(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(
        self, scope: HTTPScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        method = scope["method"]
        path = scope["path"].rstrip("/") or "/"
        route = path.removeprefix("/v1")
        try:
            if route == "/chat/completions":
                if method != "POST":
                    await _send_error(send, 405, f"{method} is not allowed on {path}")
                else:
                    await self._chat(path, receive, send)
            elif route == "/models" and method == "GET":
                models = [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "agy_trio"}]
                await _send_json(send, 200, {"object": "list", "data": models})
            elif path == "/health" and method == "GET":
                await _send_json(send, 200, {"status": "ok"})
            elif path.startswith("/control/"):
                await self._control(method, path, receive, send)
            else:
                await _send_error(send, 404, f"No route for {method} {path}")
        except _BadRequest as error:
            await _send_error(send, 400, str(error))
        except _ClientGone:
            return

    async def _control(
        self, method: str, path: str, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if path == "/control/faults" and method == "POST":
            data = await _read_json(receive)
            try:
                faults = [
                    Fault.from_json(item) for item in (data if isinstance(data, list) else [data])
                ]
            except (TypeError, ValueError) as error:
                raise _BadRequest(str(error)) from error
            for fault in faults:
                self.inject_fault(fault)
            await _send_json(send, 200, {"queued": len(faults), "faults": self._faults_json()})
        elif path == "/control/faults" and method == "GET":
            await _send_json(send, 200, {"faults": self._faults_json()})
        elif path == "/control/faults" and method == "DELETE":
            await _send_json(send, 200, {"cleared": self.clear_faults()})
        elif path == "/control/release" and method == "POST":
            await _send_json(send, 200, {"released": self.release_hangs()})
        elif path == "/control/replies" and method == "POST":
            data = await _read_json(receive)
            try:
                replies = [
                    reply_from_json(item) for item in (data if isinstance(data, list) else [data])
                ]
            except (TypeError, ValueError) as error:
                raise _BadRequest(str(error)) from error
            self.add_replies(*replies)
            await _send_json(send, 200, {"queued": len(replies), "pending": len(self._replies)})
        elif path == "/control/requests" and method == "GET":
            await _send_json(send, 200, {"requests": [r.to_json() for r in self.requests]})
        else:
            await _send_error(send, 404, f"No route for {method} {path}")

    def _faults_json(self) -> list[dict[str, Any]]:
        return [fault.to_json() for fault in self.pending_faults]

    # -- chat completions ------------------------------------------------------

    async def _chat(self, path: str, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        body = await _read_json(receive)
        if not isinstance(body, dict):
            raise _BadRequest("the request body must be a JSON object")
        if self._closing:
            await _send_error(send, 503, "The model server is shutting down.")
            return
        request = ChatRequest(len(self.requests) + 1, time.time(), path, body)
        self.requests.append(request)
        self._notify()
        await self._log(request)
        progress = _Progress()
        async with trio.open_nursery() as nursery:
            self._in_flight.add(nursery.cancel_scope)
            try:
                nursery.start_soon(_cancel_on_disconnect, receive, nursery.cancel_scope)
                await self._answer(request, send, progress)
                nursery.cancel_scope.cancel()
            finally:
                self._in_flight.discard(nursery.cancel_scope)
                self._notify()
        if self._closing and not progress.response_started:
            # A request cut short by shutdown still gets a clear answer.
            await _send_error(send, 503, "The model server is shutting down.")

    async def _answer(
        self, request: ChatRequest, send: ASGISendCallable, progress: _Progress
    ) -> None:
        fault = self._take_fault(request)
        if fault is not None and fault.kind is FaultKind.HTTP_ERROR:
            headers = []
            if fault.retry_after is not None:
                headers.append((b"retry-after", str(fault.retry_after).encode()))
            message = fault.message or _default_error_message(fault.status, fault.retry_after)
            progress.response_started = True
            await _send_error(send, fault.status, message, headers)
            return
        if fault is not None and fault.kind is FaultKind.HANG and fault.after_chunks == 0:
            await self._hang()
            fault = None  # Released: answer normally.
        try:
            reply = self._next_reply(request)
        except Exception as error:
            # A broken script is the test author's bug: say so to the client
            # (and the log) instead of leaving hypercorn's bare 500.
            _LOG.exception("the script failed on request %d", request.seq)
            progress.response_started = True
            await _send_error(send, 500, f"the model server's script raised {error!r}")
            return
        extra_delay = 0.0
        if fault is not None and fault.kind is FaultKind.SLOW:
            extra_delay, fault = fault.chunk_delay, None
        if request.stream:
            await self._send_stream(request, reply, fault, extra_delay, send, progress)
        else:
            await self._send_completion(request, reply, fault, extra_delay, send, progress)

    async def _send_stream(
        self,
        request: ChatRequest,
        reply: Reply,
        fault: Fault | None,
        extra_delay: float,
        send: ASGISendCallable,
        progress: _Progress,
    ) -> None:
        events = [_sse(json.dumps(event)) for event in _stream_events(request, reply)]
        events.append(_sse("[DONE]"))
        # A disconnect always bites before [DONE], so it cannot pass unnoticed.
        cut_at = min(fault.after_chunks, len(events) - 1) if fault is not None else -1
        delay = reply.delay + extra_delay
        progress.response_started = True
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        for index, event in enumerate(events):
            if fault is not None and index == cut_at:
                if fault.kind is FaultKind.DISCONNECT:
                    return  # Returning mid-body makes hypercorn drop the connection.
                await self._hang()
            if delay:
                await trio.sleep(delay)
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_completion(
        self,
        request: ChatRequest,
        reply: Reply,
        fault: Fault | None,
        extra_delay: float,
        send: ASGISendCallable,
        progress: _Progress,
    ) -> None:
        delay = reply.delay + extra_delay
        if delay:
            # As long as the same reply would have taken to stream.
            await trio.sleep(delay * len(_stream_events(request, reply)))
        body = json.dumps(_completion(request, reply)).encode()
        progress.response_started = True
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        if fault is not None:
            await send(
                {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
            )
            if fault.kind is FaultKind.DISCONNECT:
                return  # The promised content-length is never reached.
            await self._hang()
            body = body[len(body) // 2 :]
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _take_fault(self, request: ChatRequest) -> Fault | None:
        prompt = request.prompt_text
        for queued in self._faults:
            if queued.fault.match is None or queued.fault.match in prompt:
                if queued.remaining is not None:
                    queued.remaining -= 1
                    if queued.remaining == 0:
                        self._faults.remove(queued)
                self._notify()
                return queued.fault
        return None

    def _next_reply(self, request: ChatRequest) -> Reply:
        if self._responder is not None:
            reply = self._responder(request)
            if reply is not None:
                return reply
        elif self._replies:
            reply = self._replies.popleft()
            self._notify()
            return reply
        return default_reply(request)

    async def _hang(self) -> None:
        release = self._release
        self._hung += 1
        self._notify()
        try:
            await release.wait()
        finally:
            self._hung -= 1
            self._notify()

    async def _log(self, request: ChatRequest) -> None:
        if self._log_path is None:
            return
        line = json.dumps(request.to_json()) + "\n"
        # The lock keeps lines in arrival order; opening per line means an
        # out-of-process reader always sees whole, flushed lines.
        async with self._log_lock:
            await trio.to_thread.run_sync(_append_line, self._log_path, line)

    def _notify(self) -> None:
        changed, self._changed = self._changed, trio.Event()
        changed.set()


@attrs.define
class _Progress:
    response_started: bool = False


async def _read_json(receive: ASGIReceiveCallable) -> Any:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        if message["type"] != "http.request":
            continue
        chunk = message["body"]
        size += len(chunk)
        if size > _MAX_BODY_BYTES:
            raise _BadRequest("the request body is too large")
        chunks.append(chunk)
        if not message["more_body"]:
            break
    raw = b"".join(chunks)
    if not raw:
        raise _BadRequest("the request body is empty; a JSON object is expected")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _BadRequest(f"the request body is not valid JSON: {error}") from error


def _shielded(send: ASGISendCallable) -> ASGISendCallable:
    # hypercorn finishes the exchange and re-arms the connection's keep-alive
    # inside the call that sends the last body chunk. Cancelling a request
    # (client gone, shutdown) must never interrupt that bookkeeping, or the
    # connection lingers until hypercorn's graceful timeout.
    async def send_shielded(message: ASGISendEvent) -> None:
        with trio.CancelScope(shield=True):
            await send(message)

    return send_shielded


async def _cancel_on_disconnect(receive: ASGIReceiveCallable, scope: trio.CancelScope) -> None:
    # Once the body is read, the next ASGI message can only be the client
    # going away; a hung or slow answer then has nobody to answer to.
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


def _append_line(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(line)


async def _listening_socket(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = (
        await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    )[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen()
    except BaseException:
        listener.close()
        raise
    return listener


def _connectable_host(host: str) -> str:
    # A wildcard bind accepts loopback connections; the URL must name a real address.
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


@asynccontextmanager
async def open_model_server(
    script: Iterable[Reply] | Responder | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_path: str | Path | None = None,
) -> AsyncIterator[ModelServer]:
    """Run a model server for the duration of an ``async with`` block.

    Leaving the block stops the server promptly: requests in flight (hung ones
    included) are cancelled, those that had not started answering get a 503,
    and no task is left behind.

    Args:
        script: Replies to use in arrival order, or a callable choosing one
            per request (returning None falls back to the default behaviour).
        host: The address to listen on.
        port: The TCP port; 0 picks a free one (see :attr:`ModelServer.port`).
        log_path: A JSON Lines file every chat request is appended to.

    Yields:
        The running server; :attr:`ModelServer.url` is the base URL to give an
        OpenAI-compatible client.

    Raises:
        OSError: The address could not be bound.
    """
    server = ModelServer(script, Path(log_path) if log_path is not None else None)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(server._serve, host, port)
            try:
                yield server
            finally:
                server._begin_shutdown()
    except BaseExceptionGroup as group:
        # The server's own tasks end cleanly, so a group holding one exception
        # carries the body's: re-raise it as the body raised it.
        if len(group.exceptions) == 1:
            _reraise_unwrapped(group.exceptions[0])
        raise


def _reraise_unwrapped(error: BaseException) -> NoReturn:
    context = error.__context__
    try:
        raise error
    finally:
        error.__context__ = context


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


async def run_model_server(
    host: str = "127.0.0.1",
    port: int = 8765,
    log_path: str | Path | None = None,
    *,
    script: Iterable[Reply] | Responder | None = None,
    on_ready: Callable[[ModelServer], None] | None = None,
) -> None:
    """Serve until cancelled: the body of the command line, reusable by other CLIs.

    Args:
        host: The address to listen on.
        port: The TCP port; 0 picks a free one.
        log_path: A JSON Lines file every chat request is appended to.
        script: As for :func:`open_model_server`.
        on_ready: Called once the server listens, e.g. to print its URL.
    """
    async with open_model_server(script, host=host, port=port, log_path=log_path) as server:
        if on_ready is not None:
            on_ready(server)
        await trio.sleep_forever()


def _announce(server: ModelServer) -> None:
    click.echo(f"Model server listening on {server.url} (Ctrl-C to stop)")
    click.echo(f"Inject faults with POST {server.root_url}/control/faults")


@click.command(name="serve-model")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="TCP port; 0 picks one.")
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Append every chat request to this JSON Lines file.",
)
def serve_model_command(host: str, port: int, log_path: Path | None) -> None:
    """Run a local OpenAI-compatible model server until Ctrl-C."""
    try:
        trio.run(_serve_until_signalled, host, port, log_path)
    except OSError as error:
        raise click.ClickException(f"cannot listen on {host}:{port}: {error}") from error
    click.echo("Model server stopped.")


async def _serve_until_signalled(host: str, port: int, log_path: Path | None) -> None:
    # SIGINT and SIGTERM are received as messages rather than as
    # KeyboardInterrupt, which could otherwise surface anywhere (for example
    # wrapped in an exception group by a nursery) and turn a clean stop into
    # a traceback.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_model_server(host=host, port=port, log_path=log_path) as server:
            _announce(server)
            async for _ in signals:
                break


def main(argv: Sequence[str] | None = None) -> None:
    """Run the model server command line (``python -m agy_trio.testing.model_server``).

    Args:
        argv: The arguments, without the program name; by default ``sys.argv[1:]``.
    """
    serve_model_command.main(
        args=list(argv) if argv is not None else None,
        prog_name="python -m agy_trio.testing.model_server",
    )


if __name__ == "__main__":
    main()
