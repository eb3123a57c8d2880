"""The per-turn event log: every protocol the server speaks renders one turn from it.

A turn served over HTTP runs in the server's own nursery, not in the request
that started it. What it produces is recorded **once**, in a :class:`TurnLog`,
as :class:`TurnEvent` objects; any number of :class:`TurnReader` objects replay
a log from any point and then follow it live. The native SSE API, AG-UI, A2A
and OpenAI Responses are all renderings of the same log, so they show the same
events in the same order, and a client that reconnects resumes exactly where
it left off.

The API, for code that renders a protocol from a turn:

* ``TurnEvent(id, turn_id, payload)``: ``id`` is 1, 2, 3... within the turn
  (monotonically increasing, never reused, a natural SSE ``id``);
  ``payload`` is one of the typed payloads below; ``event.kind`` is its
  :class:`EventKind`.
* Payloads (frozen attrs classes, every field JSON-safe): :class:`Text`,
  :class:`Thought`, :class:`ToolStarted`, :class:`ToolFinished`,
  :class:`ApprovalAsked`, :class:`ApprovalAnswered`, :class:`UsageReport`,
  :class:`TurnFinished`, :class:`TurnFailed`; their fields are listed in
  :mod:`agy_trio.serve.turn_events`, where they are defined (and imported
  from here too). Exactly one :class:`TurnFinished` or :class:`TurnFailed`
  ends every log (:data:`TERMINAL`); after it, :attr:`TurnLog.finished` is
  True.
* :class:`TurnLog`: ``turn_id``, ``agent_id``, ``events`` (everything so
  far), ``last_id``, ``finished``, ``text`` (the answer so far),
  ``readers`` (attached readers), ``parked`` (approvals it waits on),
  ``unattended_since`` (when it last lost its last reader, None while it has
  one or waits on an approval),
  ``events_after(id)`` (a snapshot, no waiting), ``attach(after=id)`` (a
  reader), ``await wait_changed()`` (anything happened: an event, a reader
  coming or going, an approval parked or answered).
* :class:`TurnReader`: ``async with log.attach(after=N) as reader: async for
  event in reader: ...`` yields every event with ``id > N``, then follows the
  log live and stops after the terminal event. An attached reader keeps the
  turn alive; when the last one leaves, the server's ``--reattach-grace``
  starts (see :mod:`agy_trio.serve.turns`). ``reader.position`` is the id of
  the last event it yielded.
* :class:`TurnLogs`: every log of a server by turn id; finished logs are kept
  for ``keep_seconds`` and at most ``keep_count`` of them, live logs always.
  ``get(turn_id)`` raises :class:`~agy_trio.errors.TurnNotFound`;
  ``current(agent_id)`` is the agent's running turn, if any.

Everything here runs in the server's Trio thread; nothing blocks.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable, Sequence

import trio

from agy_trio.errors import ConfigError, TurnNotFound
from agy_trio.serve import turn_events

# The payloads are this module's API too (the code below names them through
# their own module).
from agy_trio.serve.turn_events import *  # noqa: F403

__all__ = [*turn_events.__all__, "TurnLog", "TurnLogs", "TurnReader"]


class TurnLog:
    """Every event of one turn, recorded once, for any number of readers.

    Args:
        agent_id: The agent whose turn it is.
        turn_id: The turn's id; a fresh one when omitted.
        clock: Returns the time (``trio.current_time`` by default), for retention.
    """

    def __init__(
        self,
        agent_id: str,
        turn_id: str | None = None,
        *,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.turn_id = turn_id or turn_events.new_id("turn")
        self.agent_id = agent_id
        self._clock = clock
        self.started_at = clock()
        self.finished_at: float | None = None
        self._events: list[turn_events.TurnEvent] = []
        self._text: list[str] = []
        self._changed = trio.Event()
        self._readers = 0
        self._parked = 0
        self._ids = itertools.count(1)
        self._unattended_since: float | None = self.started_at

    def __repr__(self) -> str:
        state = "finished" if self.finished else "live"
        return f"<TurnLog {self.turn_id} of {self.agent_id}: {len(self._events)} events, {state}>"

    # ------------------------------------------------------------------ reading

    @property
    def events(self) -> Sequence[turn_events.TurnEvent]:
        """Every event recorded so far, oldest first (read-only)."""
        return tuple(self._events)

    @property
    def last_id(self) -> int:
        """The id of the newest event, 0 before the first."""
        return self._events[-1].id if self._events else 0

    @property
    def finished(self) -> bool:
        """Whether the terminal event has been recorded."""
        return bool(self._events) and self._events[-1].kind in turn_events.TERMINAL

    @property
    def end(self) -> turn_events.TurnFinished | turn_events.TurnFailed | None:
        """The terminal payload, once recorded."""
        if not self.finished:
            return None
        payload = self._events[-1].payload
        assert isinstance(payload, turn_events.TurnFinished | turn_events.TurnFailed)
        return payload

    @property
    def text(self) -> str:
        """The answer so far (every :class:`Text` joined)."""
        return "".join(self._text)

    @property
    def readers(self) -> int:
        """How many readers are attached now."""
        return self._readers

    @property
    def parked(self) -> int:
        """How many approvals the turn waits on now."""
        return self._parked

    @property
    def unattended_since(self) -> float | None:
        """Since when the turn has had neither a reader nor a parked approval (None: it has)."""
        return self._unattended_since

    def events_after(self, event_id: int) -> Sequence[turn_events.TurnEvent]:
        """The events with an id greater than ``event_id``, now (no waiting)."""
        return tuple(self._events[max(event_id, 0) :])

    def attach(self, after: int = 0) -> TurnReader:
        """A reader of the events after ``after``, attached from now until it is closed.

        Args:
            after: The id of the last event the reader already has (0: none),
                e.g. an SSE client's ``Last-Event-ID``.

        Raises:
            ConfigError: ``after`` is not a non-negative int.
        """
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ConfigError(f"must be a non-negative event id, got {after!r}", field="after")
        return TurnReader(self, after)

    async def wait_changed(self) -> None:
        """Wait until something happens: an event, a reader attached or gone, a park."""
        await self._changed.wait()

    # ------------------------------------------------------------------ writing

    def record(self, payload: turn_events.Payload) -> turn_events.TurnEvent:
        """Append ``payload`` as the next event and wake every reader.

        Raises:
            RuntimeError: The log already ended (a terminal event was recorded).
        """
        if self.finished:
            raise RuntimeError(f"{self.turn_id} already ended; cannot record {payload!r}")
        event = turn_events.TurnEvent(next(self._ids), self.turn_id, payload)
        self._events.append(event)
        if type(payload) is turn_events.Text:
            self._text.append(payload.text)
        elif payload.kind in turn_events.TERMINAL:
            self.finished_at = self._clock()
        self._notify()
        return event

    def park(self) -> None:
        """Note an approval the turn now waits on (the reattach grace is suspended)."""
        self._parked += 1
        self._notify()

    def unpark(self) -> None:
        """Note that an approval was answered."""
        self._parked = max(self._parked - 1, 0)
        self._notify()

    def _attached(self, delta: int) -> None:
        self._readers += delta
        self._notify()

    def _notify(self) -> None:
        if self._readers or self._parked:
            self._unattended_since = None
        elif self._unattended_since is None:
            self._unattended_since = self._clock()
        self._changed.set()
        self._changed = trio.Event()


class TurnReader:
    """Replays a :class:`TurnLog` from a point, then follows it live (``async for``).

    Attached from creation until :meth:`close` (or the end of ``async with``);
    iteration stops after the terminal event or once closed. One task reads it.
    """

    def __init__(self, log: TurnLog, after: int) -> None:
        self.log = log
        self._next = after  # ids are 1-based: events[after] has id after + 1
        self._closed = False
        log._attached(+1)

    @property
    def position(self) -> int:
        """The id of the last event yielded (or the ``after`` it started from)."""
        return self._next

    def close(self) -> None:
        """Detach from the log. Idempotent."""
        if not self._closed:
            self._closed = True
            self.log._attached(-1)

    async def __aenter__(self) -> TurnReader:
        await trio.lowlevel.checkpoint()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    def __aiter__(self) -> TurnReader:
        return self

    async def __anext__(self) -> turn_events.TurnEvent:
        log = self.log
        while not self._closed:
            if self._next < len(log._events):
                # A checkpoint before taking the event: a cancelled reader takes none.
                await trio.lowlevel.checkpoint()
                event = log._events[self._next]
                self._next += 1
                return event
            if log.finished:
                break
            await log._changed.wait()
        await trio.lowlevel.checkpoint()
        raise StopAsyncIteration


class TurnLogs:
    """A server's turn logs by id: live ones always, finished ones for a while.

    Args:
        keep_seconds: How long a finished turn's events stay readable.
        keep_count: At most this many finished turns are kept (oldest go first).
        clock: Returns the time (``trio.current_time`` by default).
    """

    def __init__(
        self,
        *,
        keep_seconds: float = 600.0,
        keep_count: int = 1000,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        if keep_seconds < 0 or keep_count < 0:
            raise ConfigError("turn retention must not be negative", field="keep_seconds")
        self.keep_seconds = keep_seconds
        self.keep_count = keep_count
        self._clock = clock
        self._logs: dict[str, TurnLog] = {}
        self._current: dict[str, TurnLog] = {}
        # Finished logs in the order they ended, for pruning.
        self._finished: collections.deque[TurnLog] = collections.deque()

    def __len__(self) -> int:
        return len(self._logs)

    def new(self, agent_id: str) -> TurnLog:
        """Open the log of a new turn of ``agent_id`` (which becomes its current turn)."""
        self.prune()
        log = TurnLog(agent_id, clock=self._clock)
        self._logs[log.turn_id] = log
        self._current[agent_id] = log
        return log

    def ended(self, log: TurnLog) -> None:
        """Note that ``log`` finished: it is kept for the retention period only."""
        if self._current.get(log.agent_id) is log:
            del self._current[log.agent_id]
        if log.turn_id in self._logs:
            self._finished.append(log)
        self.prune()

    def get(self, turn_id: str) -> TurnLog:
        """The log of ``turn_id``.

        Raises:
            TurnNotFound: No such turn, or it ended too long ago.
        """
        self.prune()
        try:
            return self._logs[turn_id]
        except KeyError:
            raise TurnNotFound(f"no turn {turn_id!r} (unknown, or expired)") from None

    def current(self, agent_id: str) -> TurnLog | None:
        """The turn ``agent_id`` runs now through the server, if any."""
        return self._current.get(agent_id)

    def live(self) -> list[TurnLog]:
        """The logs of the turns still running."""
        return [log for log in self._logs.values() if not log.finished]

    def prune(self) -> None:
        """Forget finished turns past the retention time or beyond the count."""
        finished = self._finished
        horizon = self._clock() - self.keep_seconds
        while finished and (
            len(finished) > self.keep_count or (finished[0].finished_at or 0.0) <= horizon
        ):
            self._logs.pop(finished.popleft().turn_id, None)
