"""One agent of the Antigravity backend, as it lives on its asyncio host: :class:`SdkAgent`.

An :class:`SdkAgent` is the :class:`~agy_trio.core.contract.HostedAgent` the
Trio side (:class:`~agy_trio.adapters.hosted.HostedSession`) talks to. It puts
together the agent's parts, each in a module of its own: its SDK conversation
on a harness (:mod:`~agy_trio.adapters.antigravity.conversation`), the
reopening of that conversation after a failure
(:mod:`~agy_trio.adapters.antigravity.recovery`), its tools and hooks on the
Trio side (:mod:`~agy_trio.adapters.antigravity.tools`) and its turns
(:mod:`~agy_trio.adapters.antigravity.turns`); and it answers the queries
(history, usage) and ends the agent (close, delete, clear).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import attrs

from agy_trio.adapters.aio_host import AioHost
from agy_trio.adapters.antigravity.config import Endpoint
from agy_trio.adapters.antigravity.context import BackendContext
from agy_trio.adapters.antigravity.conversation import SdkConversation
from agy_trio.adapters.antigravity.events import transcript, usage_of, without_thoughts
from agy_trio.adapters.antigravity.hibernation import (
    Hibernation,
    Snapshot,
    snapshot_of,
    usage_difference,
)
from agy_trio.adapters.antigravity.limits import check_content
from agy_trio.adapters.antigravity.recovery import Recovery
from agy_trio.adapters.antigravity.tools import TrioBridge
from agy_trio.adapters.antigravity.turns import SdkTurn, TurnRunner
from agy_trio.core.backend import AgentServices
from agy_trio.core.capabilities import SandboxStatus
from agy_trio.core.content import Part
from agy_trio.core.contract import Ending, TurnSink
from agy_trio.core.events import Message, Usage
from agy_trio.core.settings import AgentConfig
from agy_trio.errors import ChannelClosed

__all__ = ["SdkAgent"]


@attrs.define(eq=False)
class SdkAgent:
    """One SDK agent and the machinery around it.

    Its coroutines run on its host loop; the backend reads only its plain
    attributes (``host``, ``agent_id``, ``context``) from Trio.

    Args:
        context: What the backend's agents share.
        host: The host thread whose loop the agent lives on.
        agent_id: The runtime's id of the agent.
        config: Its configuration.
        services: The runtime's services for it (tools, policies, hooks).
        endpoint: The endpoint ``config`` selects.
        conversation_id: The conversation to create or resume.
    """

    context: BackendContext
    host: AioHost
    agent_id: str
    config: AgentConfig
    services: AgentServices
    endpoint: Endpoint
    conversation_id: str
    bridge: TrioBridge = attrs.field(init=False)
    conversation: SdkConversation = attrs.field(init=False)
    recovery: Recovery = attrs.field(init=False)
    runner: TurnRunner = attrs.field(init=False)
    hibernation: Hibernation = attrs.field(init=False)
    close_task: asyncio.Task[None] | None = attrs.field(init=False, default=None)
    # What the agent spent before its last clear_history.
    usage_offset: Usage = attrs.field(init=False, factory=Usage)

    def __attrs_post_init__(self) -> None:
        self.bridge = TrioBridge(
            self.host, self.services, self.agent_id, lambda: self.runner.current
        )
        self.conversation = SdkConversation(
            self.context,
            self.agent_id,
            self.config,
            self.endpoint,
            self.conversation_id,
            self.bridge.sdk_tools,
            self.bridge.authorize,
            self.bridge.sdk_hooks,
        )
        self.recovery = Recovery(self.conversation)
        self.runner = TurnRunner(self.recovery, self.bridge)
        self.hibernation = Hibernation(
            self.recovery,
            busy=self._busy,
            take_snapshot=self._snapshot,
            woken=self._woken,
            after=self.context.settings.hibernate_after,
            stats=self.context.hibernation,
        )

    @property
    def closed(self) -> bool:
        """Whether the agent is shut down (or shutting down)."""
        return self.recovery.closed

    # -- life

    async def open(self, *, resume: bool) -> None:
        """Start the agent's SDK conversation: create it, or resume it."""
        self.runner.loop_state()
        await self.conversation.open(resume=resume)
        self.hibernation.touch()

    async def close(self) -> None:
        """Stop every turn and the harness (idempotent; concurrent callers share one close)."""
        if self.close_task is None:
            self.recovery.closed = True
            self.hibernation.cancel()
            self.close_task = asyncio.get_running_loop().create_task(self._close())
        await asyncio.shield(self.close_task)

    async def _close(self) -> None:
        try:
            await self.runner.cancel_turns(None)
            await self.recovery.finish()
            self.hibernation.end()
            await self.conversation.close()
        finally:
            self.host.wake_trio(self.context.forget, self)

    async def end(self, how: Ending) -> None:
        """Stop the agent; ``"delete"`` also deletes its conversation's saved state."""
        await (self.delete() if how == "delete" else self.close())

    async def delete(self) -> None:
        """Close the agent and delete its conversation's saved state."""
        await self.close()
        await self.conversation.remove_files()

    async def clear_history(self) -> None:
        """Forget the conversation: a fresh SDK conversation under the same id."""
        lock, _ = self.runner.loop_state()
        await self.runner.cancel_turns(None)
        async with lock, self.conversation.launcher.holding():  # on the same harness
            conv = await self.recovery.ready()  # wakes it if it hibernates
            self.usage_offset = self.usage_offset + usage_of(conv.total_usage)
            await self.conversation.close()
            await self.conversation.remove_files()
            self.bridge.outcomes.clear()
            self.runner.interrupted.clear()
            self.runner.last_usage = Usage()
            try:
                await self.conversation.open(resume=False)
            except Exception as exc:
                self.recovery.dead = ChannelClosed(
                    f"agent {self.agent_id}: could not start a fresh conversation: {exc}"
                )
                raise self.recovery.dead from exc

    # -- turns

    async def chat(self, content: Sequence[Part], sink: TurnSink) -> SdkTurn:
        """Start a turn streaming into ``sink``; return once it holds the turn slot."""
        return await self.start_turn(content, sink)

    async def send(self, content: Sequence[Part]) -> None:
        """Start a turn nobody reads; return once it holds the turn slot."""
        await self.start_turn(content, None)

    async def cancel(self) -> None:
        """Stop the active turn and every turn queued behind it, through the SDK."""
        await self.runner.cancel_turns(None)

    async def start_turn(self, parts: Sequence[Part], bridge: TurnSink | None) -> SdkTurn:
        """Queue a turn; return once it holds the agent's turn slot.

        Raises:
            ContentTooLarge: The harness would cut or drop the content (see
                :mod:`~agy_trio.adapters.antigravity.limits`); nothing was sent.
        """
        check_content(parts, self.conversation.endpoint)
        self.hibernation.touch()
        turn = await self.runner.start_turn(parts, bridge)
        self.hibernation.touch_when_done(turn.task)
        return turn

    async def cancel_turns(self, turns: Sequence[SdkTurn]) -> None:
        """Stop ``turns`` through the SDK and wait until they are over."""
        await self.runner.cancel_turns(turns)

    # -- queries

    async def is_idle(self) -> bool:
        """Whether no turn is active."""
        _, idle = self.runner.loop_state()
        return idle.is_set()

    async def wait_for_idle(self) -> None:
        """Return once no turn is active and no reopen is under way."""
        _, idle = self.runner.loop_state()
        await idle.wait()
        await self.recovery.settle()

    async def transcript(self) -> tuple[list[Message], list[int], int]:
        """The history, its compaction indices and the completed turns (see ``transcript``).

        A hibernating agent answers from its snapshot, without waking.
        """
        snapshot = self.hibernation.snapshot
        if snapshot is not None:
            return list(snapshot.messages), list(snapshot.compactions), snapshot.completed
        conv = await self.recovery.ready()
        return transcript(conv.history, self.bridge.outcomes, self.runner.interrupted)

    async def history(self) -> list[Message]:
        """The conversation: prompts, tool calls and complete answers."""
        messages, _, _ = await self.transcript()
        return messages

    async def turn_count(self) -> int:
        """Prompts that got an answer."""
        _, _, completed = await self.transcript()
        return completed

    async def compaction_indices(self) -> list[int]:
        """Positions in :meth:`history` at which the SDK compacted the conversation."""
        _, compactions, _ = await self.transcript()
        return compactions

    async def total_usage(self) -> Usage:
        """Tokens used by every turn, before a ``clear_history`` too."""
        snapshot = self.hibernation.snapshot
        if snapshot is not None:
            return snapshot.usage
        conv = await self.recovery.ready()
        return self.usage_offset + usage_of(conv.total_usage)

    async def last_turn_usage(self) -> Usage:
        """Tokens used by the last turn that completed."""
        return self.runner.last_usage

    async def sandbox_status(self) -> SandboxStatus | None:
        """The sandbox status the harness reported at its handshake (None: not reported)."""
        conv = await self.recovery.ready()
        status = getattr(conv, "sandbox_status", None)
        if status is None:
            return None
        return SandboxStatus(bool(status.available), status.unavailable_reason or None)

    async def last_response(self) -> str | None:
        """The text of the last answer, without its inline reasoning."""
        snapshot = self.hibernation.snapshot
        if snapshot is not None:
            return snapshot.last_response
        conv = await self.recovery.ready()
        text = without_thoughts(conv.last_response)
        return text or None

    # -- hibernation

    def _busy(self) -> bool:
        lock, idle = self.runner.loop_state()
        return lock.locked() or not idle.is_set()

    def _snapshot(self) -> Snapshot:
        conv = self.conversation.conv
        if conv is None:  # pragma: no cover  (hibernation starts only with a live session)
            raise ChannelClosed(f"agent {self.agent_id} has no session to hibernate")
        usage = self.usage_offset + usage_of(conv.total_usage)
        return snapshot_of(conv, self.bridge.outcomes, usage)

    def _woken(self, snapshot: Snapshot) -> None:
        # The resumed session counts its usage afresh (or replays it): carry
        # the total over, so that total_usage() goes on where it was.
        conv = self.conversation.conv
        resumed = usage_of(conv.total_usage) if conv is not None else Usage()
        self.usage_offset = usage_difference(snapshot.usage, resumed)
