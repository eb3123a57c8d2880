"""The google-antigravity SDK as an agy_trio backend.

:class:`AntigravityBackend` hosts SDK agents on a small pool of asyncio host
threads and answers the runtime in Trio. Each agent is an SDK ``Agent`` (one
``localharness`` process) wrapped so that the SDK's known problems do not
reach the user:

* **Cancellation.** Cancelling the task that reads an SDK response does not
  stop the turn; only the SDK's own ``cancel()`` does. Every cancel path here
  (``TurnStream.cancel``, ``AgentSession.cancel``, a cancelled reader, an
  asyncio task cancelled at shutdown) calls it, and the SDK's
  ``AntigravityCancelledError`` (a subclass of ``asyncio.CancelledError``) is
  told apart from a cancellation of our own task, so the next turn starts at
  once.
* **Fatal errors.** After any HTTP error of the model endpoint the SDK session
  is dead (the next chat answers nothing, the one after hangs). The error is
  raised typed (:class:`~agy_trio.core.errors.QuotaExceeded` with the retry
  delay the endpoint stated, or :class:`~agy_trio.core.errors.BackendError`
  with the HTTP status), then the session is reopened in RESUME mode under the
  same conversation id, so the agent keeps its history and the next chat
  works. An opt-in :class:`RetryPolicy` turns a transient failure into a
  retry the caller never sees.
* **Safe defaults.** No built-in SDK tool unless ``AgentConfig.builtin_tools``
  names it; the harness's ``save_dir``, ``app_data_dir``, workspace and
  ``HOME`` live in a per-backend temporary folder (removed by :meth:`aclose`)
  unless the user chose paths. ``HOME`` is set for the harness process only,
  never for the Python process.
* **Processes.** Every harness is started without blocking the asyncio loop,
  tracked by PID, killed if its start-up is cancelled, killed when its agent
  or the backend closes, and (on Linux) killed by the kernel if Python dies.
  Its shutdown is waited for off the loop too (the SDK's ``Popen.wait`` would
  freeze every agent of the host for as long as the harness takes to exit).
* **The host loops stay free.** Everything synchronous the SDK would do on
  the loop for each start or stop and that can be done elsewhere is: the
  agent's configuration (pydantic models, a deep copy) is built in a worker
  thread, the ``importlib.metadata`` look-ups are done once per backend, and
  the worker threads exist before the first agent needs one.
* **State.** ``delete`` removes the conversation's database and transcripts;
  ``clear_history`` really clears (see :meth:`_AgentSession.clear_history`).

Custom tools, policy handlers and hooks run on the Trio side: the SDK calls an
asyncio wrapper that crosses to Trio through the host
(:meth:`~agy_trio.adapters.aio_host.AioHost.call_trio`), so the host loop stays
free for other agents while a tool works.

Importing this module does not import the SDK; constructing the backend does,
and tells the user how to install it when it is missing.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import importlib
import itertools
import logging
import math
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from agy_trio.adapters.aio_host import AioHost, HostStatistics
from agy_trio.adapters.antigravity_config import (
    Endpoint,
    HarnessFolders,
    SdkAgentSpec,
    choose_endpoint,
    config_classes,
    conversation_files,
    load_sdk,
    resolve_folders,
    sdk_agent_config,
    validate_conversation_id,
)
from agy_trio.adapters.antigravity_errors import (
    classify_error,
    describe,
    is_cancellation,
    is_fatal,
)
from agy_trio.adapters.antigravity_events import (
    ThoughtSplitter,
    normalize_arguments,
    refusal,
    sdk_content,
    stop_reason,
    tool_name,
    transcript,
    usage_of,
    without_thoughts,
)
from agy_trio.adapters.antigravity_harness import (
    HarnessLauncher,
    HarnessRegistry,
    SdkFacts,
    current_launcher,
    detach_process,
    host_executor,
    pdeathsig_prefix,
    sdk_facts,
    sweep_orphans,
)
from agy_trio.adapters.hosted import HostedSession
from agy_trio.adapters.stream_bridge import StreamBridge
from agy_trio.core.backend import AgentServices
from agy_trio.core.content import Part
from agy_trio.core.errors import (
    AgentNotFound,
    AgyError,
    BackendError,
    ChannelClosed,
    ConfigError,
    OperationTimeout,
    PolicyDenied,
    QuotaExceeded,
)
from agy_trio.core.events import (
    ChatEvent,
    Message,
    StopReason,
    TextDelta,
    ThoughtDelta,
    ToolCall,
    TurnEnd,
    Usage,
)

if TYPE_CHECKING:
    from agy_trio.core.config import AgentConfig
    from agy_trio.core.tools import Tool

__all__ = ["AntigravityBackend", "AntigravityStatistics", "RetryPolicy"]

log = logging.getLogger("agy_trio.antigravity")

_DEFAULT_HOST_THREADS = 2  # RuntimeConfig().host_threads
_backend_numbers = itertools.count(1)


# ---------------------------------------------------------------------------- options


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"must be a positive number, got {value!r}", field=attribute.name)
    if not math.isfinite(value):
        raise ConfigError(f"must be finite, got {value!r}", field=attribute.name)


def _at_least_one(_instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"must be an integer >= 1, got {value!r}", field=attribute.name)


@attrs.frozen
class RetryPolicy:
    """Retrying a turn whose model request failed transiently (opt-in).

    A retried turn resumes where it failed: the SDK session is reopened (its
    history kept), and the turn is sent again, so the caller sees one turn
    with one answer. If the failure came before the turn produced anything,
    the prompt is sent again (the model then sees it twice in a row, which
    :meth:`history` shows once); if it came after (text streamed, tools run),
    an empty continuation is sent so nothing is repeated.

    Attributes:
        attempts: Tries in all, the first included (1 disables retrying).
        initial_backoff: Seconds before the first retry.
        multiplier: Growth of the backoff from one retry to the next.
        max_backoff: Longest backoff, in seconds.
        max_retry_after: Longest delay an endpoint may ask for (by
            ``Retry-After`` in its error) and still be waited out; beyond it
            the error is raised at once for the runtime's quota backoff.
        statuses: HTTP statuses that count as transient.
    """

    attempts: int = attrs.field(default=3, validator=_at_least_one)
    initial_backoff: float = attrs.field(default=0.5, validator=_positive)
    multiplier: float = attrs.field(default=2.0, validator=_positive)
    max_backoff: float = attrs.field(default=30.0, validator=_positive)
    max_retry_after: float = attrs.field(default=60.0, validator=_positive)
    statuses: frozenset[int] = attrs.field(
        default=frozenset({429, 500, 502, 503, 504}), converter=frozenset
    )

    def delay(self, attempt: int, error: BaseException) -> float | None:
        """Seconds to wait before retrying after failed attempt number ``attempt`` (0-based).

        Returns:
            None when the error is not transient or no attempt is left.
        """
        if attempt + 1 >= self.attempts or not isinstance(error, BackendError):
            return None
        if error.status not in self.statuses:
            return None
        backoff = min(self.max_backoff, self.initial_backoff * self.multiplier**attempt)
        if isinstance(error, QuotaExceeded) and error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            backoff = max(backoff, error.retry_after)
        return backoff


@attrs.frozen
class AntigravityStatistics:
    """A snapshot of an :class:`AntigravityBackend`.

    Attributes:
        agents: Live agents.
        harness_pids: PIDs of the harness processes alive now.
        harnesses_started: Harness processes started so far (reopens included).
        reopens: SDK sessions reopened after a fatal error or a clear.
        retries: Turns retried under the :class:`RetryPolicy`.
        hosts: Each host thread, with the number of agents it carries.
    """

    agents: int
    harness_pids: tuple[int, ...]
    harnesses_started: int
    reopens: int
    retries: int
    hosts: tuple[tuple[HostStatistics, int], ...]


# ---------------------------------------------------------------------------- one turn (asyncio)


class _Turn:
    """One turn of one agent; lives on its host loop."""

    def __init__(self, content: list[Any], bridge: StreamBridge[ChatEvent] | None) -> None:
        self.content = content
        self.bridge = bridge
        self.started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None
        self.cancel_requested = False
        self.cancelled = asyncio.Event()  # set with cancel_requested, to cut waits short
        self.produced = False
        self.usage = Usage()
        # Ids of the SDK's tool-call chunks for our own tools, waiting for the
        # tool wrapper to pick them up (the SDK calls the tool without its id).
        self.pending_ids: dict[str, collections.deque[str | None]] = collections.defaultdict(
            collections.deque
        )
        self.tool_tasks: set[asyncio.Task[Any]] = set()
        # Set when the harness reports a truncated or blocked answer.
        self.refusal: AgyError | None = None

    async def emit(self, event: ChatEvent) -> None:
        self.produced = True
        if self.bridge is not None:
            await self.bridge.put(event)

    def emit_nowait(self, event: ChatEvent) -> None:
        # Tool outcomes come from the SDK's tool tasks, not from the turn's
        # pump: they skip backpressure so that the bridge keeps one producer
        # that may wait.
        self.produced = True
        if self.bridge is not None:
            self.bridge.put_nowait(event)

    def end(self, stop: StopReason) -> None:
        if self.bridge is not None:
            self.bridge.put_nowait(TurnEnd(self.usage, stop))
            self.bridge.finish()

    def fail(self, error: BaseException) -> None:
        if self.bridge is not None:
            self.bridge.finish(error)
        else:
            log.warning("a turn started by send() failed: %s", describe(error))


class _ConsumerGone(Exception):
    """The reader of a turn's stream went away; the turn is cancelled."""


