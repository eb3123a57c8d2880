"""Wake-ups: an agent is woken by each message (``chat`` or ``send``) routed to it.

``wait_for_wakeup`` returns at once for a wake-up that arrived since the
agent's last ``signal_idle``; otherwise it waits, with its own timeout, for
the next one. Only a waiting agent pays for an event.
"""

from __future__ import annotations

import trio
import trio.lowlevel

__all__ = ["Wakeups"]


class Wakeups:
    """The wake-up state of every agent of one runtime. Trio thread only."""

    __slots__ = ("_waiters", "_woken")

    def __init__(self) -> None:
        # Agents woken since they last signalled idle.
        self._woken: set[str] = set()
        # The event of each agent someone is waiting on.
        self._waiters: dict[str, trio.Event] = {}

    def wake(self, agent_id: str) -> None:
        """A message was routed to ``agent_id``: it is woken."""
        self._woken.add(agent_id)
        if self._waiters:
            event = self._waiters.pop(agent_id, None)
            if event is not None:
                event.set()

    def signal_idle(self, agent_id: str) -> None:
        """``agent_id`` declared itself idle: drop the wake-ups it had."""
        self._woken.discard(agent_id)

    def forget(self, agent_id: str) -> None:
        """``agent_id`` ended."""
        self._woken.discard(agent_id)
        self._waiters.pop(agent_id, None)

    async def wait(self, agent_id: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for ``agent_id`` to be woken; whether it was."""
        if agent_id in self._woken:
            self._woken.discard(agent_id)
            await trio.lowlevel.checkpoint()
            return True
        event = self._waiters.get(agent_id)
        if event is None:
            event = self._waiters[agent_id] = trio.Event()
        with trio.move_on_after(timeout):
            await event.wait()
        woken = agent_id in self._woken
        self._woken.discard(agent_id)
        return woken
