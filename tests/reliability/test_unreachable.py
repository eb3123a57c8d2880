"""A model endpoint nobody can reach fails the turn with EndpointUnreachable, naming the cause.

Two ways of being unreachable: an OpenAI-compatible ``base_url`` on which
nobody listens (the harness fails at once), and the Gemini API with no way
out (the harness would retry on its own until ``chat_timeout``; a proxy that
refuses connections stands in for a machine without network, so the test
behaves the same with or without one). Either way the caller gets a
``BackendError`` subclass that names the cause, and a ``RetryPolicy`` retries.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel

from agy_trio import AgentConfig, RuntimeConfig
from agy_trio.adapters.antigravity import RetryPolicy
from agy_trio.errors import BackendError, EndpointUnreachable, OperationTimeout
from agy_trio.testing import open_model_server
from tests.conversations import user_prompts
from tests.sdk_support import logged, sdk_agent

pytestmark = [pytest.mark.sdk, pytest.mark.usefixtures("offline", "no_harness_left")]

# chat_timeout far away: only the unreachable endpoint may end the turn.
CONFIG = RuntimeConfig(inter_agent_delay=0, chat_timeout=120)
HANG = 60


@pytest.fixture
def free_port() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield port  # closed again: nobody listens there


def _local(port: int) -> AgentConfig:
    return AgentConfig(model="agy-trio-local", base_url=f"http://127.0.0.1:{port}/v1")


async def test_a_base_url_nobody_listens_on(tmp_path: Path, free_port: int) -> None:
    async with sdk_agent(tmp_path, _local(free_port), CONFIG) as (agent, _):
        for prompt in ("first", "second"):
            with trio.fail_after(HANG):
                response = await agent.chat(prompt)
                with pytest.raises(EndpointUnreachable) as info:
                    await response.text()
            assert isinstance(info.value, BackendError)
            assert "connection refused" in str(info.value)
            assert f"127.0.0.1:{free_port}" in str(info.value)


async def test_a_closed_port_fails_at_once_and_leaves_the_agent_idle(
    tmp_path: Path, free_port: int
) -> None:
    async with sdk_agent(tmp_path, _local(free_port), CONFIG) as (agent, backend):
        for prompt in ("first", "second"):
            with trio.fail_after(HANG), pytest.raises(EndpointUnreachable):
                await (await agent.chat(prompt)).text()
            # Told at once: the agent is ready again, and nothing was asked again.
            assert await agent.is_idle()
        assert backend.statistics().reconnects == 0


async def test_retry_policy_retries_an_unreachable_endpoint(tmp_path: Path, free_port: int) -> None:
    retry = RetryPolicy(attempts=3, initial_backoff=0.05)
    async with sdk_agent(tmp_path, _local(free_port), CONFIG, retry=retry) as (agent, backend):
        with trio.fail_after(HANG), pytest.raises(EndpointUnreachable):
            await (await agent.chat("hello")).text()
        assert backend.statistics().retries == 2


async def test_a_retry_reaches_an_endpoint_that_came_up(tmp_path: Path, free_port: int) -> None:
    retry = RetryPolicy(attempts=6, initial_backoff=1.0, multiplier=1.0)
    with logged("retrying") as first_retry:
        async with sdk_agent(tmp_path, _local(free_port), CONFIG, retry=retry) as (agent, _):
            response = await agent.chat("are you there?")
            with trio.fail_after(HANG):
                await first_retry.wait()
                # The endpoint comes up while the turn waits to try again.
                async with open_model_server(port=free_port):
                    assert await response.text() == "You said: are you there?"
            assert response.error is None
            assert await user_prompts(agent) == ["are you there?"]


@pytest.fixture
def no_way_out(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every HTTPS request of the harness goes to a proxy that refuses it; the
    # SDK's own WebSocket to the harness stays on loopback.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.mark.usefixtures("no_way_out")
async def test_the_gemini_api_with_no_way_out(tmp_path: Path) -> None:
    config = AgentConfig(api_key="not-a-real-key")
    retry = RetryPolicy(attempts=2, initial_backoff=0.05)
    options: dict[str, Any] = {"unreachable_timeout": 1.0, "retry": retry}
    async with sdk_agent(tmp_path, config, CONFIG, **options) as (agent, backend):
        with trio.fail_after(HANG):
            response = await agent.chat("hello")
            with pytest.raises(EndpointUnreachable) as info:
                await response.text()
        assert not isinstance(info.value, OperationTimeout)
        assert "127.0.0.1:1" in str(info.value)
        assert backend.statistics().retries == 1
        # The prompt went (the harness recorded it) and is shown once.
        assert await user_prompts(agent) == ["hello"]
        assert await agent.is_idle()