class _Cancelled(Exception):
    """A turn cancelled before the SDK started it."""


class _StepPump:
    """Turns the SDK's steps for one attempt into stream events.

    It does what the SDK's ``receive_chunks`` does (text and thought deltas of
    the model's steps to the user, each tool call once) and two things it does
    not: inline ``<think>`` reasoning becomes thought deltas, and a system step
    saying the answer was truncated or blocked stops the turn with
    :class:`MaxTokensReached` or :class:`SafetyBlocked` (the harness would
    otherwise quietly ask the model again).
    """

    def __init__(self, agent: _SdkAgent, turn: _Turn) -> None:
        self.agent = agent
        self.turn = turn
        self.seen_calls: set[str] = set()
        self.splitter = ThoughtSplitter() if agent.endpoint is Endpoint.OPENAI_COMPATIBLE else None

    async def step(self, step: Any) -> None:
        t = load_sdk().types
        turn = self.turn
        if turn.refusal is not None:
            return  # the harness's retry after a refusal, until our halt lands
        if step.status == t.StepStatus.ERROR:
            if step.source == t.StepSource.SYSTEM and turn.refusal is None:
                reported = refusal(step.error or "")
                if reported is not None:
                    turn.refusal = reported
                    await self.agent._halt()
            return
        if step.source == t.StepSource.MODEL and step.target == t.StepTarget.USER:
            if step.thinking_delta:
                await turn.emit(ThoughtDelta(step.thinking_delta))
            if step.content_delta:
                await self.text(step.content_delta)
        for call in step.tool_calls:
            if call.id:
                if call.id in self.seen_calls:
                    continue
                self.seen_calls.add(call.id)
            name = tool_name(call.name)
            if name in self.agent.tools:
                # Our wrapper reports the call with its outcome once it ran.
                turn.pending_ids[name].append(call.id)
            else:
                await turn.emit(ToolCall(name, dict(call.args), call.id))

    async def text(self, text: str) -> None:
        if self.splitter is None:
            await self.turn.emit(TextDelta(text))
            return
        for is_thought, piece in self.splitter.feed(text):
            await self.turn.emit(ThoughtDelta(piece) if is_thought else TextDelta(piece))

    async def flush(self) -> None:
        if self.splitter is not None:
            for is_thought, piece in self.splitter.flush():
                await self.turn.emit(ThoughtDelta(piece) if is_thought else TextDelta(piece))


