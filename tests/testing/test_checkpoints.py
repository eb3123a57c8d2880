"""Every public async function of the model server is a Trio checkpoint, fast paths included."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import trio
from starlette.exceptions import HTTPException
from starlette.requests import Request
from trio.testing import assert_checkpoints

from agy_trio.testing import ModelServer, open_model_server, run_model_server
from agy_trio.testing._exchange import error_handler

pytestmark = pytest.mark.timeout(20)

Wait = Callable[[ModelServer], Awaitable[None]]

# Each wait, asked for something that already holds on a server that has seen nothing.
SATISFIED_WAITS: dict[str, Wait] = {
    "wait_for_requests": lambda server: server.wait_for_requests(0),
    "wait_for_hung": lambda server: server.wait_for_hung(0),
    "wait_for_idle": lambda server: server.wait_for_idle(),
}


@pytest.mark.parametrize("wait", SATISFIED_WAITS.values(), ids=SATISFIED_WAITS.keys())
async def test_a_satisfied_wait_still_checkpoints(wait: Wait) -> None:
    server = ModelServer()
    with assert_checkpoints():
        await wait(server)


@pytest.mark.parametrize("wait", SATISFIED_WAITS.values(), ids=SATISFIED_WAITS.keys())
async def test_a_satisfied_wait_in_a_cancelled_scope_is_cancelled(wait: Wait) -> None:
    server = ModelServer()
    with trio.CancelScope() as scope:
        scope.cancel()
        await wait(server)
        pytest.fail("the wait returned inside a cancelled scope")  # pragma: no cover
    assert scope.cancelled_caught


async def test_a_wait_that_waits_checkpoints() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    async with (
        open_model_server() as server,
        httpx.AsyncClient() as client,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(
            functools.partial(client.post, json=body), f"{server.url}/chat/completions"
        )
        with assert_checkpoints():
            await server.wait_for_requests(1)
    assert server.statistics().requests_total == 1


async def test_the_asgi_entry_point_checkpoints_whatever_its_callables_do() -> None:
    # receive and send here return at once, without a checkpoint of their own.
    server = ModelServer()
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[Any] = []

    async def receive() -> Any:
        return next(incoming)

    async def send(message: Any) -> None:
        sent.append(message["type"])

    with assert_checkpoints():
        await server({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_opening_and_closing_a_server_checkpoint() -> None:
    manager = open_model_server()
    with assert_checkpoints():
        server = await manager.__aenter__()
    with assert_checkpoints():
        await manager.__aexit__(None, None, None)
    assert server.port > 0


async def test_run_model_server_is_a_cancel_point() -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        await run_model_server(port=0)
    assert scope.cancelled_caught


async def test_run_model_server_serves_until_cancelled() -> None:
    ready: list[ModelServer] = []
    async with trio.open_nursery() as nursery:

        def on_ready(server: ModelServer) -> None:
            ready.append(server)
            nursery.cancel_scope.cancel()

        with assert_checkpoints():
            await run_model_server(port=0, on_ready=on_ready)
    assert ready[0].port > 0


async def test_the_error_handler_checkpoints() -> None:
    scope = {"type": "http", "method": "GET", "path": "/nowhere", "headers": []}
    with assert_checkpoints():
        response = await error_handler(Request(scope), HTTPException(404))
    assert response.status_code == 404
