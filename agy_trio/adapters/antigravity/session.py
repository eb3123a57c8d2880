"""The Trio face of one Antigravity agent: the runtime's ``AgentSession`` over :class:`SdkAgent`.

Every command crosses to the agent's host loop through
:class:`~agy_trio.adapters.hosted.HostedSession`; this only says where the
agent's settings and its error classification come from.
"""

from __future__ import annotations

from agy_trio.adapters.antigravity.agent import SdkAgent
from agy_trio.adapters.antigravity.errors import classify_error
from agy_trio.adapters.hosted import HostedSession

__all__ = ["AntigravitySession"]


class AntigravitySession(HostedSession):
    """The Trio side of one agent (an :class:`~agy_trio.core.backend.AgentSession`).

    Ending it stops the agent and its harness process: ``"delete"`` also
    deletes its conversation's saved state; ``"disconnect"`` and ``"shutdown"``
    keep it for a resume by conversation id (with the backend's default
    folders the state lasts until the backend closes; set
    ``AgentConfig.save_dir`` to keep it longer). The agent's own close tells
    the backend it is gone (so an ending cut short leaves it to the backend's
    close, which ends what is left).
    """

    __slots__ = ()

    def __init__(self, agent: SdkAgent) -> None:
        settings = agent.context.settings
        super().__init__(
            agent,
            agent.host,
            classify=classify_error,
            high_water=settings.stream_high_water,
            batch_max=settings.stream_batch_max,
        )