# ---------------------------------------------------------------------------- one agent (asyncio)


class _SdkAgent:
    """One SDK agent and the machinery around it.

    Touched only on its host loop (or by a worker thread the loop is waiting
    for), except for ``closed``, which Trio reads.
    """

    def __init__(
        self,
        backend: AntigravityBackend,
        host: AioHost,
        agent_id: str,
        config: AgentConfig,
        services: AgentServices,
        endpoint: Endpoint,
        folders: HarnessFolders | None,
        conversation_id: str,
    ) -> None:
        self.backend = backend
        self.host = host
        self.agent_id = agent_id
        self.config = config
        self.services = services
        self.endpoint = endpoint
        self.folders = folders
        self.conversation_id = conversation_id
        self.owner = f"{backend.tag}/{agent_id}"
        self.tools = {tool.name: tool for tool in services.tools}
        self.sdk_agent: Any = None
        self.conv: Any = None
        self.turn_lock: asyncio.Lock | None = None
        self.turns: set[_Turn] = set()
        self.current: _Turn | None = None
        self.idle: asyncio.Event | None = None
        self.recovery: asyncio.Task[None] | None = None
        self.close_task: asyncio.Task[None] | None = None
        self.dead: AgyError | None = None
        self.closed = False  # read from Trio
        self.outcomes: dict[str, ToolCall] = {}
        self.last_usage = Usage()
        self.usage_offset = Usage()
        self.sdk_tools = [self._sdk_tool(tool) for tool in services.tools]
        self.authorize = self._authorizer()

    # -- opening and closing the SDK agent

    def _loop_state(self) -> tuple[asyncio.Lock, asyncio.Event]:
        if self.turn_lock is None or self.idle is None:
            self.turn_lock = asyncio.Lock()
            self.idle = asyncio.Event()
            self.idle.set()
        return self.turn_lock, self.idle

    async def open(self, *, resume: bool) -> None:
        """Start an SDK agent (a harness) on this conversation: create it, or resume it."""
        self._loop_state()
        # Creating the folders, building the SDK's pydantic configuration and
        # the Agent (which deep copies it) are blocking or pure Python work
        # that takes milliseconds: off the loop.
        sdk_agent = await asyncio.get_running_loop().run_in_executor(
            self.backend.registry.executor, self._build_sdk_agent, resume
        )
        launcher = HarnessLauncher(
            self.backend.registry, self.owner, self.backend.prefix, self.backend.facts
        )
        token = current_launcher.set(launcher)
        try:
            await sdk_agent.__aenter__()
        except BaseException as exc:
            # The SDK's own clean-up skips cancellation and never reaps: make
            # sure no harness of this start-up survives, whatever happened.
            self.backend.registry.kill(self.owner)
            with contextlib.suppress(Exception):
                await self.backend.registry.release_async(self.owner)
            if isinstance(exc, asyncio.CancelledError) and not is_cancellation(exc):
                raise
            raise self._start_error(exc, resume=resume) from exc
        finally:
            current_launcher.reset(token)
        self.sdk_agent = sdk_agent
        self.conv = sdk_agent.conversation

    def _build_sdk_agent(self, resume: bool) -> Any:
        """The SDK ``Agent``, not yet started (blocking; runs in a worker thread)."""
        if self.folders is None:
            self.folders = resolve_folders(self.config, self.backend.root, self.endpoint)
        facts = self.backend.facts
        spec = SdkAgentSpec(
            config=self.config,
            endpoint=self.endpoint,
            folders=self.folders,
            conversation_id=self.conversation_id,
            resume=resume,
            tools=self.sdk_tools,
            authorize=self.authorize,
            owner=self.owner,
            harness_path=facts.binary_path if facts is not None else None,
        )
        return load_sdk().Agent(sdk_agent_config(spec))

    def _start_error(self, exc: BaseException, *, resume: bool) -> BaseException:
        message = str(exc)
        if resume and "not found" in message:
            return AgentNotFound(f"no saved conversation {self.conversation_id!r} to resume")
        if "already exists" in message:
            return ConfigError(
                f"conversation {self.conversation_id!r} already exists", field="conversation_id"
            )
        if isinstance(exc, ValueError):
            return ConfigError(f"the SDK rejected the agent configuration: {message}")
        if isinstance(exc, RuntimeError) and not isinstance(exc, AgyError):
            return BackendError(f"the SDK harness failed to start: {message}")
        return classify_error(exc)

    async def close_sdk(self) -> None:
        """Stop the SDK agent and its harness; never leaves the process behind.

        The SDK would wait for the harness with a blocking call (up to 180 s)
        on the loop, then join its stderr reader. The process is taken away
        from the SDK first (:func:`detach_process`), so that its shutdown does
        only the asynchronous part (end of session, WebSocket closed); then the
        harness's stdin is closed and the harness waited for in a worker
        thread, in the SDK's order, and killed if it has not exited within the
        backend's shutdown grace. Should the SDK's shutdown hang anyway, a
        timer thread kills the harness after the grace, which frees it.
        """
        sdk_agent, self.sdk_agent, self.conv = self.sdk_agent, None, None
        registry = self.backend.registry
        stderr_readers: list[threading.Thread] = []
        detached = False
        if sdk_agent is not None:
            try:
                _, reader = detach_process(sdk_agent.conversation.connection)
            except Exception as exc:  # not the SDK this was written for: let it wait
                log.debug("agent %s: harness left to the SDK's shutdown: %s", self.agent_id, exc)
            else:
                detached = True
                if reader is not None:
                    stderr_readers.append(reader)
            watchdog = threading.Timer(self.backend.shutdown_grace, registry.kill, (self.owner,))
            watchdog.daemon = True
            watchdog.start()
            try:
                await sdk_agent.__aexit__(None, None, None)
            except asyncio.CancelledError as exc:
                registry.kill(self.owner)
                if not is_cancellation(exc):
                    raise
            except Exception as exc:
                # E.g. "Harness process exited with code -9" after a crash.
                log.debug("agent %s: SDK shutdown reported %s", self.agent_id, describe(exc))
            finally:
                watchdog.cancel()
        if detached:
            await registry.retire_async(self.owner, self.backend.shutdown_grace, stderr_readers)
        else:
            registry.kill(self.owner)
            await registry.release_async(self.owner)

    async def recover(self, cause: BaseException) -> None:
        """Replace a dead SDK session by a resumed one; on failure the agent is dead."""
        self.backend.count("reopens")
        log.info("agent %s: reopening the SDK session after %s", self.agent_id, describe(cause))
        try:
            await self.close_sdk()
            await self.open(resume=True)
        except asyncio.CancelledError:
            self.dead = ChannelClosed(f"agent {self.agent_id}: reopening was interrupted")
            raise
        except Exception as exc:
            self.dead = ChannelClosed(
                f"agent {self.agent_id}: the SDK session failed ({describe(cause)}) "
                f"and could not be reopened ({describe(exc)})"
            )
            log.error("%s", self.dead)

    def start_recovery(self, cause: BaseException) -> None:
        # A task of its own: a turn cancelled meanwhile must not interrupt it.
        if self.recovery is None or self.recovery.done():
            self.recovery = asyncio.get_running_loop().create_task(self.recover(cause))

    async def ready(self) -> Any:
        """Wait for a reopen in progress; return the live conversation.

        Raises:
            ChannelClosed: The agent is shut down or could not be reopened.
        """
        if self.recovery is not None and not self.recovery.done():
            await asyncio.shield(self.recovery)
        if self.dead is not None:
            raise self.dead
        if self.closed or self.conv is None:
            raise ChannelClosed(f"agent {self.agent_id} is shut down")
        return self.conv

    async def close(self) -> None:
        """Stop every turn and the harness (idempotent; concurrent callers share one close)."""
        if self.close_task is None:
            self.closed = True
            self.close_task = asyncio.get_running_loop().create_task(self._close())
        await asyncio.shield(self.close_task)

    async def _close(self) -> None:
        try:
            await self.cancel_turns(None)
            if self.recovery is not None:
                with contextlib.suppress(BaseException):
                    await self.recovery
            await self.close_sdk()
        finally:
            self.host.wake_trio(self.backend._forget, self)

    def remove_files(self) -> None:
        """Delete what the harness saved for this conversation (blocking file work)."""
        if self.folders is None:
            return  # never started: nothing saved
        for path in conversation_files(self.folders, self.conversation_id):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    async def delete(self) -> None:
        await self.close()
        await asyncio.get_running_loop().run_in_executor(
            self.backend.registry.executor, self.remove_files
        )

    async def clear_history(self) -> None:
        """Forget the conversation: a fresh SDK conversation under the same id."""
        lock, _ = self._loop_state()
        await self.cancel_turns(None)
        async with lock:
            await self.ready()
            self.usage_offset = self.usage_offset + usage_of(self.conv.total_usage)
            await self.close_sdk()
            await asyncio.get_running_loop().run_in_executor(
                self.backend.registry.executor, self.remove_files
            )
            self.outcomes.clear()
            self.last_usage = Usage()
            try:
                await self.open(resume=False)
            except Exception as exc:
                self.dead = ChannelClosed(
                    f"agent {self.agent_id}: could not start a fresh conversation: {exc}"
                )
                raise self.dead from exc

    # -- tools and policies (called by the SDK on this loop)

    def _sdk_tool(self, tool: Tool) -> Any:
        tool_runner = importlib.import_module("google.antigravity.tools.tool_runner")

        async def invoke(**arguments: Any) -> Any:
            return await self._run_tool(tool, arguments)

        invoke.__name__ = tool.name
        invoke.__qualname__ = tool.name
        invoke.__doc__ = tool.description
        return tool_runner.ToolWithSchema(invoke, tool.parameters)

    async def _run_tool(self, tool: Tool, raw_arguments: Mapping[str, Any]) -> Any:
        turn = self.current
        arguments = normalize_arguments(tool, raw_arguments)
        call_id: str | None = None
        task = asyncio.current_task()
        if turn is not None:
            ids = turn.pending_ids.get(tool.name)
            if ids:
                call_id = ids.popleft()
            if task is not None:
                turn.tool_tasks.add(task)
        try:
            result = await self.host.call_trio(self.services.call_tool, tool.name, arguments)
        except PolicyDenied as exc:
            self._record(
                turn, ToolCall(tool.name, arguments, call_id, error=f"denied: {exc.reason}")
            )
            # Raised to the SDK, which reports the tool as failed to the model.
            raise PermissionError(f"tool {tool.name!r} denied by policy: {exc.reason}") from None
        except Exception as exc:
            self._record(turn, ToolCall(tool.name, arguments, call_id, error=describe(exc)))
            raise
        finally:
            if turn is not None and task is not None:
                turn.tool_tasks.discard(task)
        self._record(turn, ToolCall(tool.name, arguments, call_id, result=result))
        return result

    def _record(self, turn: _Turn | None, call: ToolCall) -> None:
        if call.call_id:
            self.outcomes[call.call_id] = call
        if turn is not None:
            turn.emit_nowait(call)

    def _authorizer(self) -> Callable[..., Any]:
        """The SDK ``ask_user`` handler for built-in tools: the runtime's policies decide.

        A plain function, not a bound method: the SDK deep-copies its config,
        policies included, and a bound method would drag this object (and its
        locks) into the copy.
        """
        host, services = self.host, self.services

        async def authorize(tool_call: Any, reason: str = "") -> bool:
            del reason
            allowed = await host.call_trio(
                services.authorize, tool_name(tool_call.name), dict(tool_call.args)
            )
            return bool(allowed)

        return authorize

    # -- turns

    async def start_turn(
        self, parts: Sequence[Part], bridge: StreamBridge[ChatEvent] | None
    ) -> _Turn:
        """Queue a turn; return once it holds the agent's turn slot."""
        _, idle = self._loop_state()
        if self.closed:
            raise ChannelClosed(f"agent {self.agent_id} is shut down")
        if self.dead is not None:
            raise self.dead
        turn = _Turn(sdk_content(parts), bridge)
        task = asyncio.get_running_loop().create_task(self._run_turn(turn))
        turn.task = task
        self.turns.add(turn)
        idle.clear()
        task.add_done_callback(lambda _: self._turn_done(turn))
        try:
            await asyncio.shield(turn.started)
        except asyncio.CancelledError:
            if not task.done():  # our caller gave up: the turn must not run on alone
                await self.cancel_turns([turn])
            raise
        return turn

    def _turn_done(self, turn: _Turn) -> None:
        self.turns.discard(turn)
        if not self.turns and self.idle is not None:
            self.idle.set()

    async def _run_turn(self, turn: _Turn) -> None:
        lock, _ = self._loop_state()
        try:
            async with lock:
                if not turn.started.done():
                    turn.started.set_result(None)
                self.current = turn
                try:
                    await self._play(turn)
                finally:
                    self.current = None
        except asyncio.CancelledError:
            if not turn.started.done():
                turn.started.cancel()
            turn.end(StopReason.CANCELLED)
            raise
        except BaseException as exc:
            if not turn.started.done():
                turn.started.set_exception(exc)
            raise

    async def _play(self, turn: _Turn) -> None:
        hooks_ran = False
        try:
            await self.ready()
            # Each hook call is a round trip into Trio: skip both when no hook listens.
            if getattr(self.services, "observes_turns", True):
                await self.host.call_trio(self.services.turn_started)
                hooks_ran = True
            stop = await self._attempts(turn)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # Our own task is being cancelled (a caller gave up, shutdown):
                # the SDK keeps running the turn unless told to stop.
                await self._halt()
                raise
            # The SDK's AntigravityCancelledError: the turn was halted, on
            # request or because the model's answer was refused or truncated.
            await self._turn_ended(hooks_ran)
            if turn.refusal is not None:
                turn.fail(turn.refusal)
            else:
                turn.end(StopReason.CANCELLED)
            return
        except BaseException as exc:
            error = classify_error(exc)
            if (
                turn.refusal is not None
                or turn.cancel_requested
                or isinstance(exc, _ConsumerGone | _Cancelled)
            ):
                await self._halt()
                await self._turn_ended(hooks_ran)
                if turn.refusal is not None:
                    turn.fail(turn.refusal)
                else:
                    turn.end(StopReason.CANCELLED)
                if isinstance(error, ChannelClosed):  # the harness died meanwhile
                    self.start_recovery(exc)
                return
            await self._turn_ended(hooks_ran)
            turn.fail(error)
            if is_fatal(exc):
                self.start_recovery(exc)
                # Hold the turn slot until the session is usable again, so the
                # next turn never meets the dead one.
                with contextlib.suppress(Exception):
                    await self.ready()
            if not isinstance(exc, Exception):
                raise
            return
        self.last_usage = turn.usage
        await self._turn_ended(hooks_ran)
        turn.end(stop)

    async def _turn_ended(self, hooks_ran: bool) -> None:
        if hooks_ran:
            try:
                await self.host.call_trio(self.services.turn_ended)
            except Exception as exc:
                log.warning("agent %s: turn-end hooks failed: %s", self.agent_id, describe(exc))

    async def _halt(self) -> None:
        """Tell the SDK to stop the current turn (harmless when it is idle)."""
        conv = self.conv
        if conv is None:
            return
        try:
            await asyncio.wait_for(conv.cancel(), self.backend.cancel_grace)
        except asyncio.CancelledError as exc:
            if not is_cancellation(exc):
                raise
        except Exception as exc:
            log.debug("agent %s: SDK cancel failed: %s", self.agent_id, describe(exc))

    async def _attempts(self, turn: _Turn) -> StopReason:
        content: list[Any] | None = turn.content
        retry = self.backend.retry
        attempt = 0
        while True:
            try:
                return await self._attempt(turn, content)
            except Exception as exc:
                if turn.cancel_requested or retry is None:
                    raise
                delay = retry.delay(attempt, classify_error(exc))
                if delay is None or not is_fatal(exc):
                    raise
                log.info(
                    "agent %s: retrying in %.2f s after %s", self.agent_id, delay, describe(exc)
                )
                self.backend.count("retries")
                self.start_recovery(exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(turn.cancelled.wait(), delay)
                await self.ready()
                attempt += 1
                # Nothing produced yet: ask again. Otherwise continue from the
                # saved history (tool results included) without repeating it.
                content = None if turn.produced else turn.content

    async def _attempt(self, turn: _Turn, content: list[Any] | None) -> StopReason:
        conv = await self.ready()
        if turn.cancel_requested:
            raise _Cancelled("the turn was cancelled before it reached the SDK")
        # Steps rather than the SDK's ChatResponse chunks: the chunks hide the
        # system steps that report a truncated or refused answer.
        await conv.send(content)
        if turn.cancel_requested:
            # Cancelled while the prompt was being sent: the SDK's earlier halt
            # (if any) concerned no turn, so halt this one now.
            await self._halt()
        pump = _StepPump(self, turn)
        try:
            async for step in conv.receive_steps():
                await pump.step(step)
            await pump.flush()
        except ChannelClosed as exc:
            raise _ConsumerGone(str(exc)) from None
        turn.usage = usage_of(conv.last_turn_usage)
        return stop_reason(conv._last_turn_stop_reason)

    async def cancel_turns(self, turns: Sequence[_Turn] | None) -> None:
        """The backend's own cancel: stop ``turns`` (default: all) and wait until they are over.

        The current turn is halted through the SDK (which is what really stops
        the harness); turns still queued are simply cancelled. A turn that has
        not ended within the cancel grace has its task cancelled.
        """
        targets = [t for t in (self.turns if turns is None else turns) if t.task is not None]
        pending = [t for t in targets if t.task is not None and not t.task.done()]
        if not pending:
            return
        for turn in pending:
            turn.cancel_requested = True
            turn.cancelled.set()
        current = self.current
        for turn in pending:
            if turn is current:
                for tool_task in list(turn.tool_tasks):
                    tool_task.cancel()
                await self._halt()
            elif turn.task is not None:
                turn.task.cancel()
        tasks = {t.task for t in pending if t.task is not None}
        _, stuck = await asyncio.wait(tasks, timeout=self.backend.cancel_grace)
        for task in stuck:
            task.cancel()
        if stuck:
            await asyncio.wait(stuck)

    # -- queries

    async def is_idle(self) -> bool:
        _, idle = self._loop_state()
        return idle.is_set()

    async def wait_for_idle(self) -> None:
        _, idle = self._loop_state()
        await idle.wait()
        if self.recovery is not None and not self.recovery.done():
            await asyncio.shield(self.recovery)

    async def transcript(self) -> tuple[list[Message], list[int], int]:
        conv = await self.ready()
        return transcript(conv.history, self.outcomes)

    async def history(self) -> list[Message]:
        messages, _, _ = await self.transcript()
        return messages

    async def turn_count(self) -> int:
        _, _, completed = await self.transcript()
        return completed

    async def compaction_indices(self) -> list[int]:
        _, compactions, _ = await self.transcript()
        return compactions

    async def total_usage(self) -> Usage:
        conv = await self.ready()
        return self.usage_offset + usage_of(conv.total_usage)

    async def last_turn_usage(self) -> Usage:
        return self.last_usage

    async def last_response(self) -> str | None:
        conv = await self.ready()
        text = without_thoughts(conv.last_response)
        return text or None


# ---------------------------------------------------------------------------- Trio-facing objects


class _AgentSession(HostedSession):
    """The Trio side of one agent (an :class:`~agy_trio.core.backend.AgentSession`)."""

    def __init__(self, agent: _SdkAgent) -> None:
        backend = agent.backend
        super().__init__(
            agent,
            classify=classify_error,
            high_water=backend.stream_high_water,
            batch_max=backend.stream_batch_max,
        )
        self._sdk_agent = agent

    async def end(self, how: str) -> None:
        """Stop the agent and its harness process.

        ``"delete"`` also deletes its conversation's saved state; ``"disconnect"``
        and ``"shutdown"`` keep it for a resume by conversation id (with the
        backend's default folders the state lasts until the backend closes; set
        ``AgentConfig.save_dir`` to keep it longer).
        """
        agent = self._sdk_agent
        if not agent.host.alive:
            await trio.lowlevel.checkpoint()
            agent.backend._forget(agent)
            return
        try:
            await agent.host.run(agent.delete if how == "delete" else agent.close)
        except Exception as exc:
            raise classify_error(exc) from exc

    def try_shutdown(self) -> None:
        """Start stopping the agent; never blocks."""
        self._sdk_agent.host.run_soon(self._sdk_agent.close)


# ---------------------------------------------------------------------------- the backend


class AntigravityBackend:
    """Agents of the google-antigravity SDK, hosted on a pool of asyncio threads.

    Args:
        host_threads: asyncio host threads; each agent lives on the one with
            the fewest agents. Defaults to ``RuntimeConfig().host_threads``.
        retry: Retry transient model-request failures (off by default).
        base_dir: Where the backend's temporary folder is created (the
            system's temporary folder by default). The folder holds the
            harnesses' ``HOME``, saved conversations, app data and workspace
            for every agent whose config does not choose them, and is removed
            by :meth:`aclose`.
        stream_high_water: Events buffered per turn before the SDK side waits.
        stream_batch_max: Most events handed to Trio at once.
        shutdown_grace: Seconds a harness gets to exit on its own before it is killed.
        cancel_grace: Seconds a cancelled turn gets to wind down before its task is cancelled.

    Raises:
        AntigravityNotInstalled: The SDK is not installed (a ConfigError and
            ImportError whose message says ``pip install 'agy-trio[antigravity]'``).
        ConfigError: An option is invalid.
    """

    name = "antigravity"

    def __init__(
        self,
        *,
        host_threads: int | None = None,
        retry: RetryPolicy | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        stream_high_water: int = 1024,
        stream_batch_max: int = 256,
        shutdown_grace: float = 5.0,
        cancel_grace: float = 2.0,
    ) -> None:
        load_sdk()
        threads = _DEFAULT_HOST_THREADS if host_threads is None else host_threads
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"must be an integer >= 1, got {threads!r}", field="host_threads")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigError(f"must be a RetryPolicy or None, got {retry!r}", field="retry")
        for field, value in (("shutdown_grace", shutdown_grace), ("cancel_grace", cancel_grace)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"must be a positive number, got {value!r}", field=field)
        self.retry = retry
        self.base_dir = os.fspath(base_dir) if base_dir is not None else None
        self.stream_high_water = stream_high_water
        self.stream_batch_max = stream_batch_max
        self.shutdown_grace = float(shutdown_grace)
        self.cancel_grace = float(cancel_grace)
        self.tag = f"agy-trio-{os.getpid()}-{next(_backend_numbers)}"
        self.prefix: tuple[str, ...] = ()
        self.facts: SdkFacts | None = None
        self.registry = HarnessRegistry()
        self.hosts = [AioHost(f"agy-trio-antigravity-{i}") for i in range(threads)]
        self._load = dict.fromkeys(range(threads), 0)
        self._agents: dict[int, tuple[_SdkAgent, int]] = {}
        self._root: Path | None = None
        self._started = False
        self._closed = False
        self._counters_lock = threading.Lock()
        self._counters = {"reopens": 0, "retries": 0}

    # -- life cycle

    async def start(self, nursery: trio.Nursery) -> None:
        """Start the host threads and create the backend's temporary folder."""
        if self._started:
            raise RuntimeError("the backend is already started")
        self._started = True
        base = self.base_dir
        self._root = Path(await trio.to_thread.run_sync(_make_root, base))
        # One-time work that would otherwise stall the host loops: probing
        # setpriv, building the SDK config classes (~90 ms, first agent only),
        # the SDK's importlib.metadata look-ups (every agent) and starting the
        # worker threads (the first agents).
        self.prefix, self.facts = await trio.to_thread.run_sync(_prepare, self.registry)
        for host in self.hosts:
            await host.start(nursery)
            executor = await trio.to_thread.run_sync(host_executor, host.name)
            await host.run(_adopt_executor, executor)

    @property
    def root(self) -> Path:
        """The backend's temporary folder (exists between :meth:`start` and :meth:`aclose`)."""
        if self._root is None:
            raise ChannelClosed("the backend is not started")
        return self._root

    async def create_agent(
        self, agent_id: str, config: AgentConfig, services: AgentServices
    ) -> _AgentSession:
        """Start an SDK agent; resume ``config.conversation_id`` when it is set.

        Raises:
            ConfigError: The config names no usable endpoint or an unknown built-in tool.
            AgentNotFound: There is no saved conversation ``config.conversation_id``.
            BackendError: The harness failed to start.
            ChannelClosed: The backend is closed.
        """
        if self._closed or self._root is None:
            await trio.lowlevel.checkpoint()
            raise ChannelClosed("the antigravity backend is closed")
        endpoint = choose_endpoint(config)
        if config.conversation_id is not None:
            conversation_id = validate_conversation_id(config.conversation_id)
            resume = True
        else:
            conversation_id = uuid.uuid4().hex
            resume = False
        index = min(self._load, key=lambda i: (self._load[i], i))
        host = self.hosts[index]
        agent = _SdkAgent(self, host, agent_id, config, services, endpoint, None, conversation_id)
        self._agents[id(agent)] = (agent, index)
        self._load[index] += 1
        try:
            await host.run(_open_agent, agent, resume)
        except BaseException as exc:
            self._forget(agent)
            if isinstance(exc, Exception):
                raise classify_error(exc) from exc
            raise
        return _AgentSession(agent)

    def _forget(self, agent: _SdkAgent) -> None:
        entry = self._agents.pop(id(agent), None)
        if entry is not None:
            self._load[entry[1]] -= 1

    async def aclose(self) -> None:
        """Close every agent, kill any harness left, stop the hosts, remove the temporary folder.

        Raises:
            ChannelClosed: A host thread crashed.
            OperationTimeout: A host thread did not exit in time.
        """
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        agents = [agent for agent, _ in self._agents.values()]
        budget = self.shutdown_grace + self.cancel_grace + 5.0
        with trio.move_on_after(budget):
            async with trio.open_nursery() as nursery:
                for agent in agents:
                    nursery.start_soon(self._close_quietly, agent)
        leftovers = await trio.to_thread.run_sync(self.registry.close)
        leftovers += sweep_orphans(self.tag)
        if leftovers:
            log.warning("killed %d harness process(es) left at close", len(leftovers))
        errors: list[BaseException] = []
        for host in self.hosts:
            try:
                await host.aclose()
            except (ChannelClosed, OperationTimeout) as exc:
                errors.append(exc)
        self._agents.clear()
        if self._root is not None:
            await trio.to_thread.run_sync(shutil.rmtree, self._root, True)
        if errors:
            raise errors[0]

    async def _close_quietly(self, agent: _SdkAgent) -> None:
        if not agent.host.alive:
            return
        try:
            await agent.host.run(agent.close)
        except Exception as exc:
            log.warning("agent %s: close failed: %s", agent.agent_id, describe(exc))

    # -- introspection

    def count(self, counter: str) -> None:
        """Add one to a statistics counter (from any host thread)."""
        with self._counters_lock:
            self._counters[counter] += 1

    def harness_pids(self) -> list[int]:
        """PIDs of the harness processes this backend has running now."""
        return self.registry.pids()

    def statistics(self) -> AntigravityStatistics:
        """A snapshot of the backend: agents, harness processes, reopens, retries, hosts."""
        return AntigravityStatistics(
            agents=len(self._agents),
            harness_pids=tuple(self.registry.pids()),
            harnesses_started=self.registry.started,
            reopens=self._counters["reopens"],
            retries=self._counters["retries"],
            hosts=tuple((h.statistics(), self._load[i]) for i, h in enumerate(self.hosts)),
        )


async def _open_agent(agent: _SdkAgent, resume: bool) -> None:
    await agent.open(resume=resume)


def _prepare(registry: HarnessRegistry) -> tuple[tuple[str, ...], SdkFacts]:
    config_classes()
    importlib.import_module("google.antigravity.connections.local.local_openai_connection")
    importlib.import_module("google.antigravity.tools.tool_runner")
    registry.prestart()
    return pdeathsig_prefix(), sdk_facts()


async def _adopt_executor(executor: concurrent.futures.ThreadPoolExecutor) -> None:
    # The loop shuts it down with itself (AioHost closes its default executor).
    asyncio.get_running_loop().set_default_executor(executor)


def _make_root(base: str | None) -> str:
    if base is not None:
        Path(base).mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix="agy-trio-antigravity-", dir=base)
