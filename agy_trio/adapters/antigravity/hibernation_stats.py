"""The counters of hibernation, shared by a backend's agents: :class:`HibernationStats`.

Apart from :mod:`~agy_trio.adapters.antigravity.hibernation` so that the
backend's context can hold them without importing the agents' parts.
"""

from __future__ import annotations

import collections
import threading

__all__ = ["HibernationStats"]

# Wake latencies kept for the percentiles in the statistics (the latest ones).
_LATENCIES_KEPT = 10_000


class HibernationStats:
    """Hibernations and wakes of one backend's agents; safe from any host thread.

    Attributes:
        hibernated: Agents hibernating now.
        hibernations: Times an agent went to sleep.
        wakes: Times an agent was woken.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.hibernated = 0
        self.hibernations = 0
        self.wakes = 0
        self._latencies: collections.deque[float] = collections.deque(maxlen=_LATENCIES_KEPT)

    def slept(self) -> None:
        """An agent went to sleep."""
        with self._lock:
            self.hibernated += 1
            self.hibernations += 1

    def woke(self, seconds: float) -> None:
        """An agent was woken, which took ``seconds``."""
        with self._lock:
            self.hibernated -= 1
            self.wakes += 1
            self._latencies.append(seconds)

    def ended_asleep(self) -> None:
        """A hibernating agent was shut down (it will not wake)."""
        with self._lock:
            self.hibernated -= 1

    def latencies(self) -> list[float]:
        """The latest wake latencies, in seconds, oldest first."""
        with self._lock:
            return list(self._latencies)
