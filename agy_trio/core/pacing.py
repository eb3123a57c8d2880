"""Spacing of chat starts, so a burst of agents does not hammer the endpoint at once."""

from __future__ import annotations

import math

import trio

__all__ = ["StartPacer"]


class StartPacer:
    """Hands out start slots at least ``delay`` seconds apart.

    Each caller reserves the next free slot and sleeps until it; the chats
    themselves then run concurrently. A delay of 0 disables pacing.

    Args:
        delay: Minimum seconds between two successive starts.
    """

    def __init__(self, delay: float) -> None:
        if delay < 0 or math.isnan(delay):
            raise ValueError("delay must be >= 0")
        self.delay = delay
        self._last_slot = -math.inf

    async def wait_turn(self) -> None:
        """Wait for this caller's start slot (a checkpoint even when pacing is off)."""
        if self.delay == 0:
            await trio.lowlevel.checkpoint()
            return
        now = trio.current_time()
        slot = max(now, self._last_slot + self.delay)
        # Reserve before sleeping: the next caller queues behind this slot even
        # if this one is cancelled, which keeps the spacing guarantee simple.
        self._last_slot = slot
        await trio.sleep_until(slot)
