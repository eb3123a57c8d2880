"""What the HTTP API sends: JSON error bodies and the server-sent events of a chat.

One module owns the wire format so that the JSON endpoints, the event stream
and the web page agree on every field name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from agy_trio.core import events
from agy_trio.errors import AgyError, ConfigError, QuotaExceeded

__all__ = [
    "Redactor",
    "done_event",
    "encode_event",
    "error_body",
    "error_event",
    "event_for",
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


def _message(error: BaseException, redact: Redactor) -> str:
    if isinstance(error, ConfigError) and error.field == "api_key":
        # The validator quotes the rejected value, which is the key itself.
        return "api_key: must be a non-empty string or null"
    if not isinstance(error, AgyError):
        return "internal server error"
    return redact(str(error))


def _type_name(error: BaseException) -> str:
    # Only agy_trio's own error classes are named to clients; anything else is
    # an internal fault whose details stay in the server's log.
    return type(error).__name__ if isinstance(error, AgyError) else AgyError.__name__


def error_body(error: BaseException, redact: Redactor) -> dict[str, Any]:
    """The JSON body of an error answer: ``{"error": {"type", "message", ...}}``.

    ``field`` is added for a :class:`ConfigError` that names one, and
    ``retry_after`` for a :class:`QuotaExceeded` that carries one.
    """
    body: dict[str, Any] = {"type": _type_name(error), "message": _message(error, redact)}
    if isinstance(error, ConfigError) and error.field:
        body["field"] = error.field
    if isinstance(error, QuotaExceeded) and error.retry_after is not None:
        body["retry_after"] = error.retry_after
    return {"error": body}


def encode_event(name: str, data: Mapping[str, Any]) -> bytes:
    """One server-sent event: ``event: NAME`` and one ``data:`` line of JSON."""
    # json.dumps escapes newlines, so the data always fits on one line.
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=repr)
    return f"event: {name}\ndata: {payload}\n\n".encode()


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
    stop_reason: events.StopReason | None,
    text: str,
    usage: events.Usage | None,
    structured_output: Any = None,
) -> bytes:
    """The ``done`` event that ends a turn.

    Why it stopped, its whole text, its usage, and the structured answer the
    model handed over in this turn (as JSON; null when there was none).
    """
    usage = usage or events.Usage()
    return encode_event(
        "done",
        {
            "stop_reason": (stop_reason or events.StopReason.END_TURN).value,
            "text": text,
            "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
            "structured_output": events.json_safe(structured_output),
        },
    )


def error_event(error: BaseException, redact: Redactor) -> bytes:
    """The ``error`` event that ends a failed turn: ``{"type", "message", "retry_after"}``."""
    retry_after = error.retry_after if isinstance(error, QuotaExceeded) else None
    return encode_event(
        "error",
        {
            "type": _type_name(error),
            "message": _message(error, redact),
            "retry_after": retry_after,
        },
    )
