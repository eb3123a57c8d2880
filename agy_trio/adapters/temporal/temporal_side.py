"""A worker's asyncio half: the Temporal client and workers, the activities, every workflow call.

It runs on the worker's asyncio host. A turn activity crosses into Trio once,
for the whole turn (:meth:`TurnPlaying.play`); the Trio side calls back only
through :class:`~agy_trio.adapters.temporal.crossing.WorkflowCalls`, which this
class implements.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import attrs
from temporalio import activity

from agy_trio.adapters.host_base import AsyncioHost
from agy_trio.adapters.temporal.conversations import TurnProgress
from agy_trio.adapters.temporal.crossing import ToolCallNotRepeated, TurnPlaying
from agy_trio.adapters.temporal.errors import execute_update, failure_of
from agy_trio.adapters.temporal.messages import (
    ACTIVITY_FORGET,
    ACTIVITY_RUN_TURN,
    QUOTA_WORKFLOW,
    ConversationSnapshot,
    FailureKind,
    QuotaHit,
    QuotaStatus,
    ToolClaim,
    ToolClaimRequest,
    ToolDone,
    TurnFailure,
    TurnOutcome,
    TurnTask,
    quota_workflow_id,
)
from agy_trio.errors import AgyError

if TYPE_CHECKING:
    from temporalio.client import Client
    from temporalio.worker import Worker

    from agy_trio.adapters.temporal.options import WorkerOptions

__all__ = ["TemporalSide"]

log = logging.getLogger("agy_trio.temporal.worker")


def _workflow_runner() -> Any:
    """The workflow sandbox, with agy_trio's data modules passed through.

    The workflow module itself is re-imported for every run; the plain data
    modules it reads are not. The parents of its package run again in the
    sandbox too; what they import from core/, errors and policy is passed
    through (errors must be: an error class is one class on both sides), and
    the rest are a few lines each (well under a millisecond a run).
    """
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(
            "agy_trio.core",
            "agy_trio.errors",
            "agy_trio.policy",
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
        failure.message, failure, type=failure.kind.value, non_retryable=True, category=category
    )


@attrs.define(eq=False)
class TemporalSide:
    """The Temporal half of one worker; every coroutine runs on ``host``'s loop.

    Args:
        options: Connection and capacity.
        identity: The worker's name in Temporal.
        own_queue: The queue of this worker alone (turns of the conversations it holds).
        quota_key: The fingerprint of the endpoint key its turns use ("" for none).
        host: The asyncio host it runs on.
    """

    options: WorkerOptions
    identity: str
    own_queue: str
    quota_key: str
    host: AsyncioHost
    _player: TurnPlaying | None = attrs.field(init=False, default=None)
    _client: Client | None = attrs.field(init=False, default=None)
    _workers: list[Worker] = attrs.field(init=False, factory=list)
    _worker_tasks: list[asyncio.Task[None]] = attrs.field(init=False, factory=list)

    @property
    def client(self) -> Client:
        """The worker's Temporal client (host loop only)."""
        if self._client is None:
            raise RuntimeError("the worker is not connected")
        return self._client

    @property
    def player(self) -> TurnPlaying:
        """The Trio half that plays this worker's turns."""
        if self._player is None:
            raise RuntimeError("the worker is not connected")
        return self._player

    async def connect(self, player: TurnPlaying) -> None:
        """Connect to Temporal and start polling the shared queue and our own for ``player``."""
        from temporalio.client import Client
        from temporalio.worker import Worker

        from agy_trio.adapters.temporal.quota_workflow import QuotaWorkflow
        from agy_trio.adapters.temporal.workflow import ConversationWorkflow

        self._player = player

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
            outcome: TurnOutcome = await self.host.call_trio(self.player.play, task, progress)
            return outcome
        except asyncio.CancelledError:
            if activity.is_worker_shutdown():
                raise _application_error(
                    TurnFailure(
                        FailureKind.WORKER_LEAVING,
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
                    FailureKind.BACKEND_ERROR,
                    f"{type(exc).__name__}: {exc}",
                    segments=progress.snapshot(),
                ),
                expected=False,
            ) from exc
        finally:
            beat.cancel()

    @activity.defn(name=ACTIVITY_FORGET)
    async def forget(self, conversation_id: str) -> None:
        """The forget activity: drop a deleted conversation and its SDK state."""
        await self.host.call_trio(self.player.forget, conversation_id)

    async def snapshot(self, workflow_id: str) -> ConversationSnapshot:
        """What a worker needs to rebuild the conversation of ``workflow_id``."""
        snapshot: ConversationSnapshot = await self.client.get_workflow_handle(workflow_id).query(
            "snapshot", result_type=ConversationSnapshot
        )
        return snapshot

    async def claim_tool(self, workflow_id: str, request: ToolClaimRequest) -> ToolClaim:
        """Ask the workflow whether this attempt may run a tool call."""
        from temporalio.client import WorkflowUpdateFailedError

        try:
            handle = self.client.get_workflow_handle(workflow_id)
            claim: ToolClaim = await execute_update(
                handle, "claim_tool", request, result_type=ToolClaim
            )
        except WorkflowUpdateFailedError as exc:
            raise ToolCallNotRepeated(f"this attempt of the turn is stale: {exc.cause}") from None
        return claim

    async def tool_done(self, workflow_id: str, done: ToolDone) -> None:
        """Tell the workflow how a tool call ended."""
        await self.client.get_workflow_handle(workflow_id).signal("tool_done", done)

    async def quota_status(self) -> QuotaStatus | None:
        """The backoff the quota workflow of this worker's key holds, if any."""
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

    async def record_quota_hit(self, retry_after: float) -> None:
        """Record a 429 for this worker's key, for every worker."""
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
