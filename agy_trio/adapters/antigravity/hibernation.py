"""Idle agents hibernate: their harness conversation closes, their next command reopens it.

A conversation open on a harness costs about 2.3 MB inside the harness
process even while nobody talks to it, and real services hold many more
conversations than are active at once. An agent idle for the backend's
``hibernate_after`` seconds (no turn since then) therefore *hibernates*: its
SDK session is closed and its place on the harness given back (a harness left
without conversations exits, but the pool keeps one emptied this way running
for the next wake), and the agent keeps only what it needs to come back: its
conversation id and configuration (its tools, policies, hooks and MCP servers
are in it), plus a :class:`Snapshot` of what the queries answer.
The conversation itself stays where the harness saved it, in the agent's
``save_dir``.

The next command that needs the conversation (a chat, a clear) *wakes* the
agent: it is opened again in the SDK's RESUME mode, on any harness of its
group with room (a new one if none has), exactly as after a fatal error (see
:mod:`~agy_trio.adapters.antigravity.recovery`); the caller sees only the
latency. Queries (history, turn count, usage, the last answer) answer from the
snapshot without waking it. A crash of the harness while the agent hibernates
loses nothing: the agent holds no connection to it, and its saved state is on
disk.

One loop timer per agent decides when: it is armed when the agent goes idle
and re-arms itself while the agent was active since (activity only records a
time, so a busy agent costs no timer churn).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from agy_trio.adapters.antigravity.conversation import SdkConversation
from agy_trio.adapters.antigravity.events import transcript, without_thoughts
from agy_trio.adapters.antigravity.hibernation_stats import HibernationStats
from agy_trio.adapters.antigravity.recovery import Recovery
from agy_trio.core.events import Message, ToolCall, Usage

__all__ = [
    "DEFAULT_HIBERNATE_AFTER",
    "Hibernation",
    "Snapshot",
    "snapshot_of",
    "usage_difference",
]

DEFAULT_HIBERNATE_AFTER = 60.0
"""Seconds without a turn after which an agent hibernates, unless the backend says otherwise.

See docs/performance.md, "Hibernation", for the measurements behind it.
"""


@attrs.frozen
class Snapshot:
    """What a hibernating agent's queries answer, taken as it went to sleep.

    Attributes:
        messages: Its history.
        compactions: The compaction indices in ``messages``.
        completed: Prompts that got an answer.
        usage: Tokens used by every turn (before a clear too).
        last_response: The text of the last answer, if any.
    """

    messages: tuple[Message, ...]
    compactions: tuple[int, ...]
    completed: int
    usage: Usage
    last_response: str | None


@attrs.define(eq=False)
class Hibernation:
    """When one agent sleeps and how it wakes; lives on the agent's host loop.

    Args:
        recovery: The liveness of the agent's SDK session (its task slot is
            shared: a reopen, a hibernation and a wake never overlap).
        busy: Whether the agent has a turn active or queued.
        take_snapshot: What the queries will answer (from the live session).
        woken: Called with the snapshot once the session is live again (the
            agent carries its usage over to the new session).
        after: Seconds without a turn before it sleeps; None: never.
        stats: The backend's counters.

    Attributes:
        snapshot: Set while the agent sleeps (from the moment it starts to).
    """

    recovery: Recovery
    _busy: Callable[[], bool] = attrs.field(kw_only=True)
    _take_snapshot: Callable[[], Snapshot] = attrs.field(kw_only=True)
    _woken: Callable[[Snapshot], None] = attrs.field(kw_only=True)
    _after: float | None = attrs.field(kw_only=True)
    _stats: HibernationStats = attrs.field(kw_only=True)
    _last_active: float = attrs.field(init=False, default=0.0)
    _timer: asyncio.TimerHandle | None = attrs.field(init=False, default=None)
    asleep: bool = attrs.field(init=False, default=False)
    snapshot: Snapshot | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self.recovery.sleeper = self

    @property
    def conversation(self) -> SdkConversation:
        """The agent's SDK conversation."""
        return self.recovery.conversation

    # -- when

    def touch(self) -> None:
        """The agent was active now: it may sleep ``after`` seconds from now, not earlier."""
        if self._after is None:
            return
        loop = asyncio.get_running_loop()
        self._last_active = loop.time()
        if self._timer is None:
            self._timer = loop.call_later(self._after, self._due)

    def touch_when_done(self, task: asyncio.Task[None] | None) -> None:
        """Count the end of ``task`` (a turn) as activity."""
        if task is not None and self._after is not None:
            task.add_done_callback(self._turn_done)

    def _turn_done(self, _task: object) -> None:
        self.touch()

    def _due(self) -> None:
        self._timer = None
        after = self._after
        recovery = self.recovery
        if after is None or self.asleep or recovery.closed or recovery.dead is not None:
            return
        loop = asyncio.get_running_loop()
        remaining = self._last_active + after - loop.time()
        if remaining > 0:
            self._timer = loop.call_later(remaining, self._due)
            return
        if self._busy() or (recovery.task is not None and not recovery.task.done()):
            # Not idle after all (a turn, a clear, a reopen): look again later.
            self._timer = loop.call_later(after, self._due)
            return
        recovery.task = loop.create_task(self._sleep())

    def cancel(self) -> None:
        """Never sleep again (the agent is shutting down)."""
        self._after = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- sleeping and waking

    async def _sleep(self) -> None:
        """Close the session and give its place on the harness back (runs as the recovery task)."""
        if self._busy() or self.recovery.closed:
            return  # a turn arrived before this task's first step
        self.snapshot = self._take_snapshot()
        try:
            # An empty harness stays up for the next wake (the pool keeps one).
            await self.conversation.close(keep_warm=True)
        finally:
            self.asleep = True
            self._stats.slept()

    async def wake(self) -> None:
        """Open the conversation again in RESUME mode (runs as the recovery task).

        Raises:
            BackendError: No harness took the conversation; it stays asleep
                and the next command tries again.
        """
        started = time.perf_counter()
        await self.recovery.resume()
        snapshot = self.snapshot
        self.asleep = False
        self.snapshot = None
        self._stats.woke(time.perf_counter() - started)
        if snapshot is not None:
            self._woken(snapshot)
        self.touch()

    def end(self) -> None:
        """The agent is shutting down: cancel the timer; count it out if asleep."""
        self.cancel()
        if self.asleep:
            self.asleep = False
            self._stats.ended_asleep()


def snapshot_of(conv: Any, outcomes: Mapping[str, ToolCall], usage: Usage) -> Snapshot:
    """The :class:`Snapshot` of a live SDK conversation whose total usage is ``usage``."""
    messages, compactions, completed = transcript(conv.history, outcomes)
    text = without_thoughts(conv.last_response)
    return Snapshot(tuple(messages), tuple(compactions), completed, usage, text or None)


def usage_difference(total: Usage, part: Usage) -> Usage:
    """``total`` minus ``part``, field by field (never below zero)."""
    # Field by field, so a counter added to the class is carried too.
    mine, theirs = attrs.astuple(total), attrs.astuple(part)
    return Usage(*(max(0, a - b) for a, b in zip(mine, theirs, strict=True)))
