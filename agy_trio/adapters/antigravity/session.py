"""The Trio face of one Antigravity agent: the runtime's ``AgentSession`` over :class:`SdkAgent`.

Every command crosses to the agent's host loop through
:class:`~agy_trio.adapters.hosted.HostedSession`; this class only adds how an
agent ends.
"""

from __future__ import annotations

import trio

from agy_trio.adapters.antigravity.agent import SdkAgent
from agy_trio.adapters.antigravity.errors import classify_error
from agy_trio.adapters.hosted import HostedSession

__all__ = ["AntigravitySession"]


class AntigravitySession(HostedSession):
    """The Trio side of one agent (an :class:`~agy_trio.core.backend.AgentSession`)."""

    def __init__(self, agent: SdkAgent) -> None:
        context = agent.context
        super().__init__(
            agent,
            classify=classify_error,
            high_water=context.settings.stream_high_water,
            batch_max=context.settings.stream_batch_max,
        )
        self._sdk_agent = agent

    async def end(self, how: str) -> None:
        """Stop the agent and its harness process.

        ``"delete"`` also deletes its conversation's saved state; ``"disconnect"``
        and ``"shutdown"`` keep it for a resume by conversation id (with the
        backend's default folders the state lasts until the backend closes; set
        ``AgentConfig.save_dir`` to keep it longer).
        """
        agent = self._sdk_agent
        if not agent.host.alive:
            await trio.lowlevel.checkpoint()
            agent.context.forget(agent)
            return
        try:
            await agent.host.run(agent.delete if how == "delete" else agent.close)
        except Exception as exc:
            raise classify_error(exc) from exc

    def try_shutdown(self) -> None:
        """Start stopping the agent; never blocks."""
        self._sdk_agent.host.run_soon(self._sdk_agent.close)
