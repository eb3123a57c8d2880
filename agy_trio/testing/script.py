"""The model server's script model: what the model answers, and how a request can fail.

A script is a sequence of :class:`Reply` objects (or a callable choosing one per
request, see :mod:`agy_trio.testing.replies`); faults (:class:`Fault`) are
queued separately and break upcoming requests on purpose. Both also arrive as
untrusted JSON over the control API, so every field is validated by type and
range, and :func:`reply_from_json` / :meth:`Fault.from_json` reject unknown
fields.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

import attrs

__all__ = [
    "CompletionUsage",
    "Fault",
    "FaultKind",
    "Reply",
    "ToolCallSpec",
    "reply_from_json",
]

_FINISH_REASONS: Final = frozenset({"stop", "length", "tool_calls", "content_filter"})

# Validators shared by the script classes. Their values also arrive as
# untrusted JSON through the control API, so types are checked too.
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
        return cls.http_error(429, retry_after=retry_after, match=match, times=times)

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
    # The control API feeds this untrusted JSON; any TypeError or ValueError
    # raised here is answered with 400.
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object for {cls.__name__}, got {type(data).__name__}")
    known = {field.name for field in attrs.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    return cls(**data)
