"""What the serve tests share: a scripted backend with slow and failing turns, a running server."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import trio
from httpx_sse import ServerSentEvent, aconnect_sse

import agy_trio
from agy_trio.adapters.scripted import Fail, Hang, Say, ScriptedBackend, Turn, default_turn
from agy_trio.serve import ServerAddress, serve
from agy_trio.testing.scripted import Script

FAST = agy_trio.RuntimeConfig(inter_agent_delay=0, chat_timeout=30, shutdown_timeout=2)
TOKEN = "s3cret-token-for-tests"


def script(agent_id: str, prompt: str, index: int) -> Turn:
    """Turns chosen by the prompt: ``hang`` streams a little then never ends, and so on."""
    if prompt.startswith("hang"):
        return Turn([Say("partial answer", chunks=1), Hang()])
    if prompt == "quota":
        return Turn([Fail("quota", message="slow down", retry_after=7)])
    if prompt.startswith("echo failure "):
        # An endpoint that quotes what it was sent back in its error text.
        return Turn([Fail("server", message=f"rejected: {prompt.removeprefix('echo failure ')}")])
    return default_turn(prompt)


@attrs.define
class Served:
    runtime: agy_trio.Runtime
    backend: ScriptedBackend
    address: ServerAddress
    client: httpx.AsyncClient


@asynccontextmanager
async def served(
    *,
    turns: Script = script,
    token: str | None = None,
    authorized: bool = True,
    **serve_options: Any,
) -> AsyncIterator[Served]:
    """A scripted runtime served on a free loopback port, and an httpx client for it.

    Args:
        turns: What the scripted agents answer (:func:`script` unless told).
        token: The server's bearer token, if any.
        authorized: Whether the client sends the token (with ``token`` only).
        **serve_options: The rest of :func:`agy_trio.serve.serve`'s options.
    """
    backend = ScriptedBackend(turns)
    async with (
        agy_trio.open_runtime(FAST, backend=backend) as runtime,
        trio.open_nursery() as nursery,
    ):
        address: ServerAddress = await nursery.start(
            functools.partial(serve, runtime, port=0, token=token, **serve_options)
        )
        headers = {"authorization": f"Bearer {token}"} if token and authorized else {}
        async with httpx.AsyncClient(base_url=address.url, headers=headers, timeout=10) as client:
            yield Served(runtime, backend, address, client)
        nursery.cancel_scope.cancel()


def data(event: ServerSentEvent) -> dict[str, Any]:
    """An event's data without its ``turn_id`` (which every chat event must carry)."""
    body: dict[str, Any] = event.json()
    assert isinstance(body.pop("turn_id"), str), body
    return body


async def create_agent(client: httpx.AsyncClient, **fields: Any) -> str:
    answer = await client.post("/v1/agents", json=fields)
    assert answer.status_code == 201, answer.text
    agent_id: str = answer.json()["id"]
    return agent_id


async def chat_events(
    client: httpx.AsyncClient, agent_id: str, prompt: str
) -> list[ServerSentEvent]:
    """Every event of one chat, read with an independent SSE parser."""
    async with aconnect_sse(
        client, "POST", f"/v1/agents/{agent_id}/chat", json={"prompt": prompt}
    ) as source:
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        return [event async for event in source.aiter_sse()]


class ChatReader:
    """Reads one chat stream in its own task, so a test can watch it and hang up mid-way.

    Hanging up cancels the reading task: the cancellation runs through every
    iterator httpx and httpx-sse nest, so each is finalised, and the
    connection is closed as a browser tab closing would.
    """

    def __init__(self) -> None:
        self.events: list[ServerSentEvent] = []
        self.ended = trio.Event()
        self._changed = trio.Event()
        self._scope = trio.CancelScope()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _run(
        self,
        client: httpx.AsyncClient,
        agent_id: str,
        prompt: str,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            with self._scope:
                async with aconnect_sse(
                    client, "POST", f"/v1/agents/{agent_id}/chat", json={"prompt": prompt}
                ) as source:
                    assert source.response.status_code == 200
                    task_status.started()
                    async for event in source.aiter_sse():
                        self.events.append(event)
                        self._notify()
        finally:
            self.ended.set()
            self._notify()

    async def wait_for(self, name: str) -> ServerSentEvent:
        """The first event called ``name``, once it has arrived."""
        while True:
            for event in self.events:
                if event.event == name:
                    return event
            if self.ended.is_set():
                raise AssertionError(f"the stream ended without {name!r}: {self.events}")
            await self._changed.wait()

    async def hang_up(self) -> None:
        """Close the connection mid-stream, and wait until the reader has stopped."""
        self._scope.cancel()
        await self.ended.wait()


@asynccontextmanager
async def open_chat(
    client: httpx.AsyncClient, agent_id: str, prompt: str
) -> AsyncIterator[ChatReader]:
    """Start a chat whose events a :class:`ChatReader` collects while the block runs."""
    reader = ChatReader()
    async with trio.open_nursery() as nursery:
        await nursery.start(reader._run, client, agent_id, prompt)
        yield reader
        if not reader.ended.is_set():
            await reader.hang_up()


async def chat_in_task(
    client: httpx.AsyncClient,
    agent_id: str,
    prompt: str,
    *,
    task_status: trio.TaskStatus[ChatReader] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a chat in a task of its own (``nursery.start`` returns its reader) until it ends."""
    async with open_chat(client, agent_id, prompt) as chat:
        task_status.started(chat)
        await chat.ended.wait()


__all__ = [
    "FAST",
    "TOKEN",
    "ChatReader",
    "Served",
    "chat_events",
    "chat_in_task",
    "create_agent",
    "data",
    "open_chat",
    "script",
    "served",
]
