"""Quota backoff per API key.

When an endpoint answers 429 the runtime records a backoff for the key it
used; every LLM command (chat, send) for that key waits until the backoff has
passed. Only a *successful LLM command* clears the backoff: a cheap command
such as ``history()`` succeeding says nothing about the model's quota.
"""

from __future__ import annotations

import hashlib
import math

import attrs
import trio

__all__ = ["QuotaRegistry", "QuotaState", "QuotaStatistics", "key_fingerprint"]


def key_fingerprint(key: str) -> str:
    """A short, stable name for an API key that does not reveal it.

    Args:
        key: The API key; ``""`` stands for "no key".

    Returns:
        ``"sha256:"`` followed by the first 12 hex digits of the SHA-256 of
        the key's UTF-8 bytes, or ``""`` for ``""``.
    """
    if not key:
        return ""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest[:12]}"


@attrs.frozen
class QuotaStatistics:
    """A snapshot of one key's quota state.

    Attributes:
        hits: Quota errors recorded so far.
        backoff_remaining: Seconds until LLM commands may start again (0 if none).
    """

    hits: int
    backoff_remaining: float


class QuotaState:
    """The backoff state of one API key.

    Args:
        default_backoff: Seconds to back off when the endpoint gave no Retry-After.
    """

    def __init__(self, default_backoff: float = 5.0) -> None:
        self.default_backoff = default_backoff
        self._resume_at = -math.inf
        self._hits = 0

    def record_hit(self, retry_after: float | None) -> None:
        """Record a quota error; LLM commands wait ``retry_after`` seconds from now.

        A later, shorter Retry-After never shortens a backoff already in force.
        """
        wait = self.default_backoff if retry_after is None else max(0.0, retry_after)
        self._hits += 1
        self._resume_at = max(self._resume_at, trio.current_time() + wait)

    def record_success(self) -> None:
        """Clear the backoff: an LLM command just succeeded."""
        self._resume_at = -math.inf

    @property
    def backing_off(self) -> bool:
        """Whether LLM commands must wait right now."""
        return trio.current_time() < self._resume_at

    async def wait(self) -> None:
        """Wait until no backoff is in force (a checkpoint even when there is none)."""
        # A loop, because a hit recorded while we slept may extend the backoff.
        while trio.current_time() < self._resume_at:  # noqa: ASYNC110
            await trio.sleep_until(self._resume_at)
        await trio.lowlevel.checkpoint()

    def statistics(self) -> QuotaStatistics:
        """A snapshot of this key's state."""
        remaining = max(0.0, self._resume_at - trio.current_time())
        return QuotaStatistics(self._hits, remaining)


class QuotaRegistry:
    """One :class:`QuotaState` per API key; independent per runtime.

    Args:
        default_backoff: Passed to each new state.
    """

    def __init__(self, default_backoff: float = 5.0) -> None:
        self._default_backoff = default_backoff
        self._states: dict[str, QuotaState] = {}

    def state_for(self, key: str) -> QuotaState:
        """The state for ``key`` (the empty string stands for "no key"), created on first use."""
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = QuotaState(self._default_backoff)
        return state

    def keys(self) -> list[str]:
        """Fingerprints of the keys seen so far, never the keys themselves.

        Each is :func:`key_fingerprint` of a key: ``"sha256:"`` and the first
        12 hex digits of the key's SHA-256, enough to tell keys apart in logs
        and reports without revealing them. ``""`` (no key) is listed as ``""``.
        """
        return [key_fingerprint(key) for key in self._states]
