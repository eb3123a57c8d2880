"""Workers: the turns of conversation workflows, played on an agy_trio runtime.

A worker is a Trio program. Its agents live in an ordinary agy_trio runtime
(``agy-trio worker`` opens one on the Antigravity backend, exactly as
``agy-trio run`` does); the Temporal worker runs on an asyncio host thread
beside it (:class:`~agy_trio.adapters.aio_host.AioHost`), and each turn
activity crosses into Trio once, for the whole turn
(:meth:`~agy_trio.adapters.aio_host.AioHost.call_trio`).

A worker keeps the SDK conversations it played recently, each tagged with the
conversation's *lineage* (who last changed its transcript). A turn whose
lineage matches reuses the live conversation; any other turn rebuilds one:
the workflow's transcript is replayed into a fresh SDK conversation as
system instructions, and the prompt is sent as usual. Nothing but Temporal is
shared between workers, so a conversation moves to any worker on any
machine.

While a turn runs, what it has shown so far travels in the activity's
heartbeat details (several times a second, never written to the workflow's
history); the client reads them from the workflow's description. A tool call
asks the workflow first (:meth:`ConversationWorkflow.claim_tool`), so a turn
retried after its worker died never runs a call with side effects twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import math
import os
import shutil
import socket
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio
from temporalio import activity

from agy_trio.adapters.aio_host import AioHost, AsyncioHost
from agy_trio.adapters.temporal.conversations import (
    LiveConversation,
    TurnContext,
    TurnProgress,
    next_lineage,
    replay_instructions,
)
from agy_trio.adapters.temporal.convert import (
    parts_of,
    segment_of,
    usage_data,
)
from agy_trio.adapters.temporal.errors import execute_update, failure_of
from agy_trio.adapters.temporal.messages import (
    ACTIVITY_FORGET,
    ACTIVITY_RUN_TURN,
    QUOTA_WORKFLOW,
    ConversationSnapshot,
    QuotaHit,
    QuotaStatus,
    ToolClaim,
    ToolClaimRequest,
    ToolDone,
    ToolRecord,
    TurnFailure,
    TurnOutcome,
    TurnTask,
    quota_workflow_id,
    worker_queue,
)
from agy_trio.core.calling import run_callable
from agy_trio.core.events import ToolCall, TurnEnd, json_safe
from agy_trio.core.quota import key_fingerprint
from agy_trio.errors import AgyError, ConfigError, QuotaExceeded

if TYPE_CHECKING:
    from temporalio.client import Client
    from temporalio.worker import Worker

    from agy_trio.core.runtime import Runtime
    from agy_trio.core.settings import AgentConfig
    from agy_trio.core.tools import Tool

__all__ = [
    "QUOTA_FRESH",
    "ToolCallNotRepeated",
    "TurnService",
    "WorkerOptions",
    "claim_scratch_dir",
    "serve_worker",
]

log = logging.getLogger("agy_trio.temporal.worker")

_DEFAULT_BACKOFF = 5.0  # seconds, when a 429 came without Retry-After
# How long a worker trusts the last answer of the quota workflow: a 429 seen by
# another worker reaches this one at most this much later, and a turn does not
# pay a query round trip (5-25 ms here) when turns start in quick succession.
QUOTA_FRESH = 0.5
"""Seconds a worker trusts its last answer from the quota workflow (see above)."""


class ToolCallNotRepeated(AgyError):
    """A retried turn reached a tool call whose first run's outcome is unknown.

    The worker that ran it died before saying how it ended; running it again
    could repeat its side effects, so the model is told it failed instead.
    """


@attrs.frozen
class WorkerOptions:
    """How a worker connects and how much it holds.

    Attributes:
        target: The Temporal frontend, ``HOST:PORT``.
        namespace: The Temporal namespace.
        task_queue: The queue shared by every worker (and the clients).
        identity: The worker's name in Temporal; host name, PID and a random
            suffix by default.
        max_conversations: Live SDK conversations kept for their next turn.
        max_concurrent_turns: Turns played at once.
        heartbeat_interval: Seconds between heartbeats (progress) of a turn.
        idle_timeout: Seconds after which an unused live conversation is dropped.
        shutdown_grace: Seconds running turns get to finish when the worker
            stops; the rest are handed to other workers.
        sticky_workflow_timeout: Seconds a workflow task waits for the worker
            that has its workflow cached before any worker replays it. Part of
            the recovery time after a worker dies: Temporal's default is 10 s.
    """

    target: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "agy-trio"
    identity: str | None = None
    max_conversations: int = 32
    max_concurrent_turns: int = 100
    heartbeat_interval: float = 0.2
    idle_timeout: float = 600.0
    shutdown_grace: float = 10.0
    sticky_workflow_timeout: float = 1.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_scratch_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """A folder of this worker process's own for the SDK's files; clear those of dead workers.

    A worker killed with SIGKILL cannot remove the files its harnesses wrote
    (HOME, conversation databases); the next worker started on the machine
    with the same HOME does, here. Folders of live workers are left alone.

    Args:
        root: Where worker folders live; ``$XDG_CACHE_HOME/agy-trio/workers``
            (``~/.cache/agy-trio/workers``) by default.

    Returns:
        A new, empty folder named after this process.
    """
    if root is None:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(cache) / "agy-trio" / "workers"
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    for child in base.iterdir():
        _, _, rest = child.name.partition("pid-")
        pid_text = rest.split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _alive(int(pid_text)):
            shutil.rmtree(child, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"pid-{os.getpid()}-", dir=base))


def _workflow_runner() -> Any:
    """The workflow sandbox, with agy_trio's data modules passed through.

    The workflow module itself is re-imported for every run; the plain data
    modules it reads (and the parents of its package) are not.
    """
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(
            "agy_trio.core",
            "agy_trio.errors",
            "agy_trio.policy",
            "agy_trio._open",
            "agy_trio._lazy",
            "agy_trio.adapters.temporal.messages",
            "agy_trio.adapters.temporal.segments",
            "trio",
            "attrs",
            "cattrs",
            "outcome",
            "sniffio",
        )
    )


def _application_error(failure: TurnFailure, *, expected: bool = True) -> BaseException:
    """The activity failure that carries ``failure`` to the workflow.

    An expected failure (the model refused, quota, the worker leaves) is part
    of normal operation: Temporal logs it at debug level only.
    """
    from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

    category = ApplicationErrorCategory.BENIGN if expected else ApplicationErrorCategory.UNSPECIFIED
    return ApplicationError(
        failure.message, failure, type=failure.kind, non_retryable=True, category=category
    )


@attrs.define(eq=False)
class TurnService:
    """The turn activities of one worker, and the live conversations it holds.

    Args:
        rt: The runtime the agents live in (its backend plays the turns).
        agent_defaults: The endpoint every agent uses here (model, base_url,
            api_key); the agent's own settings supply the rest.
        options: Connection and capacity.
        host: The asyncio host the Temporal worker runs on.
    """

    rt: Runtime
    agent_defaults: AgentConfig
    options: WorkerOptions
    host: AsyncioHost
    identity: str = attrs.field(init=False)
    own_queue: str = attrs.field(init=False)
    quota_key: str = attrs.field(init=False)
    turns_played: int = attrs.field(init=False, default=0)
    conversations_built: int = attrs.field(init=False, default=0)
    _conversations: collections.OrderedDict[str, LiveConversation] = attrs.field(
        init=False, factory=collections.OrderedDict
    )
    _client: Client | None = attrs.field(init=False, default=None)
    _workers: list[Worker] = attrs.field(init=False, factory=list)
    _worker_tasks: list[asyncio.Task[None]] = attrs.field(init=False, factory=list)
    _quota_resume_at: float = attrs.field(init=False, default=0.0)  # epoch seconds, as last heard
    # Monotonic time of the last look.
    _quota_checked: float = attrs.field(init=False, default=-math.inf)

    @identity.default
    def _default_identity(self) -> str:
        return self.options.identity or (
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        )

    @own_queue.default
    def _own_queue(self) -> str:
        return worker_queue(self.options.task_queue, self.identity)

    @quota_key.default
    def _endpoint_fingerprint(self) -> str:
        endpoint_key = self.agent_defaults.api_key or self.agent_defaults.base_url or ""
        return key_fingerprint(endpoint_key) if endpoint_key else ""

    @property
    def client(self) -> Client:
        """The worker's Temporal client (host loop only)."""
        if self._client is None:
            raise RuntimeError("the worker is not connected")
        return self._client

    @property
    def held(self) -> list[str]:
        """Conversation ids whose live SDK conversation this worker holds."""
        return list(self._conversations)

    # ------------------------------------------------------------------ the host loop

    async def connect(self) -> None:
        """Connect to Temporal and start polling the shared queue and our own."""
        from temporalio.client import Client
        from temporalio.worker import Worker

        from agy_trio.adapters.temporal.quota_workflow import QuotaWorkflow
        from agy_trio.adapters.temporal.workflow import ConversationWorkflow

        options = self.options
        self._client = await Client.connect(
            options.target, namespace=options.namespace, identity=self.identity
        )
        common: dict[str, Any] = {
            "activities": [self.run_turn, self.forget],
            "max_concurrent_activities": options.max_concurrent_turns,
            "max_heartbeat_throttle_interval": timedelta(seconds=options.heartbeat_interval),
            "default_heartbeat_throttle_interval": timedelta(seconds=options.heartbeat_interval),
            "graceful_shutdown_timeout": timedelta(seconds=options.shutdown_grace),
            "identity": self.identity,
        }
        self._workers = [
            Worker(
                self._client,
                task_queue=options.task_queue,
                workflows=[ConversationWorkflow, QuotaWorkflow],
                workflow_runner=_workflow_runner(),
                sticky_queue_schedule_to_start_timeout=timedelta(
                    seconds=options.sticky_workflow_timeout
                ),
                **common,
            ),
            Worker(self._client, task_queue=self.own_queue, **common),
        ]
        loop = asyncio.get_running_loop()
        self._worker_tasks = [loop.create_task(worker.run()) for worker in self._workers]

    async def wait_stopped(self) -> None:
        """Return when a Temporal worker stops; raise what stopped it."""
        done, _pending = await asyncio.wait(self._worker_tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()

    async def drain(self, workflow_ids: list[str]) -> None:
        """Leave: send held conversations' next turns elsewhere, let running turns finish."""
        await self._release(workflow_ids)
        await asyncio.gather(
            *(worker.shutdown() for worker in self._workers), return_exceptions=True
        )
        for task in self._worker_tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self._worker_tasks, return_exceptions=True)

    async def _release(self, workflow_ids: list[str]) -> None:
        client = self.client
        for workflow_id in workflow_ids:
            with contextlib.suppress(Exception):
                await client.get_workflow_handle(workflow_id).signal("release", self.own_queue)

    async def _beat(self, progress: TurnProgress) -> None:
        version = -1
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.options.heartbeat_interval / 2)
            now = time.monotonic()
            if progress.version != version or now - last >= 1.0:
                version = progress.version
                last = now
                activity.heartbeat(progress.snapshot())

    @activity.defn(name=ACTIVITY_RUN_TURN)
    async def run_turn(self, task: TurnTask) -> TurnOutcome:
        """The turn activity: play one attempt of a turn on this worker."""
        progress = TurnProgress(task.shown)
        activity.heartbeat(progress.snapshot())
        beat = asyncio.get_running_loop().create_task(self._beat(progress))
        try:
            outcome: TurnOutcome = await self.host.call_trio(self._play, task, progress)
            return outcome
        except asyncio.CancelledError:
            if activity.is_worker_shutdown():
                raise _application_error(
                    TurnFailure(
                        "WorkerLeaving",
                        f"worker {self.identity} is shutting down",
                        segments=progress.snapshot(),
                    )
                ) from None
            raise
        except AgyError as exc:
            raise _application_error(failure_of(exc, progress.snapshot())) from exc
        except Exception as exc:
            log.exception("turn %s failed unexpectedly", task.turn_id)
            raise _application_error(
                TurnFailure(
                    "BackendError", f"{type(exc).__name__}: {exc}", segments=progress.snapshot()
                ),
                expected=False,
            ) from exc
        finally:
            beat.cancel()

    @activity.defn(name=ACTIVITY_FORGET)
    async def forget(self, conversation_id: str) -> None:
        """The forget activity: drop a deleted conversation and its SDK state."""
        await self.host.call_trio(self._forget, conversation_id)

    async def _snapshot(self, workflow_id: str) -> ConversationSnapshot:
        snapshot: ConversationSnapshot = await self.client.get_workflow_handle(workflow_id).query(
            "snapshot", result_type=ConversationSnapshot
        )
        return snapshot

    async def _claim(self, workflow_id: str, request: ToolClaimRequest) -> ToolClaim:
        from temporalio.client import WorkflowUpdateFailedError

        try:
            handle = self.client.get_workflow_handle(workflow_id)
            claim: ToolClaim = await execute_update(
                handle, "claim_tool", request, result_type=ToolClaim
            )
        except WorkflowUpdateFailedError as exc:
            raise ToolCallNotRepeated(f"this attempt of the turn is stale: {exc.cause}") from None
        return claim

    async def _tool_done(self, workflow_id: str, done: ToolDone) -> None:
        await self.client.get_workflow_handle(workflow_id).signal("tool_done", done)

    async def _quota_status(self) -> QuotaStatus | None:
        from temporalio.client import WorkflowQueryRejectedError
        from temporalio.common import QueryRejectCondition
        from temporalio.service import RPCError, RPCStatusCode

        handle = self.client.get_workflow_handle(quota_workflow_id(self.quota_key))
        try:
            status: QuotaStatus = await handle.query(
                "status", result_type=QuotaStatus, reject_condition=QueryRejectCondition.NOT_OPEN
            )
        except WorkflowQueryRejectedError:
            return None
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                return None
            raise
        return status

    async def _record_quota_hit(self, retry_after: float) -> None:
        from temporalio.common import WorkflowIDReusePolicy

        await self.client.start_workflow(
            QUOTA_WORKFLOW,
            QuotaStatus(),
            id=quota_workflow_id(self.quota_key),
            task_queue=self.options.task_queue,
            start_signal="record_hit",
            start_signal_args=[QuotaHit(retry_after, self.identity)],
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )

    # ------------------------------------------------------------------ Trio

    async def _play(self, task: TurnTask, progress: TurnProgress) -> TurnOutcome:
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
                    await self.host.run(self._record_quota_hit, retry_after)
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
                status = await self.host.run(self._quota_status)
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
        snapshot: ConversationSnapshot = await self.host.run(self._snapshot, task.workflow_id)
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
            claim: ToolClaim = await self.host.run(self._claim, conversation.workflow_id, request)
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
                with trio.CancelScope(shield=True):
                    await self.host.run(
                        self._tool_done,
                        conversation.workflow_id,
                        ToolDone(task.turn_id, task.attempt, record),
                    )
                raise
            record.result = json_safe(result)
            with trio.CancelScope(shield=True):
                await self.host.run(
                    self._tool_done,
                    conversation.workflow_id,
                    ToolDone(task.turn_id, task.attempt, record),
                )
            return result

        return attrs.evolve(original, function=run_once, is_async=True, blocking=False)

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

    async def _forget(self, conversation_id: str) -> None:
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


