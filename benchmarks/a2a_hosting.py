"""Where A2A's server side runs: a2a-sdk's own asyncio stack, or its dispatcher on Trio.

a2a-sdk's server is its JSON-RPC dispatcher (plain Starlette/anyio) over a
``RequestHandler``; its ``DefaultRequestHandler`` (event queues, task manager,
task store) is asyncio-bound. agy_trio keeps the dispatcher and implements the
handler on Trio. This measures the cost of each choice per streamed event,
with the same a2a-sdk client, the same events and nothing else in the way:

* **a2a-sdk on asyncio**: its dispatcher over ``DefaultRequestHandler``,
  ``InMemoryTaskStore`` and an ``AgentExecutor`` publishing the answer through
  a ``TaskUpdater``, served by hypercorn's asyncio worker on a thread of its
  own (where agy_trio's asyncio host would run it). No Trio-to-asyncio
  crossing is counted for the events: a real turn would add two per event.
* **dispatcher on Trio**: the same dispatcher over a Trio ``RequestHandler``
  yielding the same updates, served by hypercorn's Trio worker, the way
  ``agy_trio.serve.a2a`` runs.

Each round streams M messages of E artifact updates each, one after another
(so the figure is the cost of the stack, not of queueing); per-event time is
the stream's duration divided by its events.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

import trio

from benchmarks._common import BenchResult, Metric, Target, fmt
from benchmarks._rounds import Contender, Context, compare
from benchmarks._runtime import beside

NAME = "a2a_hosting"
TITLE = "A2A server side: a2a-sdk's asyncio stack vs its dispatcher on Trio"
DESCRIPTION = (
    "One a2a-sdk client on Trio streams M messages one after another (`SendStreamingMessage`), "
    "each answered with E artifact updates, a submitted task and a completed status. "
    "Contenders: a2a-sdk's own server (`DefaultRequestHandler`, `InMemoryTaskStore`, an "
    "`AgentExecutor` and `TaskUpdater`) on hypercorn's asyncio worker in a thread of its own, "
    "as it would run on agy_trio's asyncio host; and a2a-sdk's JSON-RPC dispatcher over a Trio "
    "`RequestHandler` yielding the same updates on hypercorn's Trio worker, as agy_trio.serve "
    "runs it. Per event: a stream's duration over its events; median over the streams of a "
    "round, summarised over rounds. The asyncio row counts no thread crossing: a real turn's "
    "events would cross from Trio to asyncio and back on top of it."
)
METRICS = [
    Metric("event_us", "per event", "us", digits=0),
    Metric("stream_ms", "per stream", "ms", digits=2),
]


def _card(url: str) -> Any:
    from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill

    return AgentCard(
        name="bench",
        description="benchmark agent",
        version="1",
        supported_interfaces=[
            AgentInterface(url=f"{url}/a2a", protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="chat", name="chat", description="chat", tags=["chat"])],
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _hypercorn_config(port: int) -> Any:
    """hypercorn on loopback ``port``, with no access or error log in the way."""
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    return config


# ---------------------------------------------------------------------------- a2a-sdk on asyncio


def _asyncio_app(url: str, events: int) -> Any:
    from a2a.helpers.proto_helpers import new_task
    from a2a.server.agent_execution import AgentExecutor, RequestContext
    from a2a.server.events import EventQueue
    from a2a.server.request_handlers import DefaultRequestHandler
    from a2a.server.routes.agent_card_routes import create_agent_card_routes
    from a2a.server.routes.jsonrpc_routes import create_jsonrpc_routes
    from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
    from a2a.types import Part, TaskState
    from starlette.applications import Starlette

    class Executor(AgentExecutor):
        async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
            assert context.task_id is not None and context.context_id is not None
            task = new_task(
                context.task_id,
                context.context_id,
                TaskState.TASK_STATE_SUBMITTED,
                history=[context.message] if context.message else [],
            )
            await event_queue.enqueue_event(task)
            updater = TaskUpdater(event_queue, context.task_id, context.context_id)
            await updater.start_work()
            for i in range(events):
                await updater.add_artifact(
                    [Part(text=f"piece {i} ")], artifact_id="answer", append=i > 0
                )
            await updater.complete()

        async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
            raise NotImplementedError

    card = _card(url)
    handler = DefaultRequestHandler(
        agent_executor=Executor(), task_store=InMemoryTaskStore(), agent_card=card
    )
    return Starlette(
        routes=[*create_agent_card_routes(card), *create_jsonrpc_routes(handler, "/a2a")]
    )


class _AsyncioServer:
    """hypercorn's asyncio worker on a thread of its own, serving ``app``."""

    def __init__(self, app: Any, port: int) -> None:
        self._app = app
        self._config = _hypercorn_config(port)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from hypercorn.asyncio import serve

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            task = asyncio.ensure_future(
                serve(self._app, self._config, shutdown_trigger=self._stop.wait, mode="asgi")
            )
            await asyncio.sleep(0.2)
            self._ready.set()
            await task

        asyncio.run(main())

    def __enter__(self) -> _AsyncioServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


# ---------------------------------------------------------------------------- dispatcher on Trio


