"""An agent's Trio face on the client: :class:`TemporalSession` and its turns' streams.

Each command maps to one workflow operation: ``chat`` and ``send`` are the
``submit_turn`` update (answered once the turn holds the agent), the reading
commands are queries, ``cancel``, ``wait_for_idle``, ``clear_history`` and the
endings are updates. A streamed turn is followed by one asyncio task on the
backend's host: it polls the workflow's description for the running
activity's heartbeat details (what the turn has shown so far; nothing is
written to the workflow's history) and waits on the ``wait_turn`` update for
the exact final answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import outcome
import trio

from agy_trio.adapters.aio_host import AioHost
from agy_trio.adapters.stream_bridge import StreamBridge
from agy_trio.adapters.temporal import messages
from agy_trio.adapters.temporal.convert import event_of, message_of, parts_data, usage_of
from agy_trio.adapters.temporal.errors import classify, execute_update, rebuild_error
from agy_trio.adapters.temporal.segments import canonical, extends, new_segments
from agy_trio.core import commands as cmds
from agy_trio.core.commands import Command, WorkCancelled
from agy_trio.core.content import Part
from agy_trio.core.events import ChatEvent, StopReason, TurnEnd, Usage
from agy_trio.errors import AgentNotFound, AgyError, BackendError, ChannelClosed

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowHandle


__all__ = ["TemporalSession", "TemporalTurnStream"]

log = logging.getLogger("agy_trio.temporal")

_QUERIES = {
    "history",
    "turn_count",
    "total_usage",
    "last_turn_usage",
    "last_response",
    "compaction_indices",
    "is_idle",
}


class SessionOwner(Protocol):
    """What a session needs of the TemporalBackend it belongs to."""

    host: AioHost
    poll_interval: float
    shutdown_timeout: float
    stream_high_water: int
    stream_batch_max: int
    _sessions: dict[str, TemporalSession]

    @property
    def client(self) -> Client:
        """The connected Temporal client."""


class TemporalTurnStream:
    """A ``TurnStream`` fed by the asyncio task that follows the turn."""

    __slots__ = ("_bridge", "_done", "_session", "_usage", "turn_id")

    def __init__(self, session: TemporalSession, bridge: StreamBridge[ChatEvent]) -> None:
        self._session = session
        self._bridge = bridge
        self._done = trio.Event()
        self._usage: Usage | None = None
        self.turn_id = ""
        bridge.add_done_callback(lambda _error: self._done.set())

    async def receive_batch(self) -> Sequence[ChatEvent]:
        """The next batch of events (see :meth:`StreamBridge.receive_batch`)."""
        return await self._bridge.receive_batch()

    @property
    def usage(self) -> Usage | None:
        """The turn's usage from its final event, once it ended normally; else None."""
        return self._usage

    def add_done_callback(self, callback: Callable[[BaseException | None], object]) -> None:
        """Call ``callback(error)`` in Trio once the turn produced its last event."""
        self._bridge.add_done_callback(callback)

    def release(self) -> None:
        """Let the turn run to its end without a reader."""
        self._bridge.release()

    async def cancel(self) -> None:
        """Cancel the turn in its workflow (and so its activity); wait until the stream ends."""
        if self._bridge.finished or not self.turn_id:
            await trio.lowlevel.checkpoint()
            return
        session = self._session
        try:
            await session.backend.host.run(session._cancel_turns, [self.turn_id])
        except AgyError as exc:
            self._bridge.finish(ChannelClosed(f"the turn could not be cancelled: {exc}"))
            return
        except Exception as exc:
            self._bridge.finish(classify(exc))
            return
        await self._done.wait()


