"""What the runtime tells an observer: commands, turns and tool calls as they happen.

The runtime calls an :class:`Observer` (when one is installed) at a few points
of its life: a command submitted and answered, a turn started and ended, a tool
call run. :mod:`agy_trio.tracing` turns these into OpenTelemetry spans; the
protocol keeps the core free of any telemetry library, and a runtime without an
observer pays one ``is None`` test per event.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

import outcome

if TYPE_CHECKING:
    from agy_trio.core.commands import Command
    from agy_trio.core.events import Usage
    from agy_trio.core.settings import AgentConfig

__all__ = ["Observer"]


class Observer(Protocol):
    """Receives the runtime's events. Every method runs in the Trio thread and must not block."""

    def command_submitted(self, command: Command[Any]) -> None:
        """A caller submitted ``command`` (called in the caller's task and context)."""

    def command_answered(self, command: Command[Any], result: outcome.Outcome[Any]) -> None:
        """``command`` was answered with ``result`` (before the caller sees it)."""

    def turn_started(self, turn: object, command: Command[Any], config: AgentConfig) -> None:
        """The chat ``command`` started the turn identified by ``turn``."""

    def turn_ended(self, turn: object, usage: Usage | None, error: BaseException | None) -> None:
        """The turn produced its last event (``usage`` when the backend reported it)."""

    def tool_call(
        self, agent_id: str, name: str, arguments: Mapping[str, Any]
    ) -> AbstractContextManager[None]:
        """A context manager around one tool call of ``agent_id``'s current turn."""
