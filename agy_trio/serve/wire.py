"""What the HTTP API sends: JSON error bodies and the server-sent events of a chat.

One module owns the native wire format so that the JSON endpoints, the event
stream and the web page agree on every field name. A chat's events are a
rendering of its :class:`~agy_trio.serve.turn_log.TurnLog` (:func:`sse_for`):
each carries the log's event id as its SSE ``id`` and the turn's id as
``turn_id``, so a client can resume with ``Last-Event-ID``.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias

from agy_trio.core import events
from agy_trio.errors import AgyError, ConfigError, QuotaExceeded
from agy_trio.serve import turn_log

__all__ = [
    "Redactor",
    "done_event",
    "encode_event",
    "error_body",
    "error_event",
    "error_message",
    "error_type",
    "event_for",
    "sse_for",
]

# Shapes of credentials that may turn up inside an endpoint's error text even
# when the key itself is not known to the server (e.g. a key in a URL).
_KEY_PATTERNS = (
    re.compile(r"AIza[0-9A-Za-z_\-]{20,}"),  # Google API keys
    re.compile(r"\bsk-[0-9A-Za-z_\-]{12,}"),  # OpenAI-style keys
    re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"),
    re.compile(r"(?i)([?&](?:key|api_key|apikey|access_token)=)[^&\s\"']+"),
)
_MASK = "***"


class Redactor:
    """Removes secrets (API keys, the server's token) from text sent to clients.

    Known secrets are replaced wherever they occur; text shaped like a key or a
    bearer credential is masked too, so a key the server never saw (say, in a
    URL an endpoint echoes back) is not passed on either.

    Args:
        secrets: A callable returning the secrets known right now; called on
            every use, so keys of agents created later are covered.
    """

    def __init__(self, secrets: Callable[[], Iterable[str | None]]) -> None:
        self._secrets = secrets

    def __call__(self, text: str) -> str:
        """``text`` with every secret masked."""
        # Longest first: a secret containing another is masked whole.
        known = sorted({s for s in self._secrets() if s}, key=len, reverse=True)
        for secret in known:
            text = text.replace(secret, _MASK)
        for pattern in _KEY_PATTERNS:
            text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + _MASK, text)
        return text


def error_message(error: BaseException, redact: Redactor) -> str:
    """What a client may be told about ``error``: its text with secrets masked.

    An error that is not agy_trio's own is an internal fault: it reads
    ``internal server error`` (the details go to the server's log).
    """
    if isinstance(error, ConfigError) and error.field == "api_key":
        # The validator quotes the rejected value, which is the key itself.
        return "api_key: must be a non-empty string or null"
    if not isinstance(error, AgyError):
        return "internal server error"
    return redact(str(error))


def error_type(error: BaseException) -> str:
    """The error's class name as clients see it (``AgyError`` for anything not agy_trio's)."""
    # Only agy_trio's own error classes are named to clients; anything else is
    # an internal fault whose details stay in the server's log.
    return type(error).__name__ if isinstance(error, AgyError) else AgyError.__name__


def error_body(error: BaseException, redact: Redactor) -> dict[str, Any]:
    """The JSON body of an error answer: ``{"error": {"type", "message", ...}}``.

    ``field`` is added for a :class:`ConfigError` that names one, and
    ``retry_after`` for a :class:`QuotaExceeded` that carries one.
    """
    body: dict[str, Any] = {"type": error_type(error), "message": error_message(error, redact)}
    if isinstance(error, ConfigError) and error.field:
        body["field"] = error.field
    if isinstance(error, QuotaExceeded) and error.retry_after is not None:
        body["retry_after"] = error.retry_after
    return {"error": body}


def encode_event(name: str, data: Mapping[str, Any], event_id: int | str | None = None) -> bytes:
    """One server-sent event: ``id: ID`` (when given), ``event: NAME``, one ``data:`` line."""
    # json.dumps escapes newlines, so the data always fits on one line.
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=repr)
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {payload}\n\n".encode()


def _usage(usage: events.Usage) -> dict[str, int]:
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}


# The payload fields that are not JSON as they stand, and how each goes on the wire.
_CONVERT: dict[str, Callable[[Any], Any]] = {
    "stop_reason": lambda reason: reason.value,
    "usage": _usage,
}

_Fields: TypeAlias = tuple[tuple[str, Callable[[Any], Any]], ...]


def _reader(attribute: str) -> Callable[[Any], Any]:
    get = operator.attrgetter(attribute)
    convert = _CONVERT.get(attribute)
    return get if convert is None else lambda payload: convert(get(payload))


def _fields(*same: str, **renamed: str) -> _Fields:
    """Each wire name and its reader: first ``renamed`` (``wire=attribute``), then ``same``."""
    attributes = {**renamed, **{name: name for name in same}}
    return tuple((wire, _reader(attribute)) for wire, attribute in attributes.items())


# The native name of each payload the native API sends, and its fields.
_NATIVE: dict[type[turn_log.Payload], tuple[str, _Fields]] = {
    turn_log.Text: ("delta", _fields("text")),
    turn_log.Thought: ("thought", _fields("text")),
    turn_log.ToolFinished: (
        "tool_call",
        _fields("call_id", "name", "arguments", "result", "error", "server_name"),
    ),
    turn_log.ApprovalAsked: (
        "approval",
        _fields("tool", "arguments", "reason", id="approval_id", agent="agent_id"),
    ),
    turn_log.ApprovalAnswered: (
        "approval_answered",
        _fields("approved", "reason", id="approval_id"),
    ),
    turn_log.TurnFinished: ("done", _fields("stop_reason", "text", "usage", "structured_output")),
    turn_log.TurnFailed: ("error", _fields("type", "message", "retry_after")),
}


def native_event(event: turn_log.TurnEvent) -> tuple[str, dict[str, Any]] | None:
    """The native name and data of a logged event; None for those the native API omits.

    ``delta``/``thought`` ``{"text"}``, ``tool_call`` ``{"call_id", "name",
    "arguments", "result", "error", "server_name"}``, ``approval`` ``{"id",
    "agent", "tool", "arguments", "reason"}``, ``approval_answered`` ``{"id",
    "approved", "reason"}``, ``done`` ``{"stop_reason", "text", "usage",
    "structured_output"}``, ``error`` ``{"type", "message", "retry_after"}``;
    each with ``turn_id``. A tool's start and the usage report (also in
    ``done``) are not sent.
    """
    spec = _NATIVE.get(type(event.payload))
    if spec is None:
        return None
    name, fields = spec
    data = {wire: read(event.payload) for wire, read in fields}
    data["turn_id"] = event.turn_id
    return name, data


def sse_for(event: turn_log.TurnEvent) -> bytes | None:
    """The native server-sent event of a logged event (see :func:`native_event`), with its id."""
    rendered = native_event(event)
    if rendered is None:
        return None
    return encode_event(rendered[0], rendered[1], event.id)


def event_for(event: events.ChatEvent) -> bytes | None:
    """The server-sent event for a stream event; None for a turn's end (see :func:`done_event`)."""
    kind = type(event)
    if kind is events.TextDelta:
        assert isinstance(event, events.TextDelta)
        return encode_event("delta", {"text": event.text})
    if kind is events.ThoughtDelta:
        assert isinstance(event, events.ThoughtDelta)
        return encode_event("thought", {"text": event.text})
    if kind is events.ToolCall:
        assert isinstance(event, events.ToolCall)
        return encode_event(
            "tool_call",
            {
                "name": event.name,
                "arguments": events.json_safe(event.arguments),
                "result": events.json_safe(event.result),
                "error": event.error,
                "server_name": event.server_name,
            },
        )
    return None


def done_event(
    stop_reason: events.StopReason | None, text: str, usage: events.Usage | None
) -> bytes:
    """The ``done`` event that ends a turn: why it stopped, its whole text, its usage."""
    usage = usage or events.Usage()
    return encode_event(
        "done",
        {
            "stop_reason": (stop_reason or events.StopReason.END_TURN).value,
            "text": text,
            "usage": _usage(usage),
        },
    )


def error_event(error: BaseException, redact: Redactor) -> bytes:
    """The ``error`` event that ends a failed turn: ``{"type", "message", "retry_after"}``."""
    retry_after = error.retry_after if isinstance(error, QuotaExceeded) else None
    return encode_event(
        "error",
        {
            "type": error_type(error),
            "message": error_message(error, redact),
            "retry_after": retry_after,
        },
    )
