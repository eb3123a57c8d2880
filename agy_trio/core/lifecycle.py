"""Agent and turn life cycle: creating and ending agents, handing messages over, following turns.

A ``chat`` or ``send`` waits out its agent's quota backoff and the runtime's
start pacing (only when there is any), then goes to the agent's session; a
chat's answer becomes a :class:`~agy_trio.core.streaming.ChatResponse` whose
turn the runtime follows until its last event, under ``chat_timeout``.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import outcome
import trio
import trio.lowlevel

from agy_trio.core import commands as cmds
from agy_trio.core.agent import AgentHandle
from agy_trio.core.commands import Command
from agy_trio.core.contract import Ending
from agy_trio.core.dispatch import ToolDispatcher
from agy_trio.core.observe import Observer
from agy_trio.core.pacing import StartPacer
from agy_trio.core.policy import PolicySet
from agy_trio.core.policy_types import Approver
from agy_trio.core.runtime_state import HANDED_OFF, AgentRecord, RunningTurn, RuntimeState
from agy_trio.core.settings import AgentConfig
from agy_trio.core.streaming import ChatResponse, TurnStream
from agy_trio.core.wakeups import Wakeups
from agy_trio.errors import AgentNotFound, OperationTimeout

__all__ = ["AgentLifecycle", "agent_logger"]

log = logging.getLogger("agy_trio.runtime")


class _AgentLogAdapter(logging.LoggerAdapter[logging.Logger]):
    """Puts ``agent_id`` and ``command`` on every record."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def agent_logger(agent_id: str, command: str) -> logging.LoggerAdapter[logging.Logger]:
    """The runtime's logger, with ``agent_id`` and ``command`` on every record."""
    return _AgentLogAdapter(log, {"agent_id": agent_id, "command": command})


