"""Structured output, MCP servers and budgets over ``POST /v1/agents``, through the real SDK."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agy_trio.testing.mcp_server import TABLE, open_mcp_http_server
from tests.sdk_support import harness_processes
from tests.serve._helpers import chat_events, create_agent
from tests.serve.test_sdk import sdk_server

pytestmark = pytest.mark.sdk

SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"type": "string"}, "score": {"type": "integer"}},
    "required": ["verdict", "score"],
}


@pytest.fixture(autouse=True)
def _offline_and_no_harness_left(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(name, raising=False)
    yield
    assert harness_processes() == [], "a localharness process outlived its test"


async def test_the_new_fields_work_over_http(tmp_path: Path) -> None:
    async with open_mcp_http_server("web") as mcp, sdk_server(tmp_path) as s:
        client = s.client
        # Structured output: the final event carries it, as JSON.
        judge = await create_agent(client, name="judge", response_schema=SCHEMA)
        answer = {"verdict": "fine", "score": 8}
        done = (await chat_events(client, judge, f"finish with {json.dumps(answer)}"))[-1]
        assert done.event == "done"
        assert done.json()["structured_output"] == answer
        plain = (await chat_events(client, judge, "no verdict now"))[-1].json()
        assert plain["structured_output"] is None

        # An HTTP MCP server, with a budget of one model call.
        server = {"type": "http", "name": "web", "url": mcp.url}
        searcher = await create_agent(client, mcp_servers=[server])
        events = await chat_events(client, searcher, 'call mcp tool web/lookup with {"key": "pi"}')
        (call,) = [e.json() for e in events if e.event == "tool_call"]
        assert (call["name"], call["server_name"]) == ("lookup", "web")
        assert TABLE["pi"] in events[-1].json()["text"]

        budgeted = await create_agent(client, mcp_servers=[server], budget={"max_model_calls": 1})
        events = await chat_events(client, budgeted, 'call mcp tool web/add with {"a": 1, "b": 1}')
        assert events[-1].json()["stop_reason"] == "max_model_calls_exceeded"


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"mcp_servers": [{"type": "stdio", "name": "sh", "command": "bash"}]}, "mcp_servers[0]"),
        ({"mcp_servers": [{"name": "sh", "command": "bash"}]}, "mcp_servers[0]"),
        ({"response_schema": "os:system"}, "response_schema"),
        ({"thinking_level": "high"}, "thinking_level"),  # the defaults' base_url refuses it
        ({"budget": {"max_tool_calls": 0}}, "budget"),
        ({"mcp_servers": [{"type": "http", "name": "a b", "url": "http://x"}]}, "mcp_servers"),
    ],
)
async def test_what_http_may_not_set_is_refused_naming_the_field(
    tmp_path: Path, fields: dict[str, Any], where: str
) -> None:
    async with sdk_server(tmp_path) as s:
        answer = await s.client.post("/v1/agents", json=fields)
        assert answer.status_code == 422, answer.text
        assert where in json.dumps(answer.json())
