"""ChatResponse: the Trio face of one streaming turn."""

from __future__ import annotations

import collections
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, final

import trio

# The module under another name: ChatResponse has a method called ``events``.
from agy_trio.core import events as chat_events
from agy_trio.core.construction import NoPublicConstructor
from agy_trio.core.serialization import read_structured_output
from agy_trio.core.turn_stream import TurnStream

if TYPE_CHECKING:
    from agy_trio.core.structured import ResponseSchema

__all__ = ["ChatResponse", "StreamCounters", "TurnStream"]


class StreamCounters:
    """Counters shared by every response of one runtime (read by its statistics)."""

    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events = 0


@final
class ChatResponse(trio.abc.AsyncResource, metaclass=NoPublicConstructor):
    """The answer to one :meth:`AgentHandle.chat` call, streamed as it is produced.

    Iterate it (``async for delta in response``) for the answer's text deltas,
    :meth:`text_batches` for the same text one batch (every delta already
    there) per step, call :meth:`events` for every event (text, thoughts, tool
    calls, the end), or ``await response.text()`` for the whole answer. Each event is consumed
    once; whatever way you read, :attr:`thoughts`, :attr:`tool_calls`,
    :attr:`usage` and :attr:`stop_reason` fill in as the turn goes.

    Cancelling the task that is reading (for example with
    ``trio.move_on_after``) cancels the turn itself: the backend stops it
    before the cancellation finishes propagating, and the agent is ready for
    its next turn. So does :meth:`cancel`, and leaving ``async with response``
    before the turn has ended.

    A turn whose response is abandoned is interrupted at once, the same way:
    the response was closed before the end (:meth:`aclose`, leaving
    ``async with``), garbage-collected unread (with a ``ResourceWarning``), or
    an ``async for`` over it (or over :meth:`events`) was left before the end.
    What the turn produced so far stays in the agent's history, marked
    :attr:`~agy_trio.Message.interrupted`; read again, the response ends with
    ``StopReason.CANCELLED``. A response that is still held and read, however
    slowly, is never interrupted by anyone else: the agent's next message
    waits for its turn to end, which meanwhile stops waiting for its reader.

    Every step of iteration is a Trio checkpoint, even when the event was
    already fetched. A response is created by the runtime, never by hand.
    """

    __slots__ = (
        "__weakref__",
        "_cancel_timeout",
        "_closed",
        "_counters",
        "_error",
        "_finished",
        "_forced_error",
        "_on_abandon",
        "_on_end",
        "_pending",
        "_reading",
        "_schema",
        "_stop_reason",
        "_stream",
        "_structured",
        "_text_parts",
        "_thoughts",
        "_tool_calls",
        "_usage",
        "agent_id",
    )

    def __init__(
        self,
        agent_id: str,
        stream: TurnStream,
        *,
        cancel_timeout: float = 10.0,
        on_end: Callable[[BaseException | None], None] | None = None,
        on_abandon: Callable[[], bool] | None = None,
        counters: StreamCounters | None = None,
        response_schema: ResponseSchema | None = None,
    ) -> None:
        self.agent_id = agent_id
        self._schema = response_schema
        self._structured: Any = None
        self._counters = counters if counters is not None else StreamCounters()
        self._stream = stream
        self._on_end = on_end
        # Interrupts the turn without waiting, and says whether it was still
        # running (any thread: it may run in GC).
        self._on_abandon = on_abandon
        self._cancel_timeout = cancel_timeout
        self._forced_error: BaseException | None = None
        self._pending: collections.deque[chat_events.ChatEvent] = collections.deque()
        self._text_parts: list[str] = []
        # Created on first use: most turns have neither.
        self._thoughts: list[str] | None = None
        self._tool_calls: list[chat_events.ToolCall] | None = None
        self._usage: chat_events.Usage | None = None
        self._stop_reason: chat_events.StopReason | None = None
        self._error: BaseException | None = None
        self._finished = False
        self._reading = False
        self._closed = False  # cancelled or closed by its holder

    # ------------------------------------------------------------------ results so far

    @property
    def done(self) -> bool:
        """Whether every event has been read (the turn finished, failed or was cancelled)."""
        return self._finished

    @property
    def thoughts(self) -> list[str]:
        """The model's thought deltas received so far."""
        return list(self._thoughts or ())

    @property
    def tool_calls(self) -> list[chat_events.ToolCall]:
        """Tool calls made during the turn so far, with their outcomes."""
        return list(self._tool_calls or ())

    @property
    def usage(self) -> chat_events.Usage | None:
        """The turn's token usage, once the turn has ended."""
        return self._usage

    @property
    def stop_reason(self) -> chat_events.StopReason | None:
        """Why the turn ended, once it has."""
        return self._stop_reason

    @property
    def error(self) -> BaseException | None:
        """The error that ended the turn, if one did."""
        return self._error

    # ------------------------------------------------------------------ reading

    def __aiter__(self) -> AsyncIterator[str]:
        # An iterator of its own per loop: CPython drops it the moment an
        # ``async for`` is left, so a loop left early is seen at once.
        return _TextSteps(self, ChatResponse._take_text)

    async def __anext__(self) -> str:
        return await self._next_text(ChatResponse._take_text)

    async def _next_text(self, take: Callable[[ChatResponse], str | None]) -> str:
        """One step of a text iteration: what ``take`` makes of the pending events.

        Args:
            take: ``take(self)`` absorbs pending events and returns the step's
                text, or None when they held none (a delta's text, or every
                delta's, joined). A plain function, not a bound method: this
                runs once per delta.

        Raises:
            StopAsyncIteration: Every event has been read.
        """
        while True:
            if self._pending:
                # Trio's convention: a step that finds its value ready still
                # checkpoints, before taking it (a cancelled reader takes nothing).
                await trio.lowlevel.checkpoint()
            # receive_batch is a checkpoint on every path.
            elif not await self._fetch():
                raise StopAsyncIteration
            text = take(self)
            if text is not None:
                return text

    def _take_text(self) -> str | None:
        """Absorb pending events up to the next text delta and return its text.

        Returns:
            The text, or None when the pending events held none.
        """
        pending = self._pending
        while pending:
            event = pending.popleft()
            if type(event) is chat_events.TextDelta:
                self._text_parts.append(event.text)
                return event.text
            self._absorb(event)
        return None

    def text_batches(self) -> AsyncIterator[str]:
        """Iterate the answer's text a batch at a time: every delta already there, joined.

        Iterating the response hands over one delta (one model chunk) per
        step, and every step is a Trio checkpoint, a trip through the
        scheduler; for a long, fast answer those trips cost more than the
        chunks. Each step of this iterator is a checkpoint too, but it hands
        over the text of every delta that has arrived since the last step, so a
        reader pays one checkpoint per batch of whatever arrived, not per
        chunk. The text is the same: joined, the steps give the whole answer.

        The deltas it hands over are consumed as iteration's are (the two can
        be mixed; :meth:`text` returns the whole answer either way).

        Returns:
            An async iterator of non-empty strings.

        Raises:
            AgyError: The turn failed (timeout, quota, backend error...).
        """
        return _TextSteps(self, ChatResponse._take_all_text)

    def _take_all_text(self) -> str | None:
        """Absorb every pending event; return the text of their text deltas, joined.

        Returns:
            The text, or None when the pending events held none.
        """
        pending = self._pending
        texts: list[str] = []
        text_delta = chat_events.TextDelta
        absorb = self._absorb
        while pending:
            event = pending.popleft()
            if type(event) is text_delta:
                texts.append(event.text)
            else:
                absorb(event)
        if not texts:
            return None
        text = texts[0] if len(texts) == 1 else "".join(texts)
        self._text_parts.append(text)
        return text

    async def events(self) -> AsyncIterator[chat_events.ChatEvent]:
        """Iterate every remaining event of the turn, ending with :class:`TurnEnd`.

        Closing the iterator before the end (``contextlib.aclosing``, or Trio
        finalising it after a ``break``) abandons the turn (see the class).
        """
        pending = self._pending
        try:
            while True:
                if pending:
                    await trio.lowlevel.checkpoint()
                elif not await self._fetch():
                    return
                if pending:
                    yield self._absorb(pending.popleft())
        except GeneratorExit:
            self._abandon()
            raise

    async def text(self) -> str:
        """Wait for the turn to end and return the whole answer text.

        Raises:
            AgyError: The turn failed (timeout, quota, backend error...).
        """
        pending = self._pending
        absorb = self._absorb
        while True:
            while pending:
                absorb(pending.popleft())
            # One checkpoint per batch, not per event: _fetch always is one.
            if not await self._fetch():
                return "".join(self._text_parts)

    async def structured_output(self) -> Any:
        """Wait for the turn to end and return the answer the model handed over in it.

        The agent's ``response_schema`` says what comes back: an instance of
        its attrs or pydantic class, or the parsed JSON for a plain JSON
        schema. Only this turn counts: a turn in which the model answered in
        plain text returns None, even after earlier turns that did hand over
        a value.

        Raises:
            StructuredOutputError: The answer fits the JSON schema but the
                class refused it (its validators or converters); the error
                carries the raw JSON.
            AgyError: The turn failed (timeout, quota, backend error...).
        """
        await self.text()
        if self._structured is None or self._schema is None:
            return self._structured
        return read_structured_output(self._schema, self._structured)

    async def _fetch(self) -> bool:
        """Wait for the next batch of events into the pending queue; a checkpoint.

        Returns:
            False once every event has been read.

        Raises:
            BaseException: What ended the turn, if it failed.
        """
        if self._finished:
            await trio.lowlevel.checkpoint()
            if self._error is not None:
                raise self._error
            return False
        if self._reading:
            raise trio.BusyResourceError("another task is already reading this response")
        self._reading = True
        try:
            batch = await self._stream.receive_batch()
        except trio.EndOfChannel:
            if self._forced_error is not None:
                self._finish(self._forced_error)
                raise self._forced_error from None
            self._finish(None)
            return False
        except trio.Cancelled:
            # The reader gave up: the turn must not go on without it.
            await self._cancel_shielded()
            raise
        except Exception as exc:
            error = self._forced_error or exc
            self._finish(error)
            if error is exc:
                raise
            raise error from exc
        finally:
            self._reading = False
        self._counters.events += len(batch)
        self._pending.extend(batch)
        return True

    def _absorb(self, event: chat_events.ChatEvent) -> chat_events.ChatEvent:
        kind = type(event)
        if kind is chat_events.TextDelta:
            self._text_parts.append(event.text)  # type: ignore[union-attr]
        elif kind is chat_events.TurnEnd:
            self._usage = event.usage  # type: ignore[union-attr]
            self._stop_reason = event.stop_reason  # type: ignore[union-attr]
            self._structured = event.structured_output  # type: ignore[union-attr]
        elif kind is chat_events.ThoughtDelta:
            if self._thoughts is None:
                self._thoughts = []
            self._thoughts.append(event.text)  # type: ignore[union-attr]
        elif kind is chat_events.ToolCall:
            if self._tool_calls is None:
                self._tool_calls = []
            self._tool_calls.append(event)  # type: ignore[arg-type]
        return event

    def _finish(self, error: BaseException | None) -> None:
        """Mark every event read; ``error`` is what ended the turn, if anything did."""
        if self._finished:
            return
        self._finished = True
        if error is not None and self._error is None:
            self._error = error
            self._stop_reason = chat_events.StopReason.ERROR
        on_end, self._on_end = self._on_end, None  # once; and no cycle with the runtime's turn
        if on_end is not None:
            # Synchronously, before the reader sees the error: a caller that
            # chats again straight after a QuotaExceeded must find the backoff.
            on_end(error)

    def _force_error(self, error: BaseException) -> None:
        """Make the reader see ``error`` once the events already produced are read.

        The runtime calls this before cancelling a turn that timed out or that
        shutdown interrupted, so the reader learns why rather than a bare end.
        """
        if self._forced_error is None:
            self._forced_error = error

    async def _cancel_shielded(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(self._cancel_timeout):
            await self._stream.cancel()

    def _abandon(self) -> bool:
        """Interrupt the turn without waiting: nobody will read the rest. Any thread.

        Returns:
            Whether this interrupted a turn that was still running.
        """
        if self._closed or self._finished or self._stop_reason is not None:
            return False  # closed, or the end was seen: nothing left to interrupt
        self._closed = True  # abandoned once is enough
        on_abandon, self._on_abandon = self._on_abandon, None
        if on_abandon is not None:
            return on_abandon()
        self._stream.release()  # nothing can cancel it: at least never hold the agent
        return True

    # ------------------------------------------------------------------ stopping

    async def cancel(self) -> None:
        """Stop the turn; the text received so far stays available.

        After this, iteration ends and :attr:`stop_reason` is
        ``StopReason.CANCELLED`` (unless the turn had already ended).
        """
        self._closed = True
        await self._cancel_shielded()

    async def aclose(self) -> None:
        """Cancel the turn if it is still running."""
        if self._finished:
            await trio.lowlevel.checkpoint()
            return
        await self.cancel()

    async def __aenter__(self) -> ChatResponse:
        try:
            await trio.lowlevel.checkpoint()
        except trio.Cancelled:
            # Entered from a scope that is already cancelled: ``__aexit__``
            # will never run, so the block's exit happens here.
            await self.aclose()
            raise
        return self

    def __del__(self) -> None:
        if self._abandon():
            # Trio's habit for a resource nobody closed (a turn that had ended
            # unread lost nothing); last, because the warnings filter may turn
            # it into an exception (which GC prints).
            warnings.warn(
                f"ChatResponse of agent {self.agent_id!r} was garbage-collected unread: "
                "its turn was interrupted (close it, or read it to the end)",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )


@final
class _TextSteps:
    """One ``async for`` over a response's text: one delta a step, or (``text_batches``) a batch.

    Dropped before the end (the loop was left by ``break``, ``return`` or an
    exception), it abandons the turn; CPython drops it as the loop is left.
    """

    __slots__ = ("_response", "_take")

    def __init__(self, response: ChatResponse, take: Callable[[ChatResponse], str | None]) -> None:
        self._response = response
        self._take = take

    def __aiter__(self) -> _TextSteps:
        return self

    def __anext__(self) -> Awaitable[str]:
        return self._response._next_text(self._take)

    def __del__(self) -> None:
        # Nothing happens if the response has seen its end.
        self._response._abandon()
