"""The client side: :class:`TemporalBackend`, agents that live in Temporal workflows.

The Temporal client lives on an asyncio host thread of agy_trio's own
(:class:`~agy_trio.adapters.aio_host.AioHost`); the Trio side only ever submits
work to it and is answered through the host, so it never blocks on Temporal.
Each agent's commands are answered by its
:class:`~agy_trio.adapters.temporal.session.TemporalSession`.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import trio

from agy_trio.adapters.aio_host import AioHost
from agy_trio.adapters.temporal.errors import TemporalUnavailable, classify
from agy_trio.adapters.temporal.messages import (
    CONVERSATION_WORKFLOW,
    AgentSetup,
    ConversationState,
    conversation_workflow_id,
)
from agy_trio.adapters.temporal.session import TemporalSession, WorkflowAgent
from agy_trio.core.backend import AgentServices
from agy_trio.core.commands import WorkCancelled
from agy_trio.core.settings import AgentConfig, default_chat_timeout
from agy_trio.core.validation import positive_int, positive_number
from agy_trio.errors import AgentNotFound, AgyError, ChannelClosed, ConfigError

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowHandle

__all__ = ["TemporalBackend"]


def _load_temporalio() -> None:
    try:
        import temporalio.client  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            "the Temporal backend needs the temporalio package: pip install 'agy-trio[temporal]'"
        ) from exc


def _settings_of(config: AgentConfig) -> dict[str, Any]:
    """The agent's configuration for the workflow: secrets and the resume id left out."""
    from agy_trio.core.serialization import unstructure

    settings = unstructure(config)
    settings.pop("conversation_id", None)
    return settings


