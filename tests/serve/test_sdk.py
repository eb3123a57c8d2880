"""The server over the real SDK, its harness and the local model server, all offline."""

from __future__ import annotations

import functools
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import google.antigravity  # noqa: F401  (the README set-up installs the SDK)
import httpx
import pytest
import trio
from httpx_sse import connect_sse

import agy_trio
from agy_trio.adapters.antigravity import AntigravityBackend
from agy_trio.serve import ServerAddress, serve
from agy_trio.testing import Fault, ModelServer, open_model_server
from tests.processes import offline_env
from tests.sdk_support import harnesses_under
from tests.serve._helpers import FAST, chat_events, chat_in_task, create_agent, open_chat
from tests.serve._process import server_process

pytestmark = [pytest.mark.sdk, pytest.mark.usefixtures("offline", "no_harness_left")]

HOLD = "HOLD-THIS-ANSWER"


@attrs.define
class SdkServed:
    model: ModelServer
    backend: AntigravityBackend
    runtime: agy_trio.Runtime
    nursery: trio.Nursery  # the embedding program's, which serve() runs in
    program_ended: trio.Event
    client: httpx.AsyncClient


@asynccontextmanager
async def sdk_server(tmp_path: Path) -> AsyncIterator[SdkServed]:
    base = tmp_path / "backend"
    program_ended = trio.Event()
    async with open_model_server() as model:
        backend = AntigravityBackend(base_dir=base)
        defaults = agy_trio.AgentConfig(model="agy-trio-local", base_url=model.url)
        async with (
            agy_trio.open_runtime(FAST, backend=backend) as runtime,
            trio.open_nursery() as outside,
        ):

            async def program(*, task_status: trio.TaskStatus[Any]) -> None:
                try:
                    async with trio.open_nursery() as nursery:
                        address: ServerAddress = await nursery.start(
                            functools.partial(serve, runtime, port=0, defaults=defaults)
                        )
                        task_status.started((nursery, address))
                finally:
                    program_ended.set()

            nursery, address = await outside.start(program)
            async with httpx.AsyncClient(base_url=address.url, timeout=60) as client:
                yield SdkServed(model, backend, runtime, nursery, program_ended, client)
            nursery.cancel_scope.cancel()
        assert list(base.iterdir()) == [], "the backend left its folder behind"


async def test_chat_streams_through_the_real_sdk(tmp_path: Path) -> None:
    async with sdk_server(tmp_path) as s:
        client = s.client
        agent_id = await create_agent(client, name="real")
        events = await chat_events(client, agent_id, "hello over http")
        assert events[-1].event == "done"
        done = events[-1].json()
        assert done["text"] == "You said: hello over http"
        assert done["stop_reason"] == "end_turn"
        assert done["usage"]["output_tokens"] > 0
        assert "".join(e.json()["text"] for e in events if e.event == "delta") == done["text"]
        rows = (await client.get("/v1/agents")).json()
        assert rows == [{"id": agent_id, "name": "real", "idle": True, "turns": 1}]


async def test_a_prompt_over_the_models_limit_is_refused_before_the_stream(
    tmp_path: Path,
) -> None:
    async with sdk_server(tmp_path) as s:
        agent_id = await create_agent(s.client)
        prompt = "p" * 900_000  # under the body limit (1 MiB), over the model's
        answer = await s.client.post(f"/v1/agents/{agent_id}/chat", json={"prompt": prompt})
        assert answer.status_code == 413
        assert answer.headers["content-type"] == "application/json"
        error = answer.json()["error"]
        assert error["type"] == "ContentTooLarge"
        assert "900,000 bytes of text" in error["message"]
        assert "over the limit of 191,488 bytes" in error["message"]
        assert s.model.statistics().requests_total == 0  # nothing reached the model
        events = await chat_events(s.client, agent_id, "and now a short one")
        assert events[-1].json()["text"] == "You said: and now a short one"


async def test_hanging_up_abandons_the_model_request(tmp_path: Path) -> None:
    async with sdk_server(tmp_path) as s:
        model, backend, runtime, client = s.model, s.backend, s.runtime, s.client
        agent_id = await create_agent(client)
        handle = runtime.agent(agent_id)
        # The model streams a few chunks, then holds the rest back for good.
        model.inject_fault(Fault.hang(after_chunks=3, match=HOLD))
        async with open_chat(client, agent_id, f"{HOLD} tell me everything you know") as chat:
            await chat.wait_for("delta")
            with trio.fail_after(30):
                await model.wait_for_hung(1)
            assert model.statistics().in_flight == 1
            await chat.hang_up()
        # The harness drops its request to the model: the server sees it
        # abandoned (nothing released the hang), and the agent is idle.
        with trio.fail_after(10):
            await model.wait_for_idle()
            await handle.wait_for_idle()
        stats = model.statistics()
        assert (stats.in_flight, stats.hung) == (0, 0)
        assert backend.harness_pids() != []  # the agent lives on, ready for its next turn
        events = await chat_events(client, agent_id, "are you still there")
        assert events[-1].json()["text"] == "You said: are you still there"


