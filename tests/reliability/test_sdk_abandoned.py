"""A response nobody reads never holds its agent (real SDK, local model server).

The answer is about 3,000 streamed chunks, far more than the stream's
backpressure limit: unreleased, the harness side of the turn would wait for a
reader forever and the next chat would time out with its prompt lost.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from agy_trio import RuntimeConfig
from agy_trio.testing import ChatRequest, Reply, open_model_server
from tests.sdk_support import local_agent, sdk_runtime

pytestmark = [pytest.mark.sdk, pytest.mark.usefixtures("offline", "no_harness_left")]

LONG_MARK = "long answer please"
CHUNKS = 3000
LONG = "".join(f"{i:04d}" for i in range(CHUNKS))
# chat_timeout far beyond the bound below: a held agent shows as a hang.
CONFIG = RuntimeConfig(inter_agent_delay=0, chat_timeout=120)
HANG = 60


def _responder(request: ChatRequest) -> Reply | None:
    if LONG_MARK in request.user_request:
        return Reply(LONG, chunk_size=4)
    return None


@pytest.fixture
async def server() -> AsyncIterator[Any]:
    async with open_model_server(_responder) as model_server:
        yield model_server


async def test_a_dropped_response_does_not_hold_the_agent(tmp_path: Path, server: Any) -> None:
    async with sdk_runtime(tmp_path, CONFIG, stream_high_water=16, stream_batch_max=8) as (rt, _):
        agent = await rt.create_agent(local_agent(server))
        await agent.chat(LONG_MARK)  # dropped at once, unread
        gc.collect()
        with trio.fail_after(HANG):
            response = await agent.chat("next")
            assert await response.text() == "You said: next"
        history = [(m.role, m.text) for m in await agent.history()]
        assert history == [
            ("user", LONG_MARK),
            ("assistant", LONG),
            ("user", "next"),
            ("assistant", "You said: next"),
        ]
        assert await agent.turn_count() == 2


async def test_break_out_of_async_for_then_chat_again(tmp_path: Path, server: Any) -> None:
    async with sdk_runtime(tmp_path, CONFIG, stream_high_water=16, stream_batch_max=8) as (rt, _):
        agent = await rt.create_agent(local_agent(server))
        seen = []
        async for delta in await agent.chat(LONG_MARK):
            seen.append(delta)
            if len(seen) == 3:
                break
        assert "".join(seen) == LONG[: len("".join(seen))]
        with trio.fail_after(HANG):
            assert await (await agent.chat("again")).text() == "You said: again"
        users = [m.text for m in await agent.history() if m.role == "user"]
        assert users == [LONG_MARK, "again"]
