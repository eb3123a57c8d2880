"""What the protocol endpoints see of the app's shared state (a Protocol, so no import circle).

The app's service object (in :mod:`agy_trio.serve.app`) implements it; the
endpoint modules type against this instead of importing the app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from starlette.requests import Request

    from agy_trio.core.runtime import Runtime
    from agy_trio.core.settings import AgentConfig
    from agy_trio.serve.approvals import Approvals
    from agy_trio.serve.profile import ServedProfile
    from agy_trio.serve.stream import LiveStreams
    from agy_trio.serve.turn_log import TurnLogs
    from agy_trio.serve.turns import TurnRunner
    from agy_trio.serve.wire import Redactor

__all__ = ["ServiceState"]


class ServiceState(Protocol):
    """The runtime, the served profile, the turns and approvals, the live streams."""

    runtime: Runtime
    profile: ServedProfile
    defaults: AgentConfig
    turn_logs: TurnLogs
    turns: TurnRunner
    approvals: Approvals
    streams: LiveStreams
    redact: Redactor
    _created: set[str]

    def _check_open(self) -> None:
        """Raise RuntimeClosed once the server is shutting down."""

    async def _json_object(self, request: Request, *, empty_ok: bool) -> dict[str, Any]:
        """The request's body as a JSON object (ConfigError otherwise)."""