class TemporalSession:
    """An ``AgentSession`` whose agent is a conversation workflow."""

    def __init__(
        self,
        backend: SessionOwner,
        agent_id: str,
        conversation_id: str,
        handle: WorkflowHandle[Any, Any],
    ) -> None:
        self.backend = backend
        self.agent_id = agent_id
        self._conversation_id = conversation_id
        self.handle = handle
        self._followers: set[asyncio.Task[None]] = set()

    @property
    def conversation_id(self) -> str:
        """The conversation's id (its workflow's id is derived from it)."""
        return self._conversation_id

    @property
    def workflow_id(self) -> str:
        """The id of the workflow that holds the agent."""
        return messages.conversation_workflow_id(self._conversation_id)

    # ------------------------------------------------------------------ commands (Trio thread)

    def submit(self, command: Command[Any]) -> None:
        """Send the command to the workflow on the host loop; its answer completes it."""
        spec = command.spec
        host = self.backend.host
        fn: Callable[..., Coroutine[Any, Any, Any]]
        args: tuple[Any, ...]
        try:
            if spec is cmds.CHAT:
                bridge: StreamBridge[ChatEvent] = StreamBridge(
                    trio.lowlevel.current_trio_token(),
                    high_water=self.backend.stream_high_water,
                    batch_max=self.backend.stream_batch_max,
                )
                stream = TemporalTurnStream(self, bridge)
                call = host.submit(
                    self._start_turn,
                    (command.args[0], stream),
                    self._chat_started,
                    (command, stream),
                )
            else:
                if spec is cmds.SEND:
                    fn, args = self._start_turn, (command.args[0], None)
                elif spec is cmds.CANCEL:
                    fn, args = self._cancel_turns, (None,)
                elif spec is cmds.WAIT_FOR_IDLE:
                    fn, args = self._update, ("wait_for_idle",)
                elif spec is cmds.CLEAR_HISTORY:
                    fn, args = self._update, ("clear_history",)
                elif spec.name in _QUERIES:
                    fn, args = self._query, (spec.name,)
                else:
                    raise BackendError(f"the Temporal backend does not answer {spec.name}")
                call = host.submit(fn, args, self._answer, command)
        except AgyError as exc:
            command.complete(outcome.Error(exc))
            return
        command.set_canceller(call.cancel)

    def _answer(self, command: Command[Any], result: outcome.Outcome[Any]) -> None:
        if type(result) is outcome.Error and type(result.error) is not WorkCancelled:
            result = outcome.Error(classify(result.error))
        elif type(result) is outcome.Value and command.spec is cmds.SEND:
            result = outcome.Value(None)
        command.complete(result)

    def _chat_started(
        self, pair: tuple[Command[Any], TemporalTurnStream], result: outcome.Outcome[Any]
    ) -> None:
        command, stream = pair
        if type(result) is outcome.Value:
            result = outcome.Value(stream)
        self._answer(command, result)

    # ------------------------------------------------------------------ the host loop

    async def _start_turn(self, parts: Sequence[Part], stream: TemporalTurnStream | None) -> str:
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
        if stream is not None:
            stream.turn_id = turn_id
            task = asyncio.get_running_loop().create_task(self._follow(stream))
            self._followers.add(task)
            task.add_done_callback(self._followers.discard)
        return turn_id

    async def _follow(self, stream: TemporalTurnStream) -> None:
        """Feed a turn's stream: heartbeat details while it runs, then its end."""
        turn_id, bridge = stream.turn_id, stream._bridge
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
        usage = usage_of(status.usage)
        if reason is not StopReason.CANCELLED:
            stream._usage = usage  # read by Trio once the stream is done
        bridge.put_nowait(TurnEnd(usage, reason, status.structured_output))
        bridge.finish()

    async def _emit(
        self,
        bridge: StreamBridge[ChatEvent],
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

    async def _cancel_turns(self, turn_ids: list[str] | None) -> None:
        await execute_update(self.handle, "cancel_turns", turn_ids)

    async def _update(self, name: str) -> None:
        await execute_update(self.handle, name)

    async def _query(self, name: str) -> Any:
        from temporalio.common import QueryRejectCondition

        hints: dict[str, Any] = {
            "history": list[messages.MessageData],
            "total_usage": messages.UsageData,
            "last_turn_usage": messages.UsageData,
            "compaction_indices": list[int],
            "turn_count": int,
            "last_response": str | None,
            "is_idle": bool,
        }
        value = await self.handle.query(
            name, result_type=hints[name], reject_condition=QueryRejectCondition.NOT_OPEN
        )
        if name == "history":
            return [message_of(m) for m in value]
        if name in ("total_usage", "last_turn_usage"):
            return usage_of(value)
        return value

    async def _end_on_loop(self, how: str) -> None:
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

    # ------------------------------------------------------------------ endings (Trio thread)

    async def end(self, how: str) -> None:
        """Stop the agent.

        ``"shutdown"`` cancels its turns and ends its workflow (the conversation
        can be resumed by id), ``"disconnect"`` leaves the workflow and any
        running turn alone, ``"delete"`` terminates the workflow and removes it
        and its conversation from Temporal and from the worker that held it.
        """
        self.backend._sessions.pop(self.agent_id, None)
        with trio.move_on_after(self.backend.shutdown_timeout):
            try:
                await self.backend.host.run(self._end_on_loop, how)
            except ChannelClosed:
                if how == "delete":
                    raise

    def try_shutdown(self) -> None:
        """Start shutting the agent down without waiting; never raises."""
        self.backend._sessions.pop(self.agent_id, None)
        self.backend.host.run_soon(self._end_on_loop, "shutdown")


async def _shielded(awaitable: Coroutine[Any, Any, Any]) -> Any:
    """Await ``awaitable`` to its end even if we are cancelled meanwhile; None if it failed."""
    task = asyncio.ensure_future(awaitable)
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([task])
    if task.cancelled() or task.exception() is not None:
        return None
    return task.result()