def _trio_app(url: str, events: int) -> Any:
    from a2a.server.request_handlers.request_handler import RequestHandler
    from a2a.server.routes.agent_card_routes import create_agent_card_routes
    from a2a.server.routes.jsonrpc_routes import create_jsonrpc_routes
    from a2a.types import (
        Artifact,
        Part,
        Task,
        TaskArtifactUpdateEvent,
        TaskState,
        TaskStatus,
        TaskStatusUpdateEvent,
    )
    from starlette.applications import Starlette

    class Handler(RequestHandler):
        async def on_message_send_stream(self, params: Any, context: Any) -> AsyncGenerator[Any]:
            task_id, context_id = str(uuid.uuid4()), str(uuid.uuid4())
            yield Task(
                id=task_id,
                context_id=context_id,
                status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED),
                history=[params.message],
            )
            working = TaskStatus(state=TaskState.TASK_STATE_WORKING)
            yield TaskStatusUpdateEvent(task_id=task_id, context_id=context_id, status=working)
            for i in range(events):
                await trio.lowlevel.checkpoint()
                yield TaskArtifactUpdateEvent(
                    task_id=task_id,
                    context_id=context_id,
                    artifact=Artifact(artifact_id="answer", parts=[Part(text=f"piece {i} ")]),
                    append=i > 0,
                )
            done = TaskStatus(state=TaskState.TASK_STATE_COMPLETED)
            yield TaskStatusUpdateEvent(task_id=task_id, context_id=context_id, status=done)

        async def _unused(self, *args: Any) -> Any:
            raise NotImplementedError

        on_get_task = on_list_tasks = on_cancel_task = on_message_send = _unused
        on_create_task_push_notification_config = on_get_task_push_notification_config = _unused
        on_list_task_push_notification_configs = on_delete_task_push_notification_config = _unused
        on_get_extended_agent_card = on_subscribe_to_task = _unused  # type: ignore[assignment]

    card = _card(url)
    return Starlette(
        routes=[*create_agent_card_routes(card), *create_jsonrpc_routes(Handler(), "/a2a")]
    )


# ---------------------------------------------------------------------------- the client


async def _stream(url: str, messages: int, events: int) -> dict[str, float]:
    import httpx
    from a2a.client import ClientConfig, ClientFactory
    from a2a.types import Message, Part, Role, SendMessageRequest

    per_event: list[float] = []
    per_stream: list[float] = []
    async with httpx.AsyncClient(timeout=60) as http:
        client = await ClientFactory(ClientConfig(httpx_client=http)).create_from_url(url)
        async with client:
            for index in range(messages + 1):  # the first one warms up
                message = Message(
                    message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text="hi")]
                )
                t0 = time.perf_counter()
                received = 0
                async for _ in client.send_message(SendMessageRequest(message=message)):
                    received += 1
                elapsed = time.perf_counter() - t0
                if received != events + 3:
                    raise RuntimeError(f"{received} events streamed, expected {events + 3}")
                if index:
                    per_event.append(elapsed / received)
                    per_stream.append(elapsed)
    per_event.sort()
    per_stream.sort()
    return {
        "event_us": per_event[len(per_event) // 2] * 1e6,
        "stream_ms": per_stream[len(per_stream) // 2] * 1e3,
    }


def asyncio_round(messages: int, events: int) -> dict[str, float]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with _AsyncioServer(_asyncio_app(url, events), port):
        return trio.run(_stream, url, messages, events)


def trio_round(messages: int, events: int) -> dict[str, float]:
    from hypercorn.trio import serve

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = functools.partial(serve, _trio_app(url, events), _hypercorn_config(port), mode="asgi")

    measure = functools.partial(_stream, url, messages, events)
    return trio.run(functools.partial(beside, server, measure, started=True))


# Each called with (messages, events per message).
CONTENDERS: dict[str, Contender] = {
    "trio": Contender(
        "a2a-sdk dispatcher, Trio handler",
        "agy",
        trio_round,
        "hypercorn Trio worker: how agy_trio.serve runs A2A",
    ),
    "asyncio": Contender(
        "a2a-sdk's own asyncio stack",
        "baseline",
        asyncio_round,
        "DefaultRequestHandler + task store on hypercorn asyncio, own thread; no crossing counted",
    ),
}


def run(ctx: Context) -> BenchResult:
    try:
        import a2a.server.request_handlers  # noqa: F401
    except ImportError as exc:
        skipped = f"needs a2a-sdk (the serve extra): {exc}"
        return BenchResult.new(NAME, TITLE, DESCRIPTION, METRICS, "event_us", skipped=skipped)
    messages, events, rounds = ctx.pick(5, 30), ctx.pick(20, 100), ctx.pick(2, 5)
    params = {"streams": messages, "events per stream": events + 3, "rounds": rounds}
    result = BenchResult.new(NAME, TITLE, DESCRIPTION, METRICS, "event_us", params=params)
    group = f"{messages} streams of {events} artifact updates"
    result.rows = compare(ctx, CONTENDERS, (messages, events), rounds, label=NAME, group=group)
    ours = result.median("trio", "event_us")
    theirs = result.median("asyncio", "event_us")
    if ours is not None and theirs is not None:
        result.targets = [
            Target(
                "A2A on Trio costs no more per event than a2a-sdk's own asyncio stack",
                ours <= theirs,
                f"{fmt(ours)} us per event on Trio vs {fmt(theirs)} us on asyncio "
                "(before the two thread crossings per event hosting it would add)",
            )
        ]
    return result
