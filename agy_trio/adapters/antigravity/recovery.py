"""Keeping an agent's SDK session usable: reopening it in RESUME mode after it died.

After any HTTP error of the model endpoint the SDK session is dead: its next
``chat()`` answers nothing and the one after hangs forever. The only way back
that works is to leave the SDK ``Agent`` and open a new one on the same
conversation id in RESUME mode; the conversation's saved state (its database)
outlives the SDK session, so the agent keeps its history. The conversation
keeps its place on its harness meanwhile (the failure concerned only its own
WebSocket; the other conversations on the harness go on), unless the harness
process itself died: then it resumes on a fresh one. A :class:`Recovery` does
that in an asyncio task of its own (a turn cancelled meanwhile must not
interrupt a reopen), and everything that needs the session waits for it in
:meth:`Recovery.ready`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from agy_trio.adapters.antigravity.conversation import SdkConversation
from agy_trio.adapters.antigravity.errors import describe
from agy_trio.errors import AgyError, BackendError, ChannelClosed

__all__ = ["Recovery"]

log = logging.getLogger("agy_trio.antigravity")

# Resuming a conversation its harness refused: attempts in all, and the pause
# before the second (doubled each time: 1.5 s in all).
_RESUME_ATTEMPTS = 5
_RESUME_BACKOFF = 0.1


class Sleeper(Protocol):
    """An agent's hibernation, as :meth:`Recovery.ready` sees it (see ``hibernation``)."""

    @property
    def asleep(self) -> bool:
        """Whether the SDK session is closed because the agent was idle."""

    async def wake(self) -> None:
        """Open the session again in RESUME mode."""


class Recovery:
    """The liveness of one agent's SDK session, and its reopening after a failure.

    Lives on the agent's host loop.

    Args:
        conversation: The agent's SDK conversation.

    Attributes:
        task: The reopen, hibernation or wake under way (they never overlap).
        dead: Set when the session could not be reopened: raised by :meth:`ready`.
        closed: Set when the agent shuts down: no turn, no query, no reopen after that.
        sleeper: The agent's hibernation, if it may hibernate: :meth:`ready`
            wakes it.
    """

    def __init__(self, conversation: SdkConversation) -> None:
        self.conversation = conversation
        self.task: asyncio.Task[None] | None = None
        self.dead: AgyError | None = None
        self.closed = False
        self.sleeper: Sleeper | None = None

    @property
    def agent_id(self) -> str:
        """The agent's id, for messages."""
        return self.conversation.agent_id

    def start(self, cause: BaseException) -> None:
        """Begin reopening the session after ``cause`` killed it, unless a reopen is running."""
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._reopen(cause))

    async def _reopen(self, cause: BaseException) -> None:
        """Replace a dead SDK session by a resumed one; on failure the agent is dead."""
        self.conversation.context.counters.count("reopens")
        log.info("agent %s: reopening the SDK session after %s", self.agent_id, describe(cause))
        try:
            # On the same harness, unless the harness is what died.
            async with self.conversation.launcher.holding():
                await self.conversation.close()
                await self.resume()
        except asyncio.CancelledError:
            self.dead = ChannelClosed(f"agent {self.agent_id}: reopening was interrupted")
            raise
        except Exception as exc:
            self.dead = ChannelClosed(
                f"agent {self.agent_id}: the SDK session failed ({describe(cause)}) "
                f"and could not be reopened ({describe(exc)})"
            )
            log.error("%s", self.dead)

    async def resume(self) -> None:
        """Open the conversation again in RESUME mode, trying a few times.

        A harness that serves other conversations too may still be winding
        down the conversation's last session when the resume arrives (it then
        closes the new WebSocket without a word): seen a few times in a
        thousand under load. Asking again shortly after works.
        """
        for attempt in range(_RESUME_ATTEMPTS):
            try:
                await self.conversation.open(resume=True)
            except BackendError as exc:
                if attempt + 1 == _RESUME_ATTEMPTS or type(exc) is not BackendError:
                    raise
                delay = _RESUME_BACKOFF * 2**attempt
                log.info(
                    "agent %s: the harness refused the resume (%s); again in %.2f s",
                    self.agent_id,
                    describe(exc),
                    delay,
                )
                await asyncio.sleep(delay)
            else:
                return

    async def settle(self) -> None:
        """Wait for a reopen in progress, if any (it goes on if the caller is cancelled)."""
        if self.task is not None and not self.task.done():
            await asyncio.shield(self.task)

    async def finish(self) -> None:
        """Wait for a reopen in progress to end, whichever way (for shutdown)."""
        if self.task is not None:
            with contextlib.suppress(BaseException):
                await self.task

    async def ready(self) -> Any:
        """Wait for a reopen in progress, wake the agent if it hibernates; return the live session.

        Raises:
            ChannelClosed: The agent is shut down or could not be reopened.
            BackendError: It hibernates and no harness took it back (it stays
                asleep; the next call tries again).
        """
        await self.settle()
        sleeper = self.sleeper
        if sleeper is not None and sleeper.asleep and not self.closed and self.dead is None:
            if self.task is None or self.task.done():
                self.task = asyncio.get_running_loop().create_task(sleeper.wake())
            await self.settle()
        if self.dead is not None:
            raise self.dead
        conv = self.conversation.conv
        if self.closed or conv is None:
            raise ChannelClosed(f"agent {self.agent_id} is shut down")
        return conv

    def check_open(self) -> None:
        """Raise at once if the agent is shut down or its session is dead.

        Raises:
            ChannelClosed: The agent is shut down or could not be reopened.
        """
        if self.closed:
            raise ChannelClosed(f"agent {self.agent_id} is shut down")
        if self.dead is not None:
            raise self.dead
