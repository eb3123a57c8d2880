"""The Trio face of one Antigravity agent: the runtime's ``AgentSession`` over :class:`SdkAgent`.

Every command crosses to the agent's host loop through
:class:`~agy_trio.adapters.hosted.HostedSession`; this class only adds how an
agent ends and what its queries mean for this backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from agy_trio.adapters.antigravity.agent import SdkAgent
from agy_trio.adapters.antigravity.errors import classify_error
from agy_trio.adapters.hosted import HostedSession
from agy_trio.core.events import Message, Usage

__all__ = ["AntigravitySession"]


class AntigravitySession(HostedSession):
    """The Trio side of one agent (an :class:`~agy_trio.core.backend.AgentSession`)."""

    def __init__(self, agent: SdkAgent) -> None:
        context = agent.context
        super().__init__(
            agent,
            classify=classify_error,
            high_water=context.stream_high_water,
            batch_max=context.stream_batch_max,
        )
        self._sdk_agent = agent

    async def history(self) -> list[Message]:
        """The conversation: user prompts, tool calls and the model's complete answers."""
        return await super().history()

    async def turn_count(self) -> int:
        """Prompts that got an answer (resumed turns included)."""
        return await super().turn_count()

    async def total_usage(self) -> Usage:
        """Tokens used by every turn of this agent, before a ``clear_history`` too."""
        return await super().total_usage()

    async def clear_history(self) -> None:
        """Make the agent forget the conversation, for the model too.

        The SDK's own ``clear_history`` only empties a client-side list: the
        model keeps seeing everything. Here the active turn is cancelled, the
        harness stopped, the conversation's saved state (database and
        transcripts) deleted, and a fresh conversation started under the same
        conversation id. Afterwards :meth:`history` is empty, :meth:`turn_count`
        is 0, :meth:`last_response` is None, :meth:`compaction_indices` and
        :meth:`last_turn_usage` are reset, and the model remembers nothing.
        :meth:`total_usage` keeps counting what the agent spent before.
        """
        await super().clear_history()

    async def compaction_indices(self) -> list[int]:
        """Positions in :meth:`history` at which the SDK compacted the conversation."""
        return await super().compaction_indices()

    async def delete(self) -> None:
        """Stop the agent and delete its conversation's saved state."""
        await self._end(self._sdk_agent.delete)

    async def disconnect(self) -> None:
        """Stop the agent, keeping its saved state for a resume by conversation id.

        With the backend's default folders the state lasts until the backend
        closes; set ``AgentConfig.save_dir`` to keep it longer.
        """
        await self._end(self._sdk_agent.close)

    async def shutdown(self) -> None:
        """Stop the agent and its harness process."""
        await self._end(self._sdk_agent.close)

    async def _end(self, fn: Callable[[], Any]) -> None:
        agent = self._sdk_agent
        if not agent.host.alive:
            await trio.lowlevel.checkpoint()
            agent.context.forget(agent)
            return
        await self._call(fn)

    def try_shutdown(self) -> None:
        """Start stopping the agent; never blocks."""
        self._sdk_agent.host.run_soon(self._sdk_agent.close)
