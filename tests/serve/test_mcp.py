"""The MCP server at /mcp, driven by the real ``mcp`` client over streamable HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from agy_trio.serve import ServerAddress
from tests.serve._helpers import TOKEN, served


@asynccontextmanager
async def mcp_client(address: ServerAddress, token: str | None = None) -> AsyncIterator[Client]:
    """The real client; its own httpx2 client carries the token, and is closed after it."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(f"{address.url}/mcp", http_client=http)) as client,
    ):
        yield client


async def test_the_tools_chat_and_keep_the_conversation() -> None:
    async with served() as s, mcp_client(s.address) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == {
            "list_profiles",
            "start_conversation",
            "chat",
            "history",
            "end_conversation",
        }
        assert "conversation_id" in tools["chat"].input_schema["properties"]

        profiles = await client.call_tool("list_profiles", {})
        assert profiles.structured_content == {
            "result": [{"name": "agy", "description": "", "model": None, "tools": []}]
        }

        first = await client.call_tool("chat", {"prompt": "hello"})
        assert not first.is_error
        assert first.structured_content is not None
        assert first.structured_content["answer"] == "You said: hello"
        assert first.structured_content["stop_reason"] == "end_turn"
        conversation = first.structured_content["conversation_id"]
        assert [a.agent_id for a in s.runtime.agents] == [conversation]

        again = {"prompt": "again", "conversation_id": conversation}
        second = await client.call_tool("chat", again)
        assert second.structured_content is not None
        assert second.structured_content["conversation_id"] == conversation
        history = await client.call_tool("history", {"conversation_id": conversation})
        assert history.structured_content == {
            "result": [
                {"role": "user", "text": "hello"},
                {"role": "assistant", "text": "You said: hello"},
                {"role": "user", "text": "again"},
                {"role": "assistant", "text": "You said: again"},
            ]
        }

        started = await client.call_tool("start_conversation", {})
        assert started.structured_content is not None
        fresh = started.structured_content["conversation_id"]
        assert fresh != conversation
        empty = await client.call_tool("history", {"conversation_id": fresh})
        assert empty.structured_content == {"result": []}

        ended = await client.call_tool("end_conversation", {"conversation_id": fresh})
        assert not ended.is_error
        assert [a.agent_id for a in s.runtime.agents] == [conversation]
        gone = await client.call_tool("history", {"conversation_id": fresh})
        assert gone.is_error


async def test_bad_calls_are_tool_errors_and_change_nothing() -> None:
    async with served() as s, mcp_client(s.address) as client:
        for name, arguments in (
            ("history", {"conversation_id": "agent-404"}),
            ("chat", {"prompt": "hi", "conversation_id": "agent-404"}),
            ("chat", {"prompt": "   "}),
            ("chat", {"prompt": "hi", "profile": "nobody"}),
            ("start_conversation", {"profile": "nobody"}),
            ("end_conversation", {"conversation_id": "agent-404"}),
            ("chat", {"prompt": 5}),
        ):
            result = await client.call_tool(name, arguments)
            assert result.is_error, (name, arguments)
            assert result.content and "Traceback" not in str(result.content)
        assert s.runtime.agents == []

        failed = await client.call_tool("chat", {"prompt": "quota"})
        assert failed.is_error
        assert "slow down" in str(failed.content)


# The server answers 413 before reading a body whose Content-Length is over
# the limit; httpx then abandons the generator that was uploading it, and
# Trio reports that generator (httpx's, not the server's) when it is collected.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object ByteStream.__aiter__"
    ":pytest.PytestUnraisableExceptionWarning"
)
async def test_a_body_over_the_limit_gets_413() -> None:
    async with served() as s:
        huge = {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": "y" * 2_000_000}}
        answer = await s.client.post("/mcp", json=huge)
        assert answer.status_code == 413


async def test_a_token_guards_mcp() -> None:
    async with served(token=TOKEN, authorized=False) as s:
        async with httpx.AsyncClient(base_url=s.address.url) as raw:
            answer = await raw.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
            assert answer.status_code == 401
        # The client reports the refused handshake as its own error, from its task group.
        with pytest.raises(ExceptionGroup) as refused:
            async with mcp_client(s.address, token="wrong") as client:
                await client.list_tools()
        assert refused.group_contains(MCPError, depth=None)
        async with mcp_client(s.address, token=TOKEN) as client:
            result = await client.call_tool("chat", {"prompt": "hi"})
            assert result.structured_content is not None
            assert result.structured_content["answer"] == "You said: hi"
