"""An agent whose state lives in a Temporal workflow: :class:`WorkflowAgent`, on the client's host.

It is the :class:`~agy_trio.core.contract.HostedAgent` of the Temporal
backend, served by the same :class:`~agy_trio.adapters.hosted.HostedSession`
as every backend's agent, and each command is one workflow operation behind
the method of its name: ``chat`` and ``send`` are the ``submit_turn`` update
(answered once the turn holds the agent), the reading commands are queries,
``cancel``, ``wait_for_idle``, ``clear_history`` and the endings are updates.
A streamed turn is followed by one asyncio task on the backend's host: it
polls the workflow's description for the running activity's heartbeat details
(what the turn has shown so far; nothing is written to the workflow's
history) and waits on the ``wait_turn`` update for the exact final answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from agy_trio.adapters.aio_host import AioHost
from agy_trio.adapters.hosted import HostedSession, HostedTurnStream
from agy_trio.adapters.temporal import messages
from agy_trio.adapters.temporal.convert import event_of, message_of, parts_data, usage_of
from agy_trio.adapters.temporal.errors import classify, execute_update, rebuild_error
from agy_trio.adapters.temporal.segments import canonical, extends, new_segments
from agy_trio.core.content import Part
from agy_trio.core.contract import Ending, TurnSink
from agy_trio.core.events import Message, StopReason, TurnEnd, Usage
from agy_trio.errors import AgentNotFound, BackendError, ChannelClosed

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowHandle


__all__ = ["TemporalSession", "TemporalTurnStream", "WorkflowAgent"]

log = logging.getLogger("agy_trio.temporal")

T = TypeVar("T")

TemporalTurnStream = HostedTurnStream
"""A Temporal turn's stream is the hosted one (the earlier name)."""


class SessionOwner(Protocol):
    """What an agent needs of the TemporalBackend it belongs to."""

    host: AioHost
    poll_interval: float
    shutdown_timeout: float
    stream_high_water: int
    stream_batch_max: int

    @property
    def client(self) -> Client:
        """The connected Temporal client."""

    def forget(self, agent_id: str) -> None:
        """The agent ended: stop tracking it."""