class AgentLifecycle:
    """Creates and ends the agents of one runtime and follows their turns.

    Args:
        state: The runtime's shared state.
        wakeups: The wake-ups each routed message counts as.
        handle_sink: What the agents' handles send their commands to (the runtime).
    """

    def __init__(self, state: RuntimeState, wakeups: Wakeups, handle_sink: Any) -> None:
        self._state = state
        self._wakeups = wakeups
        self._sink = handle_sink
        self._pacer = StartPacer(state.config.inter_agent_delay)
        # The PolicySet of the config last used to create an agent (most agents share one).
        self._policies_of: tuple[AgentConfig, PolicySet] | None = None
        self._next_agent_number = 0
        self._observed_fn = self._observed  # bound once: every agent's dispatcher asks it
        self._approver_fn = self._approving  # bound once, likewise

    def _observed(self) -> Observer | None:
        return self._state.observer

    def _approving(self) -> Approver | None:
        return self._state.approver

    # ------------------------------------------------------------------ agents

    async def create_agent(self, command: Command[Any], config: AgentConfig) -> str:
        """Create an agent in the backend and register it; return its id."""
        state = self._state
        self._next_agent_number += 1
        agent_id = f"{config.name or 'agent'}-{self._next_agent_number}"
        cached = self._policies_of
        if cached is not None and cached[0] is config:
            policies = cached[1]
        else:
            policies = config.policy_set
            self._policies_of = (config, policies)
        services = ToolDispatcher(
            agent_id,
            config.tools,
            policies,
            config.hooks,
            handler_timeout=state.config.handler_timeout,
            observe=self._observed_fn,
            approver=self._approver_fn,
        )
        session = await state.backend.create_agent(agent_id, config, services)
        handle = AgentHandle._create(
            agent_id,
            config,
            session.conversation_id,
            self._sink,
            services if config.hooks.pre_turn else None,
        )
        chat_timeout = config.chat_timeout
        if chat_timeout is None:
            chat_timeout = state.config.chat_timeout
        state.agents[agent_id] = AgentRecord(
            agent_id, config, session, handle, state.quota.state_for(config.quota_key), chat_timeout
        )
        if log.isEnabledFor(logging.DEBUG):  # building the adapter is not free
            agent_logger(agent_id, command.name).debug("agent created")
        return agent_id

    async def end_agent(self, command: Command[Any], record: AgentRecord, how: Ending) -> None:
        """End an agent (``how``: see :meth:`AgentSession.end`)."""
        # Unregister first: later commands get AgentNotFound instead of racing the shutdown.
        if self._state.agents.pop(record.agent_id, None) is None:
            await trio.lowlevel.checkpoint()
            raise AgentNotFound(f"{command.name}: no agent {record.agent_id!r}")
        self._wakeups.forget(record.agent_id)
        await record.session.end(how)
        if log.isEnabledFor(logging.DEBUG):
            agent_logger(record.agent_id, command.name).debug("agent ended (%s)", how)

    # ------------------------------------------------------------------ messages

    def route_message(self, record: AgentRecord, command: Command[Any]) -> None:
        """Route ``chat`` or ``send``: wait for quota and pacing only if there is any."""
        # An unread turn must not hold the agent: the new message supersedes the
        # reader's backpressure, and the old turn runs to its end.
        if record.turns:
            for turn in record.turns:
                if not turn.abandoned:  # an abandoned one is being cancelled
                    turn.stream.release()
        if record.quota.backing_off or (command.spec is cmds.CHAT and self._pacer.delay):
            self._state.spawn(command, self._wait_then_hand_off, record)
        else:
            self._hand_off(record, command)

    async def _wait_then_hand_off(self, command: Command[Any], record: AgentRecord) -> Any:
        # Waiting out a quota backoff or a pacing slot is not part of the turn:
        # only operation_timeout bounds it.
        if record.quota.backing_off:
            await record.quota.wait()
        if command.spec is cmds.CHAT and self._pacer.delay:
            await self._pacer.wait_turn()
        command.set_canceller(None)
        if record.agent_id not in self._state.agents:
            raise AgentNotFound(f"{command.name}: no agent {record.agent_id!r}")
        self._hand_off(record, command)
        return HANDED_OFF

    def _hand_off(self, record: AgentRecord, command: Command[Any]) -> None:
        self._wakeups.wake(record.agent_id)
        if command.spec is cmds.CHAT:
            # The turn's own clock starts now: chat_timeout bounds its start.
            deadlines = self._state.deadlines
            deadlines.untrack(command)
            deadlines.track(command, record.chat_timeout)
        record.session.submit(command)

    # ------------------------------------------------------------------ turns

    def start_turn(
        self,
        record: AgentRecord | None,
        command: Command[Any],
        stream: TurnStream,
        deadline: float,
    ) -> outcome.Outcome[ChatResponse]:
        """A chat's turn started: wrap its stream in a response and follow the turn."""
        state = self._state
        limit = command.limit
        if record is None or state.closing:
            # The agent ended (or the runtime closed) while the turn started.
            state.nursery.start_soon(cancel_stream, stream, state.config.shutdown_timeout)
            if record is None:
                return outcome.Error(AgentNotFound(f"chat: no agent {command.agent_id!r}"))
            return outcome.Error(state.closed_error())
        turn = RunningTurn(state, self, record, stream, limit)
        response = ChatResponse._create(
            record.agent_id,
            stream,
            cancel_timeout=state.config.shutdown_timeout,
            on_end=turn.settle,
            on_abandon=turn.abandon,
            counters=state.counters,
            response_schema=record.config.response_schema,
        )
        turn.response = weakref.ref(response)
        # The rest of the turn keeps the deadline its start had.
        state.deadlines.track(turn, limit, deadline)
        if record.turns is None:
            record.turns = set()
        record.turns.add(turn)
        state.turns.add(turn)
        state.turns_started += 1
        if state.observer is not None:
            state.observer.turn_started(turn, command, record.config)
        stream.add_done_callback(turn.ended)
        return outcome.Value(response)

    def turn_ended(self, turn: RunningTurn, error: BaseException | None) -> None:
        """The turn produced its last event: stop following it."""
        state = self._state
        if state.observer is not None:
            state.observer.turn_ended(turn, turn.stream.usage, error)
        state.deadlines.untrack(turn)
        state.turns.discard(turn)
        record = turn.record
        if record.turns is not None:
            record.turns.discard(turn)
            if not record.turns:
                record.turns = None
        if state.quiet is not None:
            state.check_quiet()

    def interrupt(self, turn: RunningTurn) -> None:
        """Cancel a turn whose response was abandoned (see ChatResponse)."""
        state = self._state
        if turn not in state.turns:
            return  # it ended meanwhile
        try:
            state.nursery.start_soon(cancel_stream, turn.stream, state.config.shutdown_timeout)
        except RuntimeError:
            # The runtime's nursery is closing: shutdown cancels every turn anyway.
            turn.abandoned = False
            turn.stream.release()

    def expire_turn(self, turn: RunningTurn) -> None:
        """The turn ran past ``chat_timeout``: fail its reader and cancel it."""
        config = self._state.config
        response = turn.reader()
        if response is not None:
            response._force_error(OperationTimeout("chat", turn.limit))
        agent_logger(turn.record.agent_id, "chat").warning("turn timed out after %g s", turn.limit)
        # The outer safety net bounds the backend's own cancel.
        limit = max(config.operation_timeout - turn.limit, config.shutdown_timeout)
        self._state.nursery.start_soon(cancel_stream, turn.stream, limit)


async def cancel_stream(stream: TurnStream, limit: float) -> None:
    """Cancel a turn through its backend, shielded, for at most ``limit`` seconds."""
    with trio.CancelScope(shield=True), trio.move_on_after(max(limit, 0.0)):
        await stream.cancel()
