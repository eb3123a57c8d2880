"""A worker's Trio half: live SDK conversations on the worker's runtime, and the turns they play.

A worker keeps the SDK conversations it played recently, each tagged with the
conversation's *lineage* (who last changed its transcript). A turn whose
lineage matches reuses the live conversation; any other turn rebuilds one:
the workflow's transcript is replayed into a fresh SDK conversation as
system instructions, and the prompt is sent as usual. A tool call asks the
workflow first, so a turn retried after its worker died never runs a call
with side effects twice. Every call to a workflow goes through
:class:`~agy_trio.adapters.temporal.crossing.WorkflowCalls` on the host.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import math
import time
from typing import TYPE_CHECKING, Any

import attrs
import trio

from agy_trio.adapters.host_base import AsyncioHost
from agy_trio.adapters.temporal.conversations import (
    LiveConversation,
    TurnContext,
    TurnProgress,
    next_lineage,
    replay_instructions,
)
from agy_trio.adapters.temporal.convert import parts_of, segment_of, usage_data
from agy_trio.adapters.temporal.crossing import ToolCallNotRepeated, WorkflowCalls
from agy_trio.adapters.temporal.messages import (
    ConversationSnapshot,
    ToolClaim,
    ToolClaimRequest,
    ToolDone,
    ToolRecord,
    TurnOutcome,
    TurnTask,
)
from agy_trio.core.calling import run_callable
from agy_trio.core.events import ToolCall, TurnEnd, json_safe
from agy_trio.errors import AgyError, QuotaExceeded

if TYPE_CHECKING:
    from agy_trio.adapters.temporal.options import WorkerOptions
    from agy_trio.core.runtime import Runtime
    from agy_trio.core.settings import AgentConfig
    from agy_trio.core.tools import Tool

__all__ = ["QUOTA_FRESH", "TurnPlayer"]

log = logging.getLogger("agy_trio.temporal.worker")

_DEFAULT_BACKOFF = 5.0  # seconds, when a 429 came without Retry-After
# How long a worker trusts the last answer of the quota workflow: a 429 seen by
# another worker reaches this one at most this much later, and a turn does not
# pay a query round trip (5-25 ms here) when turns start in quick succession.
QUOTA_FRESH = 0.5
"""Seconds a worker trusts its last answer from the quota workflow (see above)."""


@attrs.define(eq=False)
class TurnPlayer:
    """The Trio half of one worker: its live conversations and the turns they play.

    Args:
        rt: The runtime the agents live in (its backend plays the turns).
        agent_defaults: The endpoint every agent uses here (model, base_url,
            api_key); the agent's own settings supply the rest.
        options: Connection and capacity.
        own_queue: The worker's own queue, reported with each turn it played.
        host: The asyncio host the Temporal side runs on.
        workflows: The Temporal side's calls to workflows (run through ``host``).
    """

    rt: Runtime
    agent_defaults: AgentConfig
    options: WorkerOptions
    own_queue: str
    host: AsyncioHost
    workflows: WorkflowCalls
    turns_played: int = attrs.field(init=False, default=0)
    conversations_built: int = attrs.field(init=False, default=0)
    _conversations: collections.OrderedDict[str, LiveConversation] = attrs.field(
        init=False, factory=collections.OrderedDict
    )
    _quota_resume_at: float = attrs.field(init=False, default=0.0)  # epoch seconds, as last heard
    # Monotonic time of the last look.
    _quota_checked: float = attrs.field(init=False, default=-math.inf)

    @property
    def held(self) -> list[str]:
        """Conversation ids whose live SDK conversation this worker holds."""
        return list(self._conversations)

    @property
    def held_workflows(self) -> list[str]:
        """The workflow ids of the conversations this worker holds."""
        return [c.workflow_id for c in self._conversations.values()]

    async def play(self, task: TurnTask, progress: TurnProgress) -> TurnOutcome:
        """Play one attempt of a turn on a live conversation, reporting to ``progress``."""
        started = time.monotonic()
        log.info("turn %s attempt %d: starting", task.turn_id, task.attempt)
        conversation = await self._conversation_for(task)
        log.info(
            "turn %s attempt %d: conversation ready after %.3f s",
            task.turn_id,
            task.attempt,
            time.monotonic() - started,
        )
        agent = conversation.agent
        assert agent is not None
        conversation.busy = True
        conversation.turn = TurnContext(task)
        keys = TurnContext(task)
        try:
            quota_wait = await self._wait_for_quota()
            response = await agent.chat(parts_of(task.parts))
            structured: Any = None
            async with response:
                async for event in response.events():
                    if isinstance(event, TurnEnd):
                        structured = event.structured_output
                    key = (
                        keys.next_key(event.name, event.arguments)
                        if isinstance(event, ToolCall)
                        else ""
                    )
                    segment = segment_of(event, key)
                    if segment is not None:
                        progress.add(segment)
        except QuotaExceeded as exc:
            retry_after = exc.retry_after if exc.retry_after is not None else _DEFAULT_BACKOFF
            self._quota_resume_at = max(self._quota_resume_at, time.time() + retry_after)
            with trio.CancelScope(shield=True):
                with contextlib.suppress(Exception):
                    await self.host.run(self.workflows.record_quota_hit, retry_after)
                await self._discard(conversation)
            raise QuotaExceeded(str(exc), retry_after=retry_after) from exc
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._discard(conversation)
            raise
        conversation.busy = False
        conversation.turn = None
        conversation.lineage = next_lineage(task)
        conversation.last_used = time.monotonic()
        self.turns_played += 1
        elapsed = time.monotonic() - started
        log.info("turn %s attempt %d: done in %.3f s", task.turn_id, task.attempt, elapsed)
        stop = response.stop_reason
        return TurnOutcome(
            segments=progress.snapshot(),
            usage=usage_data(response.usage),
            stop_reason=stop.value if stop is not None else "end_turn",
            worker=self.own_queue,
            quota_wait=quota_wait,
            structured_output=json_safe(structured),
        )

    async def _wait_for_quota(self) -> float:
        """Wait out the backoff any worker recorded for our key; the seconds waited."""
        waited = 0.0
        while True:
            if time.monotonic() - self._quota_checked >= QUOTA_FRESH:
                status = await self.host.run(self.workflows.quota_status)
                self._quota_checked = time.monotonic()
                if status is not None:
                    self._quota_resume_at = max(self._quota_resume_at, status.resume_at)
            remaining = self._quota_resume_at - time.time()
            if remaining <= 0:
                await trio.lowlevel.checkpoint()
                return waited
            await trio.sleep(remaining)
            waited += remaining

    async def _conversation_for(self, task: TurnTask) -> LiveConversation:
        known = self._conversations.get(task.conversation_id)
        if known is not None:
            if known.lineage == task.lineage and not known.busy and known.agent is not None:
                self._conversations.move_to_end(task.conversation_id)
                return known
            await self._discard(known)
        snapshot: ConversationSnapshot = await self.host.run(
            self.workflows.snapshot, task.workflow_id
        )
        conversation = LiveConversation(task.conversation_id, task.workflow_id, task.lineage)
        config = self._config_for(conversation, snapshot, task)
        conversation.agent = await self.rt.create_agent(config)
        self.conversations_built += 1
        self._conversations[task.conversation_id] = conversation
        await self._evict(self.options.max_conversations)
        return conversation

    def _config_for(
        self, conversation: LiveConversation, snapshot: ConversationSnapshot, task: TurnTask
    ) -> AgentConfig:
        from agy_trio.core.serialization import structure
        from agy_trio.core.settings import AgentConfig

        settings = dict(snapshot.settings)
        for field in ("model", "base_url", "api_key", "conversation_id", "chat_timeout"):
            settings.pop(field, None)
        config: AgentConfig = structure(settings, AgentConfig)
        defaults = self.agent_defaults
        instructions = replay_instructions(
            config.system_instructions, snapshot.transcript[: task.history_length], task.shown
        )
        return config.replace(
            model=defaults.model,
            base_url=defaults.base_url,
            api_key=defaults.api_key,
            system_instructions=instructions,
            chat_timeout=max(task.turn_timeout, 0.001),
            tools=tuple(self._guarded(conversation, tool) for tool in config.tools),
        )

    def _guarded(self, conversation: LiveConversation, original: Tool) -> Tool:
        """``original`` wrapped so that each call runs at most once across attempts."""

        async def run_once(**arguments: Any) -> Any:
            context = conversation.turn
            call = functools.partial(original.function, **arguments)
            if context is None:
                return await run_callable(
                    call, in_thread=original.blocking, is_async=original.is_async
                )
            task = context.task
            key = context.next_key(original.name, arguments)
            request = ToolClaimRequest(task.turn_id, task.attempt, key)
            claim: ToolClaim = await self.host.run(
                self.workflows.claim_tool, conversation.workflow_id, request
            )
            if claim.state == "done" and claim.record is not None:
                if claim.record.error is not None:
                    raise ToolCallNotRepeated(claim.record.error)
                return claim.record.result
            if claim.state != "run":
                raise ToolCallNotRepeated(
                    f"tool {original.name} was started by an earlier attempt of this turn "
                    "whose worker stopped; it is not run again"
                )
            record = ToolRecord(key=key, name=original.name, arguments=json_safe(arguments))
            try:
                result = await run_callable(
                    call, in_thread=original.blocking, is_async=original.is_async
                )
            except Exception as exc:
                record.error = f"{type(exc).__name__}: {exc}"
                await self._report_tool(conversation, task, record)
                raise
            record.result = json_safe(result)
            await self._report_tool(conversation, task, record)
            return result

        return attrs.evolve(original, function=run_once, is_async=True, blocking=False)

    async def _report_tool(
        self, conversation: LiveConversation, task: TurnTask, record: ToolRecord
    ) -> None:
        """Tell the workflow how a tool call ended (shielded: the outcome must not be lost)."""
        with trio.CancelScope(shield=True):
            await self.host.run(
                self.workflows.tool_done,
                conversation.workflow_id,
                ToolDone(task.turn_id, task.attempt, record),
            )

    async def _discard(self, conversation: LiveConversation) -> None:
        """Drop a live conversation and the SDK state behind it."""
        if self._conversations.get(conversation.conversation_id) is conversation:
            del self._conversations[conversation.conversation_id]
        agent, conversation.agent = conversation.agent, None
        if agent is None:
            return
        with trio.move_on_after(self.options.shutdown_grace):
            try:
                await agent.delete()
            except AgyError as exc:
                log.info("dropping conversation %s: %s", conversation.conversation_id, exc)

    async def forget(self, conversation_id: str) -> None:
        """Drop a deleted conversation and its SDK state."""
        conversation = self._conversations.get(conversation_id)
        if conversation is not None:
            await self._discard(conversation)
        else:
            await trio.lowlevel.checkpoint()

    async def _evict(self, keep: int) -> None:
        idle = [c for c in self._conversations.values() if not c.busy]
        for conversation in idle[: max(len(self._conversations) - keep, 0)]:
            await self._discard(conversation)

    async def evict_idle(self) -> None:
        """Forever: drop live conversations unused for ``idle_timeout``."""
        period = max(min(self.options.idle_timeout / 4, 60.0), 0.05)
        while True:
            await trio.sleep(period)
            limit = time.monotonic() - self.options.idle_timeout
            for conversation in list(self._conversations.values()):
                if not conversation.busy and conversation.last_used < limit:
                    await self._discard(conversation)
