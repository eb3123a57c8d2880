"""Model requests that never got through are asked again, through the real SDK and harness.

The local model server's fault injection cuts answers before their first
byte of content, and a server that goes away and comes back on the same port
stands for an endpoint restarting (connection refused meanwhile). Folders and
HOME live under ``tmp_path``; no ``localharness`` may outlive a test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import google.antigravity  # noqa: F401  (the README set-up installs the SDK)
import pytest
import trio
import trio.lowlevel

from agy_trio import AgentConfig
from agy_trio.adapters.antigravity import ConnectionRetry, RetryPolicy
from agy_trio.errors import BackendError
from agy_trio.testing import Fault, Reply, open_model_server
from tests.sdk_support import logged, sdk_agent, sdk_runtime

pytestmark = pytest.mark.sdk


def _config(url: str) -> AgentConfig:
    return AgentConfig(model="agy-trio-local", base_url=url)


def _prompts(server: Any, text: str) -> int:
    return sum(request.user_request == text for request in server.requests)


async def test_a_cut_before_any_output_is_asked_again_unseen(tmp_path: Path) -> None:
    async with open_model_server() as server, sdk_runtime(tmp_path) as (rt, backend):
        agent = await rt.create_agent(_config(server.url))
        server.inject_fault(Fault.disconnect(after_chunks=0, times=2))
        with trio.fail_after(30):
            response = await agent.chat("hello")
            assert await response.text() == "You said: hello"
        assert response.error is None
        assert _prompts(server, "hello") == 3
        stats = backend.statistics()
        assert stats.reconnects == 2 and stats.retries == 0
        assert [(m.role, m.text) for m in await agent.history()][-1] == (
            "assistant",
            "You said: hello",
        )


async def test_the_retries_are_bounded(tmp_path: Path) -> None:
    quick = ConnectionRetry(retries=2, initial_backoff=0.01)
    async with (
        open_model_server() as server,
        sdk_runtime(tmp_path, connection_retry=quick) as (rt, backend),
    ):
        agent = await rt.create_agent(_config(server.url))
        server.inject_fault(Fault.disconnect(after_chunks=0, times=None))
        with trio.fail_after(30):
            with pytest.raises(BackendError, match="EOF"):
                await (await agent.chat("never")).text()
            assert _prompts(server, "never") == 3  # the first try and two retries
            assert backend.statistics().reconnects == 2
            server.clear_faults()
            assert await (await agent.chat("now")).text() == "You said: now"


async def test_switched_off_a_cut_is_an_error_at_once(tmp_path: Path) -> None:
    async with (
        open_model_server() as server,
        sdk_runtime(tmp_path, connection_retry=None) as (rt, backend),
    ):
        agent = await rt.create_agent(_config(server.url))
        server.inject_fault(Fault.disconnect(after_chunks=0))
        with trio.fail_after(30), pytest.raises(BackendError):
            await (await agent.chat("once")).text()
        assert _prompts(server, "once") == 1
        assert backend.statistics().reconnects == 0


async def test_a_cut_after_output_is_not_asked_again(tmp_path: Path) -> None:
    def reply(request: Any) -> Reply:
        return Reply("one two three four five six", chunk_size=4)

    async with open_model_server(reply) as server:
        # With or without a RetryPolicy: a cut answer has no HTTP status, so
        # the policy does not retry it either (as before).
        retry = RetryPolicy(initial_backoff=0.01)
        for folder, options in (("plain", {}), ("policy", {"retry": retry})):
            async with sdk_agent(tmp_path / folder, _config(server.url), **options) as (
                agent,
                backend,
            ):
                server.inject_fault(Fault.disconnect(after_chunks=3))
                received: list[str] = []
                with trio.fail_after(30), pytest.raises(BackendError, match="EOF"):
                    async for delta in await agent.chat(f"cut mid-answer {folder}"):
                        received.append(delta)
                assert received  # delivered before the cut
                assert _prompts(server, f"cut mid-answer {folder}") == 1
                assert backend.statistics().reconnects == 0
                assert await (await agent.chat("next")).text() == "one two three four five six"


@pytest.fixture
async def reconnecting() -> AsyncIterator[trio.Event]:
    """An event set when the backend logs its first request asked again."""
    with logged("did not get through") as event:
        yield event


async def test_an_endpoint_restart_is_ridden_out(tmp_path: Path, reconnecting: trio.Event) -> None:
    async with sdk_runtime(tmp_path) as (rt, backend):
        async with open_model_server() as first:
            port = first.port
            agent = await rt.create_agent(_config(first.url))
            assert await (await agent.chat("before")).text() == "You said: before"
        # The endpoint is down: the next request is refused (or finds its
        # kept-alive connection closed), and asked again until it is back.
        answer: list[str] = []

        async def ask(done: trio.Event) -> None:
            answer.append(await (await agent.chat("during")).text())
            done.set()

        answered = trio.Event()
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask, answered)
                await reconnecting.wait()
                async with open_model_server(port=port) as second:
                    await answered.wait()
        assert answer == ["You said: during"]
        assert _prompts(second, "during") == 1
        assert backend.statistics().reconnects >= 1
