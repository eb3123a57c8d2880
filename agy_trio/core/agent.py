"""AgentHandle: the per-agent face users hold."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, final

import attrs
import trio

from agy_trio.core import commands as cmds
from agy_trio.core.construction import NoPublicConstructor
from agy_trio.core.content import Content, normalize_content
from agy_trio.core.events import Message, Usage
from agy_trio.errors import AgentNotFound, ConfigError, RuntimeClosed

if TYPE_CHECKING:
    from agy_trio.core.capabilities import SandboxStatus
    from agy_trio.core.settings import AgentConfig
    from agy_trio.core.streaming import ChatResponse

__all__ = ["AgentHandle", "TurnGuard"]

T = TypeVar("T")


class CommandSink(Protocol):
    """Where a handle sends its commands: the runtime."""

    def _submit(self, command: cmds.Command[Any]) -> Awaitable[Any]:
        """Send ``command`` and wait for its answer."""

    def _submit_nowait(self, command: cmds.Command[Any]) -> bool:
        """Send ``command`` without waiting; False if it was refused."""


class TurnGuard(Protocol):
    """What vets a prompt before its turn starts (the agent's ``pre_turn`` hooks)."""

    async def pre_turn(self, content: Content) -> Content:
        """The prompt to send, rewritten or not.

        Raises:
            TurnVetoed: A hook refused it.
        """


@final
@attrs.frozen(eq=False, repr=False)
class AgentHandle(metaclass=NoPublicConstructor):
    """A handle on one agent of a runtime.

    Every method sends a command to the runtime and waits for its reply, so all
    of them may be called concurrently from any number of Trio tasks. Each is
    bounded by the runtime's ``operation_timeout`` (a chat turn by
    ``chat_timeout``) and raises :class:`~agy_trio.errors.RuntimeClosed` once
    the runtime shuts down, or :class:`~agy_trio.errors.AgentNotFound` once the
    agent is gone. Cancelling a caller cancels its command all the way down:
    either the caller gets the result, or the command never reached the backend.

    Handles are created by :meth:`Runtime.create_agent` and
    :meth:`Runtime.open_agent`, not by hand. ``async with handle:`` shuts the
    agent down on exit, like :meth:`aclose`.

    Attributes:
        agent_id: The runtime's id for this agent.
        config: The configuration the agent was created with.
        conversation_id: The backend's conversation id: pass it in
            ``AgentConfig`` to resume.
    """

    # Read-only (frozen); compared by identity (eq=False), so handles can be
    # kept in sets and dicts.
    agent_id: str
    config: AgentConfig
    conversation_id: str
    _runtime: CommandSink
    # Runs the agent's pre_turn hooks in the caller's task (so a slow hook
    # holds up only its own caller); None when the runtime has none to run.
    _turn_guard: TurnGuard | None = None

    def __repr__(self) -> str:
        return f"<AgentHandle {self.agent_id} conversation={self.conversation_id}>"

    def _do(self, spec: cmds.CommandSpec[T], *args: Any) -> Awaitable[T]:
        # Not a coroutine itself: the caller awaits the runtime's directly.
        return self._runtime._submit(cmds.Command(spec, self.agent_id, args))

    # ------------------------------------------------------------------ turns

    async def chat(self, content: Content) -> ChatResponse:
        """Start a turn and return its streaming response once the turn has started.

        Waits first for any quota backoff of the agent's API key and for the
        runtime's start pacing (``inter_agent_delay``).

        Args:
            content: Text, or a list of parts (text, image or document bytes).

        Returns:
            The streaming response; iterate it or ``await response.text()``.

        Raises:
            ConfigError: The content is empty or malformed.
            QuotaExceeded: The endpoint refused the turn for quota reasons.
            OperationTimeout: The turn did not start within ``chat_timeout``.
            TurnVetoed: A ``pre_turn`` hook refused the prompt (or failed).
        """
        content = normalize_content(content)
        if self._turn_guard is not None:
            content = normalize_content(await self._turn_guard.pre_turn(content))
        return await self._do(cmds.CHAT, content)

    async def send(self, content: Content) -> None:
        """Send a message without waiting for the answer (it plays in the background)."""
        content = normalize_content(content)
        if self._turn_guard is not None:
            content = normalize_content(await self._turn_guard.pre_turn(content))
        await self._do(cmds.SEND, content)

    async def cancel(self) -> None:
        """Stop the agent's active turn; the agent stays usable for the next one."""
        await self._do(cmds.CANCEL)

    # ------------------------------------------------------------------ idleness

    async def wait_for_idle(self) -> None:
        """Return once the agent has no active turn."""
        await self._do(cmds.WAIT_FOR_IDLE)

    async def is_idle(self) -> bool:
        """Whether the agent has no active turn."""
        return await self._do(cmds.IS_IDLE)

    async def signal_idle(self) -> None:
        """Declare the agent idle: wake-ups received so far are dropped."""
        await self._do(cmds.SIGNAL_IDLE)

    async def wait_for_wakeup(self, timeout: float) -> bool:
        """Wait until the agent is woken by a message (``chat`` or ``send``).

        A wake-up that arrived since the last :meth:`signal_idle` counts at once.

        Args:
            timeout: Most seconds to wait.

        Returns:
            True if the agent was woken, False if the timeout passed first.

        Raises:
            ConfigError: ``timeout`` is not a number >= 0.
        """
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or math.isnan(timeout)
            or timeout < 0
        ):
            raise ConfigError(f"must be a number >= 0, got {timeout!r}", field="timeout")
        return await self._do(cmds.WAIT_FOR_WAKEUP, float(timeout))

    # ------------------------------------------------------------------ state

    async def history(self) -> list[Message]:
        """The conversation so far."""
        return await self._do(cmds.HISTORY)

    async def turn_count(self) -> int:
        """How many turns completed."""
        return await self._do(cmds.TURN_COUNT)

    async def total_usage(self) -> Usage:
        """Token usage summed over all turns."""
        return await self._do(cmds.TOTAL_USAGE)

    async def last_turn_usage(self) -> Usage:
        """Token usage of the most recent turn."""
        return await self._do(cmds.LAST_TURN_USAGE)

    async def clear_history(self) -> None:
        """Forget the conversation so far (see the backend's docs for exactly what)."""
        await self._do(cmds.CLEAR_HISTORY)

    async def sandbox_status(self) -> SandboxStatus | None:
        """Whether the command sandbox (``RunCommandConfig.enable_sandbox``) isolates commands.

        Returns:
            The harness's answer, or None when the backend does not report one
            (the scripted and null backends, and Temporal, whose harnesses
            live on the workers).
        """
        return await self._do(cmds.SANDBOX_STATUS)

    async def compaction_indices(self) -> list[int]:
        """History indices at which the conversation was compacted."""
        return await self._do(cmds.COMPACTION_INDICES)

    async def last_response(self) -> str | None:
        """The text of the last answer, if there was one."""
        return await self._do(cmds.LAST_RESPONSE)

    # ------------------------------------------------------------------ ending

    async def aclose(self) -> None:
        """Stop the agent (cancelling an active turn) and release its resources.

        An agent that is already gone counts as closed.
        """
        with contextlib.suppress(AgentNotFound, RuntimeClosed):
            await self._do(cmds.SHUTDOWN_AGENT)

    async def shutdown(self) -> None:
        """Stop the agent (cancelling an active turn) and release its resources.

        Unlike :meth:`aclose`, it raises when the agent is already gone.

        Raises:
            AgentNotFound: The agent was already shut down.
            RuntimeClosed: The runtime is shut down.
        """
        await self._do(cmds.SHUTDOWN_AGENT)

    def try_shutdown(self) -> None:
        """Start shutting the agent down without waiting. Never raises, never blocks."""
        # The contract is "never raises": a refused or failed submission is dropped.
        with contextlib.suppress(Exception):
            self._runtime._submit_nowait(cmds.Command(cmds.SHUTDOWN_AGENT, self.agent_id))

    async def delete(self) -> None:
        """Stop the agent and drop its conversation and all its saved state."""
        await self._do(cmds.DELETE)

    async def disconnect(self) -> None:
        """Stop the agent but keep its state; resume with ``conversation_id`` later."""
        await self._do(cmds.DISCONNECT)

    async def __aenter__(self) -> AgentHandle:
        await trio.lowlevel.checkpoint()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with trio.CancelScope(shield=True):
            await self.aclose()
