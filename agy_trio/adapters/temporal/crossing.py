"""The one narrow interface between a worker's two halves, each side's view of the other.

A worker is two objects on two sides of a thread (or loop) line:
:class:`~agy_trio.adapters.temporal.temporal_side.TemporalSide` lives on the
asyncio host with the Temporal client and workers; it runs the activities and
makes every call to a workflow.
:class:`~agy_trio.adapters.temporal.turn_player.TurnPlayer` lives in Trio with
the runtime; it plays turns on live SDK conversations. Each knows the other
only as the protocol here, and every call crosses through the host
(``host.call_trio`` one way, ``host.run`` the other).
"""

from __future__ import annotations

from typing import Protocol

from agy_trio.adapters.temporal.conversations import TurnProgress
from agy_trio.adapters.temporal.messages import (
    ConversationSnapshot,
    QuotaStatus,
    ToolClaim,
    ToolClaimRequest,
    ToolDone,
    TurnOutcome,
    TurnTask,
)
from agy_trio.errors import AgyError

__all__ = ["ToolCallNotRepeated", "TurnPlaying", "WorkflowCalls"]


class ToolCallNotRepeated(AgyError):
    """A retried turn reached a tool call whose first run's outcome is unknown.

    The worker that ran it died before saying how it ended; running it again
    could repeat its side effects, so the model is told it failed instead.
    """


class TurnPlaying(Protocol):
    """What the Temporal side asks of the Trio side (coroutines run in Trio)."""

    async def play(self, task: TurnTask, progress: TurnProgress) -> TurnOutcome:
        """Play one attempt of a turn, reporting what it shows to ``progress``."""

    async def forget(self, conversation_id: str) -> None:
        """Drop a deleted conversation and its SDK state."""


class WorkflowCalls(Protocol):
    """What the Trio side asks of the Temporal side (coroutines run on the host loop)."""

    async def snapshot(self, workflow_id: str) -> ConversationSnapshot:
        """What a worker needs to rebuild the conversation of ``workflow_id``."""

    async def claim_tool(self, workflow_id: str, request: ToolClaimRequest) -> ToolClaim:
        """Ask the workflow whether this attempt may run a tool call.

        Raises:
            ToolCallNotRepeated: The attempt is stale.
        """

    async def tool_done(self, workflow_id: str, done: ToolDone) -> None:
        """Tell the workflow how a tool call ended."""

    async def quota_status(self) -> QuotaStatus | None:
        """The backoff the quota workflow of this worker's key holds, if any."""

    async def record_quota_hit(self, retry_after: float) -> None:
        """Record a 429 for this worker's key, for every worker."""