class WorkflowAgent:
    """A :class:`~agy_trio.core.contract.HostedAgent` whose state is a conversation workflow.

    Its coroutines run on the backend's host loop, where the Temporal client lives.
    """

    def __init__(
        self,
        backend: SessionOwner,
        agent_id: str,
        conversation_id: str,
        handle: WorkflowHandle[Any, Any],
    ) -> None:
        self.backend = backend
        self.agent_id = agent_id
        self.conversation_id = conversation_id
        self.handle = handle
        self._followers: set[asyncio.Task[None]] = set()

    @property
    def workflow_id(self) -> str:
        """The id of the workflow that holds the agent."""
        return messages.conversation_workflow_id(self.conversation_id)

    # ------------------------------------------------------------------ turns (updates)

    async def chat(self, content: Sequence[Part], sink: TurnSink) -> str:
        """Submit a turn and follow it into ``sink``; return its id once it holds the agent."""
        return await self._start_turn(content, sink)

    async def send(self, content: Sequence[Part]) -> None:
        """Submit a turn nobody follows."""
        await self._start_turn(content, None)

    async def cancel(self) -> None:
        """Cancel every turn of the agent in its workflow."""
        await execute_update(self.handle, "cancel_turns", None)

    async def cancel_turns(self, turns: Sequence[str]) -> None:
        """Cancel these turns in the workflow (and so their activities)."""
        await execute_update(self.handle, "cancel_turns", list(turns))

    async def wait_for_idle(self) -> None:
        """Return once the workflow has no turn running or queued."""
        await execute_update(self.handle, "wait_for_idle")

    async def clear_history(self) -> None:
        """Have the workflow forget the conversation."""
        await execute_update(self.handle, "clear_history")

    # ------------------------------------------------------------------ queries

    async def is_idle(self) -> bool:
        """Whether the workflow has no turn running or queued."""
        return await self._query("is_idle", bool)

    async def history(self) -> list[Message]:
        """The conversation the workflow keeps."""
        return [message_of(m) for m in await self._query("history", list[messages.MessageData])]

    async def turn_count(self) -> int:
        """Completed turns."""
        return await self._query("turn_count", int)

    async def total_usage(self) -> Usage:
        """Tokens used by every turn."""
        return usage_of(await self._query("total_usage", messages.UsageData))

    async def last_turn_usage(self) -> Usage:
        """Tokens used by the last turn."""
        return usage_of(await self._query("last_turn_usage", messages.UsageData))

    async def compaction_indices(self) -> list[int]:
        """Where the conversation was compacted."""
        return await self._query("compaction_indices", list[int])

    async def last_response(self) -> str | None:
        """The text of the last answer."""
        answer: str | None = await self._query("last_response", str | None)  # type: ignore[arg-type]
        return answer

    async def _query(self, name: str, result_type: type[T]) -> T:
        from temporalio.common import QueryRejectCondition

        value: T = await self.handle.query(
            name, result_type=result_type, reject_condition=QueryRejectCondition.NOT_OPEN
        )
        return value

    # ------------------------------------------------------------------ the host loop

    async def _start_turn(self, parts: Sequence[Part], sink: TurnSink | None) -> str:
        """Submit a turn; return its id once it holds the agent (asyncio)."""
        turn_id = uuid.uuid4().hex
        request = messages.TurnRequest(turn_id, parts_data(parts))
        try:
            status: messages.TurnStatus = await execute_update(
                self.handle, "submit_turn", request, result_type=messages.TurnStatus
            )
        except asyncio.CancelledError:
            # The caller gave up. The turn may have reached the workflow anyway:
            # withdraw it; if it has already started, the caller gets it.
            withdrawn = await _shielded(
                execute_update(self.handle, "withdraw_turn", turn_id, result_type=bool)
            )
            if withdrawn is not False:
                raise
            status = messages.TurnStatus(turn_id, "running")
        if status.state == "cancelled" and not status.segments and status.stop_reason is None:
            raise BackendError(
                "the chat was cancelled by agent.cancel() before its turn started; "
                "its prompt was not sent"
            )
        if sink is not None:
            task = asyncio.get_running_loop().create_task(self._follow(turn_id, sink))
            self._followers.add(task)
            task.add_done_callback(self._followers.discard)
        return turn_id

    async def _follow(self, turn_id: str, bridge: TurnSink) -> None:
        """Feed a turn's stream: heartbeat details while it runs, then its end."""
        emitted: list[messages.Segment] = []
        waiter = asyncio.ensure_future(
            execute_update(self.handle, "wait_turn", turn_id, result_type=messages.TurnStatus)
        )
        try:
            while not waiter.done():
                try:
                    shown = await self._shown(turn_id)
                except Exception as exc:
                    # Progress is best effort; only the turn's end is authoritative.
                    log.debug("turn %s: no progress this time: %r", turn_id, exc)
                    shown = None
                if shown:
                    emitted = await self._emit(bridge, emitted, shown)
                await asyncio.wait([waiter], timeout=self.backend.poll_interval)
            status = waiter.result()
            emitted = await self._emit(bridge, emitted, status.segments)
        except asyncio.CancelledError:
            waiter.cancel()
            bridge.finish(ChannelClosed("the Temporal backend closed while the turn ran"))
            raise
        except Exception as exc:
            waiter.cancel()
            bridge.finish(classify(exc))
            return
        if status.state == "failed" and status.error is not None:
            bridge.finish(rebuild_error(status.error))
            return
        try:
            reason = StopReason(status.stop_reason or "end_turn")
        except ValueError:
            reason = StopReason.END_TURN
        bridge.put_nowait(TurnEnd(usage_of(status.usage), reason, status.structured_output))
        bridge.finish()

    async def _emit(
        self,
        bridge: TurnSink,
        emitted: list[messages.Segment],
        shown: Sequence[messages.Segment],
    ) -> list[messages.Segment]:
        visible = canonical(shown)
        fresh = new_segments(emitted, visible)
        for segment in fresh:
            await bridge.put(event_of(segment))
        return visible if extends(visible, emitted) else emitted

    async def _shown(self, turn_id: str) -> list[messages.Segment] | None:
        """What the running attempt of a turn has shown, from its last heartbeat."""
        client = self.backend.client
        description = await self.handle.describe()
        prefix = f"{turn_id}."
        for pending in description.raw_description.pending_activities:
            if pending.activity_id.startswith(prefix) and pending.heartbeat_details.payloads:
                [segments] = await client.data_converter.decode(
                    pending.heartbeat_details.payloads, [list[messages.Segment]]
                )
                return list(segments)
        return None

    async def end(self, how: Ending) -> None:
        """End the agent within the backend's ``shutdown_timeout``.

        ``"shutdown"`` cancels its turns and ends its workflow (the conversation
        can be resumed by id), ``"disconnect"`` leaves the workflow and any
        running turn alone, ``"delete"`` terminates the workflow and removes it
        and its conversation from Temporal and from the worker that held it.
        """
        try:
            async with asyncio.timeout(self.backend.shutdown_timeout):
                await self._end(how)
        except TimeoutError:
            log.warning("agent %s: %s did not finish in time", self.agent_id, how)

    async def _end(self, how: Ending) -> None:
        for task in list(self._followers):
            if how == "disconnect":
                break
            task.cancel()
        if how == "disconnect":
            return
        if how == "delete":
            await self._delete()
            return
        try:
            await execute_update(self.handle, "end", "shutdown")
        except Exception as exc:
            error = classify(exc)
            if not isinstance(error, AgentNotFound):
                raise error from exc

    async def _delete(self) -> None:
        from temporalio.api.common.v1 import WorkflowExecution
        from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest

        client = self.backend.client
        with contextlib.suppress(Exception):
            await execute_update(self.handle, "end", "delete")
        with contextlib.suppress(Exception):
            await self.handle.terminate(reason="agy_trio: agent deleted")
        try:
            await client.workflow_service.delete_workflow_execution(
                DeleteWorkflowExecutionRequest(
                    namespace=client.namespace,
                    workflow_execution=WorkflowExecution(workflow_id=self.workflow_id),
                )
            )
        except Exception as exc:
            error = classify(exc)
            if not isinstance(error, AgentNotFound):
                raise error from exc


class TemporalSession(HostedSession):
    """The ``AgentSession`` of an agent that lives in a Temporal workflow."""

    __slots__ = ()

    def __init__(self, agent: WorkflowAgent) -> None:
        backend = agent.backend
        super().__init__(
            agent,
            backend.host,
            classify=classify,
            high_water=backend.stream_high_water,
            batch_max=backend.stream_batch_max,
            on_end=lambda _how: backend.forget(agent.agent_id),
        )


async def _shielded(awaitable: Coroutine[Any, Any, Any]) -> Any:
    """Await ``awaitable`` to its end even if we are cancelled meanwhile; None if it failed."""
    task = asyncio.ensure_future(awaitable)
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([task])
    if task.cancelled() or task.exception() is not None:
        return None
    return task.result()