class TemporalBackend:
    """Agents as Temporal workflows; their turns run on ``agy-trio worker`` processes.

    ``open_runtime(backend=TemporalBackend(...))`` gives the usual
    :class:`~agy_trio.AgentHandle` API. Each agent is a workflow whose id is
    derived from its conversation id; the workflow keeps the agent's settings
    and history, and each turn runs as an activity on a worker. Tools,
    policy handlers and hooks of the agent's config run on the workers, so
    they must be importable there by their import path.

    Args:
        target: The Temporal frontend, ``HOST:PORT``.
        namespace: The Temporal namespace.
        task_queue: The queue the workers poll.
        poll_interval: Seconds between two looks at a streaming turn's progress.
        heartbeat_timeout: Seconds of silence after which a worker running a
            turn is taken for dead and the turn starts again on another worker.
        sticky_timeout: Seconds a turn waits for the worker that holds the
            conversation before any worker may take it.
        max_attempts: Attempts of one turn lost with their workers before it fails.
        turns_per_run: Turns after which an agent's workflow continues as new,
            keeping its history short (Temporal may suggest it earlier).
        stream_high_water: Events buffered per turn before the follower waits.
        stream_batch_max: Most events handed to Trio at once.
        connect_timeout: Seconds to wait for Temporal at start.
        shutdown_timeout: Seconds an agent's ending may take.

    Raises:
        ConfigError: An option is invalid, or temporalio is not installed.
    """

    name = "temporal"

    def __init__(
        self,
        target: str = "127.0.0.1:7233",
        *,
        namespace: str = "default",
        task_queue: str = "agy-trio",
        poll_interval: float = 0.2,
        heartbeat_timeout: float = 5.0,
        sticky_timeout: float = 3.0,
        max_attempts: int = 5,
        turns_per_run: int = 500,
        stream_high_water: int = 1024,
        stream_batch_max: int = 256,
        connect_timeout: float = 10.0,
        shutdown_timeout: float = 10.0,
    ) -> None:
        _load_temporalio()
        for field, value in (
            ("target", target),
            ("namespace", namespace),
            ("task_queue", task_queue),
        ):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"must be a non-empty string, got {value!r}", field=field)
        self.target = target
        self.namespace = namespace
        self.task_queue = task_queue
        self.poll_interval = positive_number(poll_interval, "poll_interval")
        self.heartbeat_timeout = positive_number(heartbeat_timeout, "heartbeat_timeout")
        self.sticky_timeout = positive_number(sticky_timeout, "sticky_timeout")
        self.max_attempts = positive_int(max_attempts, "max_attempts")
        self.turns_per_run = positive_int(turns_per_run, "turns_per_run")
        self.stream_high_water = positive_int(stream_high_water, "stream_high_water")
        self.stream_batch_max = positive_int(stream_batch_max, "stream_batch_max")
        self.connect_timeout = positive_number(connect_timeout, "connect_timeout")
        self.shutdown_timeout = positive_number(shutdown_timeout, "shutdown_timeout")
        self.host = AioHost("agy-trio-temporal-client", cancel_grace=shutdown_timeout)
        self._client: Client | None = None
        self._sessions: dict[str, TemporalSession] = {}

    @property
    def client(self) -> Client:
        """The Temporal client (use it on the host loop only)."""
        if self._client is None:
            raise ChannelClosed("the Temporal backend is not started")
        return self._client

    async def start(self, nursery: trio.Nursery) -> None:
        """Start the host thread and connect to Temporal.

        Raises:
            TemporalUnavailable: Temporal did not answer within ``connect_timeout``.
        """
        await self.host.start(nursery)
        try:
            self._client = await self.host.run(self._connect)
        except Exception as exc:
            await self.host.aclose()
            raise TemporalUnavailable(f"cannot reach Temporal at {self.target}: {exc}") from exc

    async def _connect(self) -> Client:
        from temporalio.client import Client

        return await asyncio.wait_for(
            Client.connect(self.target, namespace=self.namespace), self.connect_timeout
        )

    async def create_agent(
        self, agent_id: str, config: AgentConfig, services: AgentServices
    ) -> TemporalSession:
        """Start the agent's workflow, or attach to ``config.conversation_id``'s.

        Raises:
            AgentNotFound: The conversation to resume does not exist (or was deleted).
            ConfigError: A tool, policy handler or hook cannot be named by import path.
        """
        del services  # tools, policies and hooks run on the workers, from the config
        try:
            settings = _settings_of(config)
        except ConfigError:
            await trio.lowlevel.checkpoint()
            raise
        chat_timeout = config.chat_timeout or default_chat_timeout()
        setup = AgentSetup(
            conversation_id=config.conversation_id or uuid.uuid4().hex,
            settings=settings,
            turn_timeout=chat_timeout,
            task_queue=self.task_queue,
            heartbeat_timeout=self.heartbeat_timeout,
            sticky_timeout=self.sticky_timeout,
            max_attempts=self.max_attempts,
            turns_per_run=self.turns_per_run,
        )
        try:
            handle = await self.host.run(
                self._open_workflow, setup, config.conversation_id is not None
            )
        except (AgyError, WorkCancelled):
            raise
        except Exception as exc:
            raise classify(exc) from exc
        session = TemporalSession(WorkflowAgent(self, agent_id, setup.conversation_id, handle))
        self._sessions[agent_id] = session
        return session

    def forget(self, agent_id: str) -> None:
        """An agent ended: stop tracking its session."""
        self._sessions.pop(agent_id, None)

    async def _open_workflow(self, setup: AgentSetup, resume: bool) -> WorkflowHandle[Any, Any]:
        from temporalio.client import WorkflowExecutionStatus
        from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
        from temporalio.service import RPCError, RPCStatusCode

        client = self.client
        workflow_id = conversation_workflow_id(setup.conversation_id)
        if resume:
            handle = client.get_workflow_handle(workflow_id)
            try:
                description = await handle.describe()
            except RPCError as exc:
                if exc.status is RPCStatusCode.NOT_FOUND:
                    raise AgentNotFound(
                        f"no conversation {setup.conversation_id!r} to resume"
                    ) from None
                raise
            if description.status is WorkflowExecutionStatus.RUNNING:
                return client.get_workflow_handle(workflow_id)
            if description.status is not WorkflowExecutionStatus.COMPLETED:
                raise AgentNotFound(
                    f"conversation {setup.conversation_id!r} ended "
                    f"({description.status.name.lower() if description.status else 'unknown'})"
                )
            finished = client.get_workflow_handle(workflow_id, result_type=ConversationState)
            setup.state = await finished.result()
        await client.start_workflow(
            CONVERSATION_WORKFLOW,
            setup,
            id=workflow_id,
            task_queue=self.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            execution_timeout=None,
            task_timeout=timedelta(seconds=10),
        )
        # No run id: the handle follows the conversation across continue-as-new.
        return client.get_workflow_handle(workflow_id)

    async def conversation_state(self, conversation_id: str) -> ConversationState:
        """The whole state a conversation's workflow holds (history, holder, recent turns).

        For diagnostics and tests; works for running and shut-down conversations.

        Raises:
            AgentNotFound: No such conversation.
        """
        try:
            state: ConversationState = await self.host.run(self._state_of, conversation_id)
        except (AgyError, WorkCancelled):
            raise
        except Exception as exc:
            raise classify(exc) from exc
        return state

    async def _state_of(self, conversation_id: str) -> ConversationState:
        handle = self.client.get_workflow_handle(conversation_workflow_id(conversation_id))
        state: ConversationState = await handle.query("state", result_type=ConversationState)
        return state

    async def aclose(self) -> None:
        """Stop following turns and stop the host thread (the workflows live on)."""
        self._sessions.clear()
        await self.host.aclose(self.shutdown_timeout)
