"""A deterministic, asyncio-only backend that follows a script.

It is the test and benchmark double of the real SDK: every agent lives on a
real asyncio host thread, keeps real conversation state (history, turn count,
usage, last response, compactions), and plays turns made of text chunks,
thoughts, tool calls (through the runtime's real tool and policy path),
pauses, hangs and faults (including a quota error with a Retry-After).

With no script, every chat gets a short deterministic answer that quotes the
prompt, streamed in several chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs
import trio

from agy_trio import errors
from agy_trio.adapters.aio_host import AioHost, AsyncioHost
from agy_trio.adapters.hosted import HostedSession
from agy_trio.adapters.stream_bridge import StreamBridge
from agy_trio.core import events
from agy_trio.core.backend import AgentServices
from agy_trio.core.content import Part, content_text
from agy_trio.core.validation import positive_int

if TYPE_CHECKING:
    from agy_trio.core.settings import AgentConfig

__all__ = [
    "CallTool",
    "Compact",
    "Fail",
    "Hang",
    "Pause",
    "Say",
    "ScriptedBackend",
    "ScriptedConnectionError",
    "ScriptedError",
    "ScriptedMaxTokensError",
    "ScriptedQuotaError",
    "ScriptedSafetyError",
    "ScriptedServerError",
    "Think",
    "Turn",
    "classify_error",
]


# ---------------------------------------------------------------------------- the script


@attrs.frozen
class Say:
    """Stream ``text`` as answer deltas, in ``chunks`` roughly equal pieces.

    Attributes:
        text: The answer text.
        chunks: How many deltas to split it into.
        delay: Seconds to wait (on the asyncio loop, real time) before each delta.
    """

    text: str
    chunks: int = 4
    delay: float = 0.0


@attrs.frozen
class Think:
    """Stream ``text`` as one thought delta."""

    text: str


@attrs.frozen
class CallTool:
    """Call a tool through the runtime (policies, hooks, then the tool itself)."""

    name: str
    arguments: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Pause:
    """Wait ``seconds`` on the asyncio loop (real time) before the next step."""

    seconds: float


@attrs.frozen
class Hang:
    """Never finish: the turn waits until it is cancelled or times out."""


@attrs.frozen
class Compact:
    """Record a compaction of the conversation at this point."""


_FAULT_KINDS = ("quota", "server", "safety", "max_tokens", "connection")


def _known_fault(_instance: object, _attribute: object, kind: str) -> None:
    if kind not in _FAULT_KINDS:
        raise errors.ConfigError(
            f"must be one of {', '.join(_FAULT_KINDS)}; got {kind!r}", field="kind"
        )


@attrs.frozen
class Fail:
    """Fail the turn here.

    Attributes:
        kind: ``"quota"``, ``"server"``, ``"safety"``, ``"max_tokens"`` or ``"connection"``.
        message: The error's text.
        retry_after: For ``"quota"``: the Retry-After the endpoint "sent".
        status: For ``"server"``: the HTTP status.
    """

    kind: str = attrs.field(validator=_known_fault)
    message: str = "scripted failure"
    retry_after: float | None = None
    status: int = 500


Step: TypeAlias = Say | Think | CallTool | Pause | Hang | Compact | Fail


def _as_steps(steps: Sequence[Step | str]) -> tuple[Step, ...]:
    # A plain string is shorthand for Say(string).
    return tuple(Say(step) if isinstance(step, str) else step for step in steps)


@attrs.frozen
class Turn:
    """One scripted turn: its steps, played in order, and the usage to report."""

    steps: tuple[Step, ...] = attrs.field(converter=_as_steps)
    usage: events.Usage | None = None


Responder: TypeAlias = Callable[[str, str, int], Turn]
"""Builds a turn from (agent id, prompt text, turn index)."""


# ---------------------------------------------------------------------------- errors


class ScriptedError(Exception):
    """Base of the faults the scripted backend raises on its asyncio thread."""


class ScriptedQuotaError(ScriptedError):
    """The scripted endpoint ran out of quota."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ScriptedServerError(ScriptedError):
    """The scripted endpoint answered with an HTTP error."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ScriptedSafetyError(ScriptedError):
    """The scripted model refused for safety reasons."""


class ScriptedMaxTokensError(ScriptedError):
    """The scripted model hit its output limit."""


class ScriptedConnectionError(ScriptedError):
    """The scripted connection to the endpoint was lost."""


def classify_error(exc: BaseException) -> BaseException:
    """Map a scripted fault to the agy_trio error hierarchy, by type.

    Only the scripted backend's own classes are recognised (``isinstance``), so
    a look-alike class that merely shares a name is treated as an unknown
    error and wrapped in :class:`BackendError`.
    """
    if isinstance(exc, errors.AgyError):
        return exc
    if isinstance(exc, ScriptedQuotaError):
        return errors.QuotaExceeded(str(exc), retry_after=exc.retry_after)
    if isinstance(exc, ScriptedServerError):
        return errors.BackendError(str(exc), status=exc.status)
    if isinstance(exc, ScriptedSafetyError):
        return errors.SafetyBlocked(str(exc))
    if isinstance(exc, ScriptedMaxTokensError):
        return errors.MaxTokensReached(str(exc))
    if isinstance(exc, ScriptedConnectionError):
        return errors.ChannelClosed(str(exc))
    if isinstance(exc, Exception):
        return errors.BackendError(f"{type(exc).__name__}: {exc}")
    return exc


def _fault(step: Fail) -> ScriptedError:
    if step.kind == "quota":
        return ScriptedQuotaError(step.message, step.retry_after)
    if step.kind == "server":
        return ScriptedServerError(step.message, step.status)
    if step.kind == "safety":
        return ScriptedSafetyError(step.message)
    if step.kind == "max_tokens":
        return ScriptedMaxTokensError(step.message)
    return ScriptedConnectionError(step.message)


def _split(text: str, chunks: int) -> list[str]:
    if chunks <= 1 or len(text) <= 1:
        return [text] if text else []
    size = -(-len(text) // chunks)
    return [text[i : i + size] for i in range(0, len(text), size)]


def default_turn(prompt: str) -> Turn:
    """The answer given when no script says otherwise: it quotes the prompt."""
    return Turn((Say(f"You said: {prompt}", chunks=4),))


# ---------------------------------------------------------------------------- agent state (asyncio)


class _AgentState:
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
class _AgentRuntime:
    """A live scripted agent: its state plus the machinery of its turns (asyncio side)."""

    backend: ScriptedBackend
    agent_id: str
    state: _AgentState
    services: AgentServices
    host: AsyncioHost
    turn_lock: asyncio.Lock = attrs.field(init=False, factory=asyncio.Lock)
    turn_tasks: set[asyncio.Task[None]] = attrs.field(init=False, factory=set)
    current: asyncio.Task[None] | None = attrs.field(init=False, default=None)
    idle: asyncio.Event = attrs.field(init=False, factory=asyncio.Event)
    closed: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        self.idle.set()  # no turn yet

    @property
    def conversation_id(self) -> str:
        return self.state.conversation_id

    # -- turns

    async def start_turn(
        self, parts: Sequence[Part], bridge: StreamBridge[events.ChatEvent] | None
    ) -> asyncio.Task[None]:
        """Start a turn; returns its task once the turn holds the agent's turn slot."""
        if self.closed:
            raise errors.ChannelClosed(f"agent {self.agent_id} is shut down")
        self.idle.clear()
        prompt = content_text(parts)
        index = self.backend._next_turn_index(self.agent_id)
        turn = self.backend._turn_for(self.agent_id, prompt, index)
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
        task.add_done_callback(functools.partial(self._turn_done, bridge))
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
            if not task.done():  # our caller gave up: the turn must not run on alone
                task.cancel()
                await asyncio.wait([task])
                raise
            raise errors.BackendError("the turn was cancelled before it started") from None
        return task

    def _turn_done(
        self, bridge: StreamBridge[events.ChatEvent] | None, task: asyncio.Task[None]
    ) -> None:
        if bridge is not None and not bridge.finished:
            # Cancelled before its first step: _play never ran to end the stream.
            bridge.put_nowait(events.TurnEnd(events.Usage(), events.StopReason.CANCELLED))
            bridge.finish()
        self.turn_tasks.discard(task)
        if not self.turn_tasks:
            self.idle.set()

    async def _play(
        self,
        prompt: str,
        turn: Turn,
        bridge: StreamBridge[events.ChatEvent] | None,
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
        bridge: StreamBridge[events.ChatEvent] | None,
        *,
        recorded: bool,
    ) -> None:
        state = self.state
        if not recorded:
            state.history.append(events.Message("user", prompt))
        observes_turns = self.services.observes_turns
        if observes_turns:
            await self.host.call_trio(self.services.turn_started)
        text: list[str] = []
        calls: list[events.ToolCall] = []
        output_words = 0
        for step in turn.steps:
            if type(step) is Say:
                for piece in _split(step.text, step.chunks):
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
                raise _fault(step)
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
        self.backend.cancel_calls += 1
        tasks = [t for t in (self.turn_tasks if turns is None else turns) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def close(self) -> None:
        self.closed = True
        await self.cancel_turns(None)

    # -- queries (asyncio side, so that every command really crosses the boundary)

    async def is_idle(self) -> bool:
        return self.idle.is_set()

    async def wait_for_idle(self) -> None:
        await self.idle.wait()

    async def history(self) -> list[events.Message]:
        return list(self.state.history)

    async def turn_count(self) -> int:
        return self.state.turns

    async def total_usage(self) -> events.Usage:
        return self.state.total

    async def last_turn_usage(self) -> events.Usage:
        return self.state.last

    async def clear_history(self) -> None:
        self.state.history.clear()
        self.state.last_response = None
        self.state.compactions.clear()

    async def compaction_indices(self) -> list[int]:
        return list(self.state.compactions)

    async def last_response(self) -> str | None:
        return self.state.last_response


# ---------------------------------------------------------------------------- Trio-facing objects


class _ScriptedSession(HostedSession):
    """AgentSession of a scripted agent: each method crosses to the host loop and back."""

    __slots__ = ("_scripted",)

    def __init__(self, agent: _AgentRuntime, high_water: int, batch_max: int) -> None:
        super().__init__(agent, classify=classify_error, high_water=high_water, batch_max=batch_max)
        self._scripted = agent

    async def end(self, how: str) -> None:
        """Stop the agent; ``"delete"`` drops its conversation, the others keep it resumable."""
        try:
            await self._scripted.host.run(self._scripted.close)
        except Exception as exc:
            raise classify_error(exc) from exc
        finally:
            self._scripted.backend._forget(self._scripted, keep_state=how != "delete")

    def try_shutdown(self) -> None:
        """Start stopping the agent; never blocks."""
        self._scripted.host.run_soon(self._scripted.close)
        self._scripted.backend._forget(self._scripted, keep_state=True)


class ScriptedBackend:
    """The deterministic asyncio-only backend.

    Args:
        script: The turns to play, in order, for *each* agent (every agent starts
            at the first turn); or a function building a turn from (agent id,
            prompt text, turn index). A plain string in the sequence is a turn
            that says it. Once a sequence runs out, or with no script, agents
            answer with :func:`default_turn`.
        stream_high_water: Events buffered per turn before the producer waits.
        stream_batch_max: Most events handed to Trio in one batch.
        host: Where the agents' asyncio code runs; a dedicated :class:`AioHost`
            thread by default, or a guest-mode host.
        shutdown_timeout: How long :meth:`aclose` waits for the host to stop.

    Attributes:
        cancel_calls: How many times the backend's own cancel was invoked.
    """

    name = "scripted"

    def __init__(
        self,
        script: Sequence[Turn | str] | Responder | None = None,
        *,
        stream_high_water: int = 1024,
        stream_batch_max: int = 256,
        host: AsyncioHost | None = None,
        shutdown_timeout: float = 10.0,
    ) -> None:
        self._shutdown_timeout = shutdown_timeout
        self._script = script
        self._high_water = positive_int(stream_high_water, "stream_high_water")
        self._batch_max = positive_int(stream_batch_max, "stream_batch_max")
        self.host: AsyncioHost = host if host is not None else AioHost("agy-trio-scripted-host")
        self._agents: dict[str, _AgentRuntime] = {}
        self._saved: dict[str, _AgentState] = {}
        self._turn_index: dict[str, int] = {}
        self._conversation_ids = itertools.count(1)
        self.cancel_calls = 0

    def _next_turn_index(self, agent_id: str) -> int:
        index = self._turn_index.get(agent_id, 0)
        self._turn_index[agent_id] = index + 1
        return index

    def _turn_for(self, agent_id: str, prompt: str, index: int) -> Turn:
        script = self._script
        if script is None:
            return default_turn(prompt)
        if callable(script):
            return script(agent_id, prompt, index)
        if index < len(script):
            turn = script[index]
            # A plain string is shorthand for a turn that says it.
            return Turn((Say(turn),)) if isinstance(turn, str) else turn
        return default_turn(prompt)

    def _forget(self, agent: _AgentRuntime, *, keep_state: bool) -> None:
        self._agents.pop(agent.agent_id, None)
        if keep_state:
            self._saved[agent.state.conversation_id] = agent.state
        else:
            self._saved.pop(agent.state.conversation_id, None)

    @property
    def saved_conversations(self) -> list[str]:
        """Conversation ids whose state is kept and can be resumed."""
        return list(self._saved)

    async def start(self, nursery: trio.Nursery) -> None:
        """Start the host thread."""
        await self.host.start(nursery)

    async def create_agent(
        self, agent_id: str, config: AgentConfig, services: AgentServices
    ) -> _ScriptedSession:
        """Create an agent, or resume the saved conversation ``config.conversation_id``."""
        conversation_id = config.conversation_id
        if conversation_id is not None:
            state = self._saved.pop(conversation_id, None)
            if state is None:
                await trio.lowlevel.checkpoint()
                raise errors.AgentNotFound(f"no saved conversation {conversation_id!r} to resume")
        else:
            state = _AgentState(f"scripted-{next(self._conversation_ids)}")
        agent = _AgentRuntime(self, agent_id, state, services, self.host)
        # Creation fails like every command once the host is gone.
        await trio.lowlevel.checkpoint()
        if not self.host.alive:
            raise errors.ChannelClosed(f"{self.host.name}: the asyncio host is not running")
        self._agents[agent_id] = agent
        return _ScriptedSession(agent, self._high_water, self._batch_max)

    async def aclose(self) -> None:
        """Close every agent, then stop and join the host thread."""
        agents = list(self._agents.values())
        if agents and self.host.alive:

            async def close_all() -> None:
                await asyncio.gather(*(a.close() for a in agents), return_exceptions=True)

            # Bounded: a loop stuck in a blocking call must not hang shutdown.
            with (
                trio.move_on_after(self._shutdown_timeout),
                contextlib.suppress(errors.ChannelClosed),
            ):
                await self.host.run(close_all)
        for agent in agents:
            self._forget(agent, keep_state=True)
        await self.host.aclose(self._shutdown_timeout)