async def test_stopping_the_server_ends_live_streams_and_its_agents(tmp_path: Path) -> None:
    async with sdk_server(tmp_path) as s:
        model, backend, runtime, client = s.model, s.backend, s.runtime, s.client
        agents = [await create_agent(client) for _ in range(2)]
        model.inject_fault(Fault.hang(after_chunks=3, match=HOLD, times=None))
        async with trio.open_nursery() as readers_nursery:
            chats = []
            for agent_id in agents:
                chats.append(
                    await readers_nursery.start(chat_in_task, client, agent_id, f"{HOLD} and more")
                )
            for chat in chats:
                await chat.wait_for("delta")
            assert len(backend.harness_pids()) == 1  # both agents share one pooled harness

            s.nursery.cancel_scope.cancel()

            with trio.fail_after(30):
                for chat in chats:
                    await chat.ended.wait()
                await s.program_ended.wait()
        for chat in chats:
            assert chat.events[-1].event == "error"
            assert chat.events[-1].json()["type"] == "RuntimeClosed"
        # The agents created over HTTP are shut down with the server, while
        # the runtime itself is still open.
        assert runtime.agents == []
        assert backend.harness_pids() == []


def test_sigterm_tells_live_streams_and_leaves_no_harness(tmp_path: Path) -> None:
    # No endpoint given: the real SDK against the local model server, offline.
    argv = ["-m", "agy_trio", "serve", "--port", "0"]
    with server_process(argv, offline_env(tmp_path), header_lines=2) as server:
        description = server.lines[1]
        assert "real SDK -> local model server at http://127.0.0.1:" in description
        model_url = re.search(r"(http://\S+)/v1", description)
        assert model_url is not None
        with httpx.Client(base_url=server.url, timeout=60) as client:
            fault = {"kind": "hang", "after_chunks": 3, "match": HOLD}
            client.post(f"{model_url.group(1)}/control/faults", json=fault).raise_for_status()
            agent_id = client.post("/v1/agents", json={}).json()["id"]
            assert harnesses_under(tmp_path) != []
            events = []
            with connect_sse(
                client, "POST", f"/v1/agents/{agent_id}/chat", json={"prompt": f"{HOLD} now"}
            ) as source:
                for event in source.iter_sse():
                    events.append(event)
                    if len(events) == 1:
                        assert event.event == "delta"
                        server.process.send_signal(signal.SIGTERM)
        out, err = server.process.communicate(timeout=60)
    assert [e.event for e in events][-1] == "error"
    assert events[-1].json()["type"] == "RuntimeClosed"
    assert server.process.returncode == 128 + signal.SIGTERM, err
    assert (out, err) == ("", "stopped by SIGTERM\n")
    assert harnesses_under(tmp_path) == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_second_sigterm_ends_the_server_at_once(tmp_path: Path) -> None:
    argv = ["-m", "agy_trio", "serve", "--port", "0"]
    with server_process(argv, offline_env(tmp_path), header_lines=2) as server:
        model_url = re.search(r"(http://\S+)/v1", server.lines[1])
        assert model_url is not None
        with httpx.Client(base_url=server.url, timeout=60) as client:
            fault = {"kind": "hang", "after_chunks": 3, "match": HOLD}
            client.post(f"{model_url.group(1)}/control/faults", json=fault).raise_for_status()
            agent_id = client.post("/v1/agents", json={}).json()["id"]
            (harness,) = harnesses_under(tmp_path)
            with connect_sse(
                client, "POST", f"/v1/agents/{agent_id}/chat", json={"prompt": f"{HOLD} now"}
            ) as source:
                stopping = False
                for event in source.iter_sse():
                    if event.event == "delta" and not stopping:
                        # A stalled harness: the clean shut-down now takes seconds.
                        # (Once: deltas already on their way may still arrive, and
                        # a second signal would end the server before it told us.)
                        stopping = True
                        os.kill(harness, signal.SIGSTOP)
                        server.process.send_signal(signal.SIGTERM)
                    elif event.event == "error":  # the first signal is being handled
                        assert event.json()["type"] == "RuntimeClosed"
                        server.process.send_signal(signal.SIGTERM)
                        break
        server.process.communicate(timeout=60)
    # Ended by the second signal itself, not by a clean-up run to its end.
    assert server.process.returncode == -signal.SIGTERM
    # The kernel kills the harness with Python (stopped or not); poll for its reaping.
    deadline = time.monotonic() + 30
    while harnesses_under(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert harnesses_under(tmp_path) == []
