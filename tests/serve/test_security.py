"""Bearer token, loopback-only without one, body size limit, same origin, and no key in errors."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

import agy_trio
from agy_trio.errors import ConfigError
from agy_trio.serve import serve
from tests.serve._helpers import FAST, TOKEN, chat_events, create_agent, served

GEMINI_LIKE_KEY = "AIzaSyD-0123456789abcdefghijklmnopqrstu"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/agents"),
        ("POST", "/v1/agents"),
        ("POST", "/v1/agents/a-1/chat"),
        ("POST", "/v1/agents/a-1/cancel"),
        ("GET", "/v1/agents/a-1/history"),
        ("DELETE", "/v1/agents/a-1"),
        ("GET", "/v1/anything"),
    ],
)
async def test_with_a_token_every_v1_request_without_it_gets_401(method: str, path: str) -> None:
    async with served(token=TOKEN, authorized=False) as s:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
            answer = await s.client.request(method, path, headers=headers, json={})
            assert answer.status_code == 401, headers
            assert answer.headers["www-authenticate"] == "Bearer"
            assert answer.json()["error"]["type"] == "Unauthorized"
            assert TOKEN not in answer.text
        assert s.runtime.agents == []


async def test_with_the_token_the_api_works() -> None:
    async with served(token=TOKEN) as s:
        agent_id = await create_agent(s.client)
        events = await chat_events(s.client, agent_id, "authorised")
        assert events[-1].json()["text"] == "You said: authorised"


async def test_the_page_health_and_metrics_need_no_token() -> None:
    async with served(token=TOKEN, authorized=False) as s:
        for path in ("/", "/healthz", "/metrics"):
            assert (await s.client.get(path)).status_code == 200, path


async def test_a_body_over_the_limit_gets_413() -> None:
    async with served(max_body_bytes=1024) as s:
        big = {"name": "x", "system_instructions": "y" * 2000}
        answer = await s.client.post("/v1/agents", json=big)
        assert answer.status_code == 413
        agent_id = await create_agent(s.client)

        async def chunks() -> AsyncIterator[bytes]:
            # No Content-Length: the limit is enforced on the bytes as they arrive.
            yield b'{"prompt": "'
            for _ in range(4):
                yield b"z" * 512
            yield b'"}'

        answer = await s.client.post(f"/v1/agents/{agent_id}/chat", content=chunks())
        assert answer.status_code == 413
        assert s.runtime.statistics().commands.get("chat") is None


# The server answers 413 before reading a body whose Content-Length is over
# the limit; httpx then abandons the generator that was uploading it, and
# Trio reports that generator (httpx's, not the server's) when it is collected.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object ByteStream.__aiter__"
    ":pytest.PytestUnraisableExceptionWarning"
)
async def test_the_default_limit_is_one_mebibyte() -> None:
    async with served() as s:
        agent_id = await create_agent(s.client)
        answer = await s.client.post(
            f"/v1/agents/{agent_id}/chat", json={"prompt": "p" * (1024 * 1024)}
        )
        assert answer.status_code == 413
        events = await chat_events(s.client, agent_id, "p" * 1000)
        assert events[-1].event == "done"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7"])
async def test_refuses_a_non_loopback_host_without_a_token(host: str) -> None:
    async with agy_trio.open_runtime(FAST) as runtime:
        with pytest.raises(ConfigError, match="without a token") as caught:
            await serve(runtime, host=host, port=0)
        assert caught.value.field == "host"


async def test_a_wildcard_host_is_served_with_a_token() -> None:
    async with agy_trio.open_runtime(FAST) as runtime, trio.open_nursery() as nursery:
        address = await nursery.start(
            functools.partial(serve, runtime, host="0.0.0.0", port=0, token=TOKEN)
        )
        assert address.host == "127.0.0.1"
        async with httpx.AsyncClient(base_url=address.url) as client:
            assert (await client.get("/v1/agents")).status_code == 401
            answer = await client.get("/v1/agents", headers={"authorization": f"Bearer {TOKEN}"})
            assert answer.json() == []
        nursery.cancel_scope.cancel()


async def test_localhost_counts_as_loopback() -> None:
    async with agy_trio.open_runtime(FAST) as runtime, trio.open_nursery() as nursery:
        address = await nursery.start(functools.partial(serve, runtime, host="localhost", port=0))
        assert address.port > 0
        nursery.cancel_scope.cancel()


async def test_an_empty_token_is_refused() -> None:
    async with agy_trio.open_runtime(FAST) as runtime:
        with pytest.raises(ConfigError) as caught:
            await serve(runtime, port=0, token="  ")
        assert caught.value.field == "token"


async def test_a_busy_port_is_an_os_error() -> None:
    async with served() as s:
        with pytest.raises(OSError):
            await serve(s.runtime, port=s.address.port)


async def test_cross_origin_browser_requests_are_refused() -> None:
    async with served() as s:
        answer = await s.client.post(
            "/v1/agents", json={}, headers={"origin": "http://evil.example"}
        )
        assert answer.status_code == 403
        assert s.runtime.agents == []
        same = f"http://127.0.0.1:{s.address.port}"
        answer = await s.client.post("/v1/agents", json={}, headers={"origin": same})
        assert answer.status_code == 201


async def test_without_a_token_only_loopback_host_names_are_answered() -> None:
    # A web page that points its own domain at 127.0.0.1 (DNS rebinding) is refused.
    async with served() as s:
        answer = await s.client.get("/v1/agents", headers={"host": "attacker.example"})
        assert answer.status_code == 400
        for host in ("localhost", "127.0.0.1", f"localhost:{s.address.port}"):
            answer = await s.client.get("/v1/agents", headers={"host": host})
            assert answer.status_code == 200, host


async def test_error_bodies_never_contain_an_api_key() -> None:
    async with served(defaults=agy_trio.AgentConfig(api_key=GEMINI_LIKE_KEY)) as s:
        # A rejected key is not quoted back.
        for value in ([GEMINI_LIKE_KEY], {"key": GEMINI_LIKE_KEY}, f"  {GEMINI_LIKE_KEY}  \n" * 0):
            answer = await s.client.post("/v1/agents", json={"api_key": value})
            assert answer.status_code == 422
            assert answer.json()["error"]["field"] == "api_key"
            assert GEMINI_LIKE_KEY not in answer.text
        # An endpoint that echoes what it was sent (the server's default key, an
        # agent's own key, a key it never saw) has every one masked in the stream.
        own_key = "sk-agentsownkey0123456789"
        agent_id = await create_agent(s.client, api_key=own_key)
        stranger = "AIzaSyZ-somebody-elses-key-0123456789ab"
        events = await chat_events(
            s.client,
            agent_id,
            f"echo failure {GEMINI_LIKE_KEY} and {own_key} and {stranger} and ?key=abc123",
        )
        (error,) = events
        assert error.event == "error"
        payload = error.json()
        assert payload["type"] == "BackendError"
        for secret in (GEMINI_LIKE_KEY, own_key, stranger, "abc123"):
            assert secret not in error.data
        assert "***" in payload["message"]
        # Listing agents never shows keys either.
        assert own_key not in (await s.client.get("/v1/agents")).text


async def test_the_token_is_masked_in_errors_too() -> None:
    async with served(token=TOKEN) as s:
        agent_id = await create_agent(s.client)
        events = await chat_events(s.client, agent_id, f"echo failure {TOKEN}")
        assert TOKEN not in events[0].data


def _one_error_shape(answer: httpx.Response, status: int, kind: str) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert error["type"] == kind
    message: str = error["message"]
    assert isinstance(message, str) and message
    return message


# As in the 413 test above: httpx's own upload generator, abandoned.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object ByteStream.__aiter__"
    ":pytest.PytestUnraisableExceptionWarning"
)
async def test_every_refusal_is_json_of_one_shape() -> None:
    async with served(max_body_bytes=1024) as s:
        agent_id = await create_agent(s.client)
        chat = f"/v1/agents/{agent_id}/chat"
        bad_host = await s.client.get("/v1/agents", headers={"host": "evil.example:8000"})
        message = _one_error_shape(bad_host, 400, "BadRequest")
        assert "'evil.example:8000'" in message
        # A body over the limit, with Content-Length (refused unread) and chunked.
        declared = await s.client.post(chat, json={"prompt": "z" * 2000})
        message = _one_error_shape(declared, 413, "ContentTooLarge")
        assert "limit of 1,024 bytes" in message

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield b"z" * 512

        chunked = await s.client.post(chat, content=chunks())
        _one_error_shape(chunked, 413, "ContentTooLarge")
        _one_error_shape(await s.client.put(chat), 405, "MethodNotAllowed")
        _one_error_shape(await s.client.get("/v1/nowhere"), 404, "NotFound")
        _one_error_shape(await s.client.post("/v1/agents/nobody-1/chat"), 404, "AgentNotFound")
        cross = await s.client.post(chat, json={"prompt": "hi"}, headers={"origin": "http://x.y"})
        _one_error_shape(cross, 403, "Forbidden")
        _one_error_shape(await s.client.post(chat), 422, "ConfigError")
    async with served(token=TOKEN, authorized=False) as s:
        _one_error_shape(await s.client.get("/v1/agents"), 401, "Unauthorized")


async def test_the_bearer_scheme_is_case_insensitive() -> None:
    async with served(token=TOKEN, authorized=False) as s:
        for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
            answer = await s.client.get(
                "/v1/agents", headers={"authorization": f"{scheme} {TOKEN}"}
            )
            assert answer.status_code == 200, scheme
        for header in (f"Basic {TOKEN}", f"Bearer {TOKEN}x", TOKEN, f"Bearer{TOKEN}", "Bearer"):
            answer = await s.client.get("/v1/agents", headers={"authorization": header})
            assert answer.status_code == 401, header


def test_the_documented_status_table_lists_every_error_status() -> None:
    import re
    from pathlib import Path

    from agy_trio.serve import app

    table = (Path(__file__).resolve().parents[2] / "docs" / "serve.md").read_text()
    documented = {int(n) for n in re.findall(r"^\| (\d{3}) `", table, flags=re.MULTILINE)}
    sent = {status for _, status in app._STATUS_OF_ERROR} | set(app._HTTP_ERROR_TYPES)
    # 400: the Host check; 500: anything unexpected.
    assert sent | {400, 500} <= documented
