"""Every protocol endpoint sits behind the same guards: token, host check, origin, body size."""

from __future__ import annotations

from typing import Any

import pytest

from tests.serve._helpers import TOKEN, served

# (method, path, JSON body) of every endpoint that runs anything.
ENDPOINTS: list[tuple[str, str, Any]] = [
    ("GET", "/v1/models", None),
    ("GET", "/v1/models/agy", None),
    ("POST", "/v1/responses", {"model": "agy", "input": "hi"}),
    ("GET", "/v1/responses/resp_x", None),
    ("POST", "/v1/responses/resp_x/cancel", None),
    ("POST", "/a2a", {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}),
    ("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"}),
]
A2A = {"a2a-version": "1.0"}
MCP = {"accept": "application/json, text/event-stream"}


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_a_missing_or_wrong_token_gets_401(method: str, path: str, body: Any) -> None:
    async with served(token=TOKEN, authorized=False) as s:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
            answer = await s.client.request(method, path, json=body, headers={**headers, **A2A})
            assert answer.status_code == 401, (path, headers)
            assert answer.headers["www-authenticate"] == "Bearer"
        assert s.runtime.agents == []
        # The card stays public: it is how a client learns it needs the token.
        card = await s.client.get("/.well-known/agent-card.json")
        assert card.status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_another_origin_gets_403(method: str, path: str, body: Any) -> None:
    async with served() as s:
        answer = await s.client.request(
            method, path, json=body, headers={"origin": "http://evil.example", **A2A, **MCP}
        )
        assert answer.status_code == 403
        assert s.runtime.agents == []


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_a_foreign_host_name_is_refused_without_a_token(
    method: str, path: str, body: Any
) -> None:
    # DNS rebinding: a page on evil.example that resolves its name to 127.0.0.1.
    async with served() as s:
        answer = await s.client.request(
            method, path, json=body, headers={"host": "evil.example", **A2A, **MCP}
        )
        assert answer.status_code == 400
        assert s.runtime.agents == []


# The server answers 413 before reading a body whose Content-Length is over
# the limit; httpx then abandons the generator that was uploading it, and
# Trio reports that generator (httpx's, not the server's) when it is collected.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object ByteStream.__aiter__"
    ":pytest.PytestUnraisableExceptionWarning"
)
@pytest.mark.parametrize("path", ["/v1/responses", "/a2a", "/mcp"])
async def test_a_body_over_the_limit_gets_413(path: str) -> None:
    async with served(max_body_bytes=1000) as s:
        body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "model": "agy", "x": "y" * 2000}
        answer = await s.client.post(path, json=body, headers={**A2A, **MCP})
        assert answer.status_code == 413
        assert s.runtime.agents == []
