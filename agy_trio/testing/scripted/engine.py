"""The scripted agent's engine: its conversation and turns, played on the asyncio host loop.

Everything here runs on the host's asyncio loop; the Trio side reaches it only
through the host (see :mod:`agy_trio.testing.scripted.backend`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence

import attrs

from agy_trio import errors
from agy_trio.adapters.host_base import AsyncioHost
from agy_trio.core import events
from agy_trio.core.backend import AgentServices
from agy_trio.core.content import Part, content_text
from agy_trio.core.contract import Ending, TurnSink
from agy_trio.testing.scripted.faults import classify_error, fault_for
from agy_trio.testing.scripted.script import (
    CallTool,
    Compact,
    Fail,
    Hang,
    Pause,
    Say,
    Think,
    Turn,
    TurnBook,
    split_text,
)

__all__ = ["ConversationState", "ScriptedAgent"]


class ConversationState:
    """Everything one scripted agent knows. Touched only on the host loop."""

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id
        self.history: list[events.Message] = []
        self.turns = 0
        self.total = events.Usage()
        self.last = events.Usage()
        self.last_response: str | None = None
        self.compactions: list[int] = []


@attrs.define(eq=False)
class ScriptedAgent:
    """A live scripted agent: its state plus the machinery of its turns (asyncio side).

    Attributes:
        agent_id: The runtime's id of the agent.
        state: Its conversation.
        services: The runtime's services for it (tools, hooks), called into Trio.
        host: The host whose loop it lives on.
        turns: Where its turns come from.
        on_cancel: Called each time the backend's own cancel is invoked.
    """

    agent_id: str
    state: ConversationState
    services: AgentServices
    host: AsyncioHost
    turns: TurnBook
    on_cancel: Callable[[], object] = attrs.field(default=lambda: None)
    turn_lock: asyncio.Lock = attrs.field(init=False, factory=asyncio.Lock)
    turn_tasks: set[asyncio.Task[None]] = attrs.field(init=False, factory=set)
    current: asyncio.Task[None] | None = attrs.field(init=False, default=None)
    idle: asyncio.Event = attrs.field(init=False, factory=asyncio.Event)
    closed: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        self.idle.set()  # no turn yet

    @property
    def conversation_id(self) -> str:
        """The id under which the conversation is kept."""
        return self.state.conversation_id

    # -- turns

    async def start_turn(
        self, parts: Sequence[Part], bridge: TurnSink | None
    ) -> asyncio.Task[None]:
        """Start a turn; returns its task once the turn holds the agent's turn slot."""
        if self.closed:
            raise errors.ChannelClosed(f"agent {self.agent_id} is shut down")
        self.idle.clear()
        prompt = content_text(parts)
        turn = self.turns.next_turn(self.agent_id, prompt)
        loop = asyncio.get_running_loop()
        # With no other turn alive, the new task is the next to take the turn
        # slot (asyncio runs tasks in creation order), so there is nothing to
        # wait for; otherwise wait until it holds the slot.
        started = loop.create_future() if self.turn_tasks else None
        if started is None:
            # The turn is committed now: its prompt joins the conversation at
            # once, so a caller told the turn started always finds it there.
            self.state.history.append(events.Message("user", prompt))
        task = loop.create_task(self._play(prompt, turn, bridge, started))
        self.turn_tasks.add(task)
        task.add_done_callback(functools.partial(self._turn_done, bridge, started))
        if started is None:
            return task
        try:
            # Shielded: cancelling this task must not cancel ``started`` too (an
            # awaited future is cancelled with its waiter), or the turn would
            # take the slot afterwards and play a prompt its caller was told
            # did not go.
            await asyncio.shield(started)
        except asyncio.CancelledError:
            if started.done() and not started.cancelled():
                # The turn already holds the slot and its prompt is in the
                # conversation: it went, so the caller gets it.
                return task
            current = asyncio.current_task()
            if not task.done() or (current is not None and current.cancelling()):
                # Our caller gave up: the turn must not run on alone.
                task.cancel()
                await asyncio.wait([task])
                raise
            # Not our caller (that is handled above): the agent's own cancel.
            raise errors.BackendError(
                "the chat was cancelled by agent.cancel() while it waited for the turn "
                "before it; its prompt was not sent"
            ) from None
        return task

    def _turn_done(
        self,
        bridge: TurnSink | None,
        started: asyncio.Future[None] | None,
        task: asyncio.Task[None],
    ) -> None:
        # Cancelled before its first step (agent.cancel() reached a turn queued
        # a moment earlier): _play never ran to tell start_turn, whose caller
        # would wait for the slot forever, nor to end the stream.
        if started is not None and not started.done():
            started.cancel()
        if bridge is not None and not bridge.finished:
            bridge.put_nowait(events.TurnEnd(events.Usage(), events.StopReason.CANCELLED))
            bridge.finish()
        self.turn_tasks.discard(task)
        if not self.turn_tasks:
            self.idle.set()

    async def _play(
        self,
        prompt: str,
        turn: Turn,
        bridge: TurnSink | None,
        started: asyncio.Future[None] | None,
    ) -> None:
        try:
            async with self.turn_lock:
                self.current = asyncio.current_task()
                if started is not None and not started.done():
                    started.set_result(None)
                await self._play_locked(prompt, turn, bridge, recorded=started is None)
        except asyncio.CancelledError:
            if started is not None and not started.done():
                started.cancel()
            if bridge is not None:
                bridge.put_nowait(events.TurnEnd(events.Usage(), events.StopReason.CANCELLED))
                bridge.finish()
            raise
        except BaseException as exc:
            if started is not None and not started.done():
                started.set_exception(exc)
            if bridge is not None:
                bridge.finish(classify_error(exc))
            if not isinstance(exc, Exception):
                raise
        finally:
            self.current = None

    async def _play_locked(
        self,
        prompt: str,
        turn: Turn,
        bridge: TurnSink | None,
        *,
        recorded: bool,
    ) -> None:
        state = self.state
        # Where this turn's messages start: its prompt, recorded now or when it started.
        prompt_at = len(state.history) - 1 if recorded else len(state.history)
        if not recorded:
            state.history.append(events.Message("user", prompt))
        text: list[str] = []
        calls: list[events.ToolCall] = []
        try:
            await self._play_steps(prompt, turn, bridge, text, calls)
        except asyncio.CancelledError:
            _mark_interrupted(state.history, prompt_at, "".join(text), calls)
            raise

    async def _play_steps(
        self,
        prompt: str,
        turn: Turn,
        bridge: TurnSink | None,
        text: list[str],
        calls: list[events.ToolCall],
    ) -> None:
        state = self.state
        observes_turns = self.services.observes_turns
        if observes_turns:
            await self.host.call_trio(self.services.turn_started)
        output_words = 0
        for step in turn.steps:
            if type(step) is Say:
                for piece in split_text(step.text, step.chunks):
                    if step.delay:
                        await asyncio.sleep(step.delay)
                    text.append(piece)
                    if bridge is not None:
                        await bridge.put(events.TextDelta(piece))
                output_words += len(step.text.split())
            elif type(step) is Think:
                if bridge is not None:
                    await bridge.put(events.ThoughtDelta(step.text))
            elif type(step) is CallTool:
                call = await self._call_tool(step)
                calls.append(call)
                state.history.append(
                    events.Message("tool", repr(call.result) if call.error is None else call.error)
                )
                if bridge is not None:
                    await bridge.put(call)
            elif type(step) is Pause:
                await asyncio.sleep(step.seconds)
            elif type(step) is Hang:
                await asyncio.Event().wait()
            elif type(step) is Compact:
                state.compactions.append(len(state.history))
            elif type(step) is Fail:
                raise fault_for(step)
        answer = "".join(text)
        usage = turn.usage or events.Usage(
            input_tokens=len(prompt.split()), output_tokens=output_words
        )
        state.history.append(events.Message("assistant", answer, tuple(calls)))
        state.turns += 1
        state.last = usage
        state.total = state.total + usage
        state.last_response = answer
        if observes_turns:
            await self.host.call_trio(self.services.turn_ended)
        if bridge is not None:
            bridge.put_nowait(events.TurnEnd(usage, events.StopReason.END_TURN))
            bridge.finish()

    async def _call_tool(self, step: CallTool) -> events.ToolCall:
        arguments = dict(step.arguments)
        try:
            result = await self.host.call_trio(self.services.call_tool, step.name, arguments)
        except errors.PolicyDenied as exc:
            return events.ToolCall(step.name, arguments, error=f"denied: {exc.reason}")
        except Exception as exc:
            return events.ToolCall(step.name, arguments, error=f"{type(exc).__name__}: {exc}")
        return events.ToolCall(step.name, arguments, result=result)

    async def cancel_turns(self, turns: Sequence[asyncio.Task[None]] | None) -> None:
        """The backend's own cancel: stop ``turns`` (None: every turn) and wait for them."""
        self.on_cancel()
        tasks = [t for t in (self.turn_tasks if turns is None else turns) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    # -- the commands (HostedAgent)

    async def chat(self, content: Sequence[Part], sink: TurnSink) -> asyncio.Task[None]:
        """Start a turn streaming into ``sink``; return once it holds the turn slot."""
        return await self.start_turn(content, sink)

    async def send(self, content: Sequence[Part]) -> None:
        """Start a turn nobody reads; return once it holds the turn slot."""
        await self.start_turn(content, None)

    async def cancel(self) -> None:
        """Stop every turn, the active one and those queued behind it."""
        await self.cancel_turns(None)

    async def end(self, how: Ending) -> None:
        """Stop the agent; the backend keeps (or, for ``"delete"``, drops) its conversation."""
        await self.close()

    async def close(self) -> None:
        """Refuse new turns and stop the running ones."""
        self.closed = True
        await self.cancel_turns(None)

    # -- queries (asyncio side, so that every command really crosses the boundary)

    async def is_idle(self) -> bool:
        """Whether no turn is active."""
        return self.idle.is_set()

    async def wait_for_idle(self) -> None:
        """Return once no turn is active."""
        await self.idle.wait()

    async def history(self) -> list[events.Message]:
        """The conversation so far."""
        return list(self.state.history)

    async def turn_count(self) -> int:
        """How many turns completed."""
        return self.state.turns

    async def total_usage(self) -> events.Usage:
        """Token usage summed over all turns."""
        return self.state.total

    async def last_turn_usage(self) -> events.Usage:
        """Token usage of the most recent turn."""
        return self.state.last

    async def clear_history(self) -> None:
        """Forget the conversation so far."""
        self.state.history.clear()
        self.state.last_response = None
        self.state.compactions.clear()

    async def compaction_indices(self) -> list[int]:
        """History indices at which the conversation was compacted."""
        return list(self.state.compactions)

    async def last_response(self) -> str | None:
        """The text of the last answer."""
        return self.state.last_response

    async def sandbox_status(self) -> None:
        """No sandbox to report: this backend runs no commands."""
        return None


def _mark_interrupted(
    history: list[events.Message], start: int, answer: str, calls: list[events.ToolCall]
) -> None:
    """Keep what an interrupted turn produced, and mark its messages from ``start`` on."""
    if not 0 <= start < len(history) or history[start].role != "user":
        return  # the history was cleared meanwhile
    if answer or calls:
        history.append(events.Message("assistant", answer, tuple(calls)))
    history[start:] = [attrs.evolve(m, interrupted=True) for m in history[start:]]