async def serve_worker(
    rt: Runtime,
    agent_defaults: AgentConfig,
    options: WorkerOptions,
    *,
    host: AsyncioHost | None = None,
    stop: trio.Event | None = None,
    task_status: trio.TaskStatus[TurnService] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve turns of conversation workflows on ``rt`` until ``stop`` is set (or cancelled).

    The Temporal client and workers run on an asyncio host; turns cross into
    Trio to run on ``rt``. When ``stop`` is set the worker leaves gracefully:
    the conversations it holds are released to other workers, it stops taking
    turns, and running turns get ``options.shutdown_grace`` seconds to finish
    before they are handed to another worker. Cancelling it is the hard stop:
    running turns are handed over at once.

    Args:
        rt: The runtime the agents live in.
        agent_defaults: The endpoint every agent uses on this worker.
        options: Connection and capacity.
        host: Where the Temporal worker's asyncio code runs: a dedicated
            :class:`~agy_trio.adapters.aio_host.AioHost` thread by default, or a
            :class:`~agy_trio.adapters.guest.GuestHost` when this Trio run is a
            guest of an asyncio loop (see docs/scale-out.md for which is faster).
        stop: Set it to make the worker leave gracefully.
        task_status: Started with the :class:`TurnService` once polling.

    Raises:
        ConfigError: An option is invalid.
    """
    if options.max_conversations < 1 or options.max_concurrent_turns < 1:
        raise ConfigError("max_conversations and max_concurrent_turns must be >= 1")
    if host is None:
        host = AioHost("agy-trio-temporal-worker", cancel_grace=options.shutdown_grace + 5.0)
    service = TurnService(rt, agent_defaults, options, host)
    # Turns run in this nursery (the host's calls into Trio): it stays open
    # while the worker drains, so a graceful stop lets them finish.
    async with trio.open_nursery() as nursery:
        await host.start(nursery)
        try:
            await host.run(service.connect)
            nursery.start_soon(service.evict_idle)
            task_status.started(service)
            async with trio.open_nursery() as waiting:

                async def until_the_workers_stop() -> None:
                    await host.run(service.wait_stopped)
                    waiting.cancel_scope.cancel()

                waiting.start_soon(until_the_workers_stop)
                if stop is not None:
                    await stop.wait()
                    waiting.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(options.shutdown_grace + 5.0):
                    held = [c.workflow_id for c in service._conversations.values()]
                    with contextlib.suppress(Exception):
                        await host.run(service.drain, held)
                nursery.cancel_scope.cancel()
                await host.aclose(options.shutdown_grace)
