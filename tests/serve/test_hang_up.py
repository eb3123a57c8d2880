"""A client that hangs up right after the response headers leaves no turn running."""

from __future__ import annotations

import json

import trio
import trio.testing

from tests.serve._helpers import create_agent, served

TRIES = 5
HANG = 10  # chat_timeout (30 s) is the only other thing that would end the turn


async def _hang_up_after_the_headers(port: int, agent_id: str) -> None:
    body = json.dumps({"prompt": "hang on"}).encode()
    request = (
        f"POST /v1/agents/{agent_id}/chat HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = await stream.receive_some()
            assert chunk, "the server closed the connection before its headers"
            received += chunk
        assert received.startswith(b"HTTP/1.1 200")
    # Closed: the server sees the client go as its turn is starting.


async def test_hanging_up_right_after_the_headers_cancels_the_turn() -> None:
    async with served() as s:
        agent_id = await create_agent(s.client)
        agent = s.runtime.agent(agent_id)
        for _ in range(TRIES):
            await _hang_up_after_the_headers(s.address.port, agent_id)
            with trio.fail_after(HANG):
                # The hanging turn was cancelled, not left to chat_timeout.
                await agent.wait_for_idle()
        # The turns' ends reach the runtime, and the streams unwind.
        await trio.testing.wait_all_tasks_blocked()
        assert s.runtime.statistics().active_turns == 0
        history = await agent.history()
        assert [m.text for m in history if m.role == "user"] == ["hang on"] * TRIES
        assert all(m.interrupted for m in history)
        metrics = (await s.client.get("/metrics")).text
        assert f"agy_trio_serve_disconnects_total {TRIES}" in metrics
