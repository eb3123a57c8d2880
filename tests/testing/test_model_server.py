"""The local OpenAI-compatible model server, exercised over real loopback HTTP."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agy_trio.testing import (
    ChatRequest,
    CompletionUsage,
    Fault,
    FaultKind,
    ModelServer,
    Reply,
    ToolCallSpec,
    default_reply,
    open_model_server,
    reply_from_json,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MINIMAL: dict[str, Any] = json.loads((FIXTURES / "sdk_request_minimal.json").read_text())
DEFAULT: dict[str, Any] = json.loads((FIXTURES / "sdk_request_default.json").read_text())

# Every test is bounded: a server that fails to shut down fails the test instead of hanging it.
pytestmark = pytest.mark.timeout(20)


# -- helpers ------------------------------------------------------------------------


def harness_request(text: str, *, stream: bool = True, marker: str | None = None) -> dict[str, Any]:
    """A copy of the harness's minimal request with another user request in it."""
    body = copy.deepcopy(MINIMAL)
    body["stream"] = stream
    if marker is not None:
        body["messages"][0]["content"] = f"<System>\nYou are {marker}.\n</System>"
    body["messages"][1]["content"] = (
        f"<USER_REQUEST>\n{text}\n</USER_REQUEST>\n<ADDITIONAL_METADATA>\n"
        "The current local time is: 2026-11-23T20:05:51Z.\n</ADDITIONAL_METADATA>"
    )
    return body


def parse_sse(raw: str) -> list[Any]:
    """Split an SSE body into its data payloads: JSON objects, then the literal ``[DONE]``."""
    assert raw.endswith("\n\n"), "every SSE event ends with a blank line"
    events: list[Any] = []
    for block in raw.split("\n\n")[:-1]:
        assert block.startswith("data: "), block
        data = block.removeprefix("data: ")
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


def content_of(events: list[Any]) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or ""
        for e in events
        if isinstance(e, dict) and e["choices"]
    )


def tool_calls_of(events: list[Any]) -> dict[int, dict[str, Any]]:
    calls: dict[int, dict[str, Any]] = {}
    for event in events:
        if not isinstance(event, dict) or not event["choices"]:
            continue
        for piece in event["choices"][0]["delta"].get("tool_calls", []):
            call = calls.setdefault(piece["index"], {"arguments": "", "chunks": 0})
            if "id" in piece:
                assert "id" not in call, "id is sent once, in the first chunk"
                call.update(id=piece["id"], type=piece["type"], name=piece["function"]["name"])
            call["arguments"] += piece["function"].get("arguments", "")
            call["chunks"] += 1
    return calls


async def post_stream(client: httpx.AsyncClient, server: ModelServer, body: Any) -> list[Any]:
    response = await client.post(f"{server.url}/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return parse_sse(response.text)


def all_tasks() -> set[trio.lowlevel.Task]:
    tasks: set[trio.lowlevel.Task] = set()
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        assert task is not None
        tasks.add(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return tasks


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


def test_every_public_name_is_importable_from_both_paths() -> None:
    import agy_trio.testing
    import agy_trio.testing.model_server as model_server

    for name in agy_trio.testing.__all__:
        assert getattr(model_server, name) is getattr(agy_trio.testing, name)
    assert set(agy_trio.testing.__all__) < set(model_server.__all__)
    for name in model_server.__all__:
        assert getattr(model_server, name) is not None


# -- wire format ------------------------------------------------------------------------


async def test_url_and_real_port() -> None:
    async with open_model_server(port=0) as server:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}/v1"
        assert server.root_url == f"http://127.0.0.1:{server.port}"


async def test_streams_the_harness_minimal_request(
    server: ModelServer, client: httpx.AsyncClient
) -> None:
    events = await post_stream(client, server, MINIMAL)

    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["model"] == "fake" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content_chunks = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(content_chunks) >= 2
    assert content_of(chunks) == "You said: hi"
    finish = chunks[-2]["choices"][0]
    assert finish["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_usage_chunk_only_when_asked(server: ModelServer, client: httpx.AsyncClient) -> None:
    body = copy.deepcopy(MINIMAL)
    del body["stream_options"]
    events = await post_stream(client, server, body)
    assert all(e == "[DONE]" or e["choices"] for e in events)


async def test_streams_the_harness_default_request(
    server: ModelServer, client: httpx.AsyncClient
) -> None:
    events = await post_stream(client, server, DEFAULT)
    assert content_of(events[:-1]) == "You said: hello"
    assert events[-2]["usage"]["prompt_tokens"] > 10_000  # ~15k tokens of system prompt and tools


async def test_default_tool_call_convention(server: ModelServer, client: httpx.AsyncClient) -> None:
    body = harness_request('What is it like? call tool get_weather with {"city": "Paris"} thanks')
    events = await post_stream(client, server, body)

    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    calls = tool_calls_of(chunks)
    assert list(calls) == [0]
    call = calls[0]
    assert call["type"] == "function"
    assert call["name"] == "get_weather"
    assert call["id"].startswith("call_")
    assert call["chunks"] >= 3  # the head, then arguments split across several chunks
    arguments = json.loads(call["arguments"])
    assert arguments["city"] == "Paris"
    # The harness requires (and strips) these two on every tool it declares.
    assert isinstance(arguments["toolAction"], str)
    assert arguments["toolAction"]
    assert isinstance(arguments["toolSummary"], str)
    assert arguments["toolSummary"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []


async def test_default_parallel_tool_calls_without_arguments(
    server: ModelServer, client: httpx.AsyncClient
) -> None:
    body = harness_request("call tool get_weather and then call tool get_weather with {}")
    calls = tool_calls_of(await post_stream(client, server, body))
    assert sorted(calls) == [0, 1]
    assert calls[0]["id"] != calls[1]["id"]
    for call in calls.values():
        assert set(json.loads(call["arguments"])) == {"toolAction", "toolSummary"}


async def test_tool_call_at_the_end_of_a_sentence(
    server: ModelServer, client: httpx.AsyncClient
) -> None:
    calls = tool_calls_of(
        await post_stream(client, server, harness_request("Call tool get_weather."))
    )
    assert calls[0]["name"] == "get_weather"


async def test_unknown_tool_is_answered_with_text(
    server: ModelServer, client: httpx.AsyncClient
) -> None:
    body = harness_request('call tool launch_rockets with {"count": 3}')
    events = await post_stream(client, server, body)
    assert tool_calls_of(events) == {}
    assert content_of(events[:-1]) == 'You said: call tool launch_rockets with {"count": 3}'


async def test_tool_result_is_quoted(server: ModelServer, client: httpx.AsyncClient) -> None:
    body = harness_request('call tool get_weather with {"city": "Oslo"}')
    body["messages"] += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": (
                "Created At: 2026-11-25T03:03:22Z\nTool response for get_weather:\n"
                '```json\n{"result": "snow in Oslo"}\n```'
            ),
        },
    ]
    events = await post_stream(client, server, body)
    assert tool_calls_of(events) == {}
    assert content_of(events[:-1]) == 'Tool get_weather returned: {"result": "snow in Oslo"}'
    assert events[-3]["choices"][0]["finish_reason"] == "stop"


async def test_non_streaming_completion(server: ModelServer, client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{server.url}/chat/completions",
        json=harness_request('call tool get_weather with {"city": "Rome"}', stream=False),
    )
    assert response.status_code == 200
    completion = response.json()
    assert completion["object"] == "chat.completion"
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["role"] == "assistant"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"])["city"] == "Rome"
    usage = completion["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_path_without_v1_prefix_and_simple_endpoints(
    server: ModelServer, client: httpx.AsyncClient
) -> None:
    response = await client.post(f"{server.root_url}/chat/completions", json=MINIMAL)
    assert response.status_code == 200
    assert content_of(parse_sse(response.text)[:-1]) == "You said: hi"
    models = (await client.get(f"{server.url}/models")).json()
    assert models["object"] == "list"
    assert models["data"][0]["object"] == "model"
    assert (await client.get(f"{server.root_url}/health")).json() == {"status": "ok"}
    assert (await client.get(f"{server.root_url}/nowhere")).status_code == 404
    assert (await client.get(f"{server.url}/chat/completions")).status_code == 405


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b""])
async def test_malformed_body_is_a_400(
    server: ModelServer, client: httpx.AsyncClient, content: bytes
) -> None:
    response = await client.post(f"{server.url}/chat/completions", content=content)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert server.requests == []


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/nowhere", 404), ("GET", "/v1/chat/completions", 405), ("POST", "/health", 405)],
)
async def test_routing_errors_are_openai_errors(
    server: ModelServer, client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(method, f"{server.root_url}{path}")
    assert response.status_code == status
    error = response.json()["error"]
    assert path in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    if status == 405:
        assert "allow" in response.headers


async def test_a_body_over_the_limit_is_refused(
    monkeypatch: pytest.MonkeyPatch, client: httpx.AsyncClient
) -> None:
    monkeypatch.setattr("agy_trio.testing.app._MAX_BODY_BYTES", 1000)
    async with open_model_server() as server:
        response = await client.post(f"{server.url}/chat/completions", json=MINIMAL)
        assert response.status_code == 413
        assert server.requests == []


async def test_a_client_that_leaves_mid_body_gets_nothing_and_breaks_nothing(
    server: ModelServer, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    stream = await trio.open_tcp_stream(server.host, server.port)
    async with stream:
        await stream.send_all(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
            b'content-type: application/json\r\ncontent-length: 1000\r\n\r\n{"messa'
        )
        await trio.testing.wait_all_tasks_blocked()
    await trio.testing.wait_all_tasks_blocked()
    assert server.requests == []
    assert server.statistics().in_flight == 0
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert (await post_stream(client, server, MINIMAL))[-1] == "[DONE]"


# -- scripts ------------------------------------------------------------------------


async def test_script_replies_in_order_then_default(client: httpx.AsyncClient) -> None:
    script = [
        Reply("abcdef", chunk_size=2),
        Reply(
            "Let me check.",
            tool_calls=[ToolCallSpec("get_weather", {"city": "Lima"}, id="call_mine")],
            chunk_size=4,
        ),
        Reply(tool_calls=[ToolCallSpec("get_weather", '{"city": ')], finish_reason="stop"),
    ]
    async with open_model_server(script) as server:
        first = await post_stream(client, server, MINIMAL)
        pieces = [c["choices"][0]["delta"].get("content") for c in first[1:-3]]
        assert pieces == ["ab", "cd", "ef"]

        second = await post_stream(client, server, MINIMAL)
        assert content_of(second[:-1]) == "Let me check."
        call = tool_calls_of(second)[0]
        assert call["id"] == "call_mine"
        assert json.loads(call["arguments"]) == {
            "city": "Lima",
            "toolAction": "Calling get_weather",
            "toolSummary": "get_weather call",
        }

        third = await post_stream(client, server, MINIMAL)
        assert tool_calls_of(third)[0]["arguments"] == '{"city": '  # verbatim, even if broken
        assert third[-3]["choices"][0]["finish_reason"] == "stop"

        assert server.statistics().pending_replies == 0
        assert content_of((await post_stream(client, server, MINIMAL))[:-1]) == "You said: hi"


async def test_responder_that_raises_is_a_500(client: httpx.AsyncClient) -> None:
    def responder(request: ChatRequest) -> Reply | None:
        raise RuntimeError("script bug")

    async with open_model_server(responder) as server:
        response = await client.post(f"{server.url}/chat/completions", json=MINIMAL)
    assert response.status_code == 500
    assert "script bug" in response.json()["error"]["message"]


async def test_add_replies_at_run_time(server: ModelServer, client: httpx.AsyncClient) -> None:
    server.add_replies(Reply("late"))
    assert content_of((await post_stream(client, server, MINIMAL))[:-1]) == "late"


async def test_responder_callable(client: httpx.AsyncClient) -> None:
    def responder(request: ChatRequest) -> Reply | None:
        if "shout" in request.user_request:
            return Reply(request.user_request.upper(), usage=CompletionUsage(7, 3))
        return None

    async with open_model_server(responder) as server:
        events = await post_stream(client, server, harness_request("shout this"))
        assert content_of(events[:-1]) == "SHOUT THIS"
        assert events[-2]["usage"] == {
            "prompt_tokens": 7,
            "completion_tokens": 3,
            "total_tokens": 10,
        }
        events = await post_stream(client, server, harness_request("whisper"))
        assert content_of(events[:-1]) == "You said: whisper"


def test_default_reply_without_wrapping_or_tools() -> None:
    request = ChatRequest(
        1, 0.0, "/v1/chat/completions", {"messages": [{"role": "user", "content": "plain"}]}
    )
    assert default_reply(request) == Reply("You said: plain")
    request = ChatRequest(
        2,
        0.0,
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "call tool x"}]}]},
    )
    assert default_reply(request) == Reply("You said: call tool x")


def test_script_objects_validate() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        Reply("x", chunk_size=0)
    with pytest.raises(ValueError, match="finish_reason"):
        Reply("x", finish_reason="done")
    with pytest.raises(ValueError, match="status"):
        Fault.http_error(200)
    with pytest.raises(ValueError, match="times"):
        Fault.hang(times=0)
    with pytest.raises(ValueError):
        Fault.from_json({"kind": "explode"})
    with pytest.raises(ValueError, match="unknown"):
        Fault.from_json({"kind": "hang", "forever": True})
    with pytest.raises(TypeError):
        Fault.from_json(["hang"])


@given(
    kind=st.sampled_from(FaultKind),
    status=st.integers(400, 599),
    retry_after=st.none() | st.integers(0, 3600),
    match=st.none() | st.text(max_size=10),
    times=st.none() | st.integers(1, 5),
)
def test_fault_json_round_trip(
    kind: FaultKind, status: int, retry_after: int | None, match: str | None, times: int | None
) -> None:
    fault = Fault(kind, status=status, retry_after=retry_after, match=match, times=times)
    assert Fault.from_json(json.loads(json.dumps(fault.to_json()))) == fault


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=60), chunk_size=st.integers(1, 16))
async def test_streamed_text_reassembles(text: str, chunk_size: int) -> None:
    async with (
        open_model_server([Reply(text, chunk_size=chunk_size)]) as server,
        httpx.AsyncClient() as client,
    ):
        events = await post_stream(client, server, MINIMAL)
    pieces = [e["choices"][0]["delta"].get("content", "") for e in events[1:-3]]
    assert "".join(pieces) == text
    assert all(0 < len(p) <= chunk_size for p in pieces)


# -- faults ------------------------------------------------------------------------


async def test_rate_limit_has_retry_after_and_openai_error(
    server: ModelServer, client: httpx.AsyncClient
) -> None:
    server.add_replies(Reply("after the storm"))
    server.inject_fault(Fault.rate_limit(retry_after=7))
    response = await client.post(f"{server.url}/chat/completions", json=MINIMAL)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    error = response.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert isinstance(error["message"], str)
    # The fault is used up, and the failed request did not eat the scripted reply.
    assert content_of((await post_stream(client, server, MINIMAL))[:-1]) == "after the storm"


@pytest.mark.parametrize("status", [400, 401, 500, 503])
async def test_http_error_faults(
    server: ModelServer, client: httpx.AsyncClient, status: int
) -> None:
    server.inject_fault(Fault.http_error(status, message="boom"))
    response = await client.post(f"{server.url}/chat/completions", json=MINIMAL)
    assert response.status_code == status
    assert response.json()["error"]["message"] == "boom"
    assert "retry-after" not in response.headers
    assert (await client.post(f"{server.url}/chat/completions", json=MINIMAL)).status_code == 200


async def test_fault_times(server: ModelServer, client: httpx.AsyncClient) -> None:
    server.inject_fault(Fault.http_error(500, times=2))
    statuses = [
        (await client.post(f"{server.url}/chat/completions", json=MINIMAL)).status_code
        for _ in range(3)
    ]
    assert statuses == [500, 500, 200]

    server.inject_fault(Fault.http_error(503, times=None))
    for _ in range(3):
        response = await client.post(f"{server.url}/chat/completions", json=MINIMAL)
        assert response.status_code == 503
    assert server.pending_faults == [Fault.http_error(503, times=None)]
    assert server.clear_faults() == 1
    assert (await client.post(f"{server.url}/chat/completions", json=MINIMAL)).status_code == 200


async def test_disconnect_mid_stream(server: ModelServer, client: httpx.AsyncClient) -> None:
    server.inject_fault(Fault.disconnect(after_chunks=2))
    received: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        async with client.stream("POST", f"{server.url}/chat/completions", json=MINIMAL) as r:
            assert r.status_code == 200
            async for line in r.aiter_lines():
                if line:
                    received.append(line)
    assert len(received) == 2
    assert json.loads(received[0].removeprefix("data: "))["choices"][0]["delta"]["role"] == (
        "assistant"
    )
    assert "data: [DONE]" not in received
    # The server is fine afterwards.
    assert (await post_stream(client, server, MINIMAL))[-1] == "[DONE]"


async def test_disconnect_non_streaming(server: ModelServer, client: httpx.AsyncClient) -> None:
    server.inject_fault(Fault.disconnect())
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(
            f"{server.url}/chat/completions", json=harness_request("hi", stream=False)
        )


async def test_slow_stream(server: ModelServer, client: httpx.AsyncClient) -> None:
    delay = 0.03
    server.inject_fault(Fault.slow(delay))
    start = trio.current_time()
    events = await post_stream(client, server, MINIMAL)
    elapsed = trio.current_time() - start
    # Every event, [DONE] included, waited at least the delay.
    assert elapsed >= len(events) * delay
    assert content_of(events[:-1]) == "You said: hi"


async def test_hang_until_released(server: ModelServer, client: httpx.AsyncClient) -> None:
    server.inject_fault(Fault.hang())
    results: list[list[Any]] = []

    async def ask() -> None:
        results.append(await post_stream(client, server, MINIMAL))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask)
        await server.wait_for_hung(1)
        assert results == []
        assert server.statistics().hung == 1
        assert server.release_hangs() == 1
    assert content_of(results[0][:-1]) == "You said: hi"
    assert server.statistics().hung == 0


@pytest.mark.parametrize("after_chunks", [0, 1])
async def test_non_streaming_hang_until_released(
    server: ModelServer, client: httpx.AsyncClient, after_chunks: int
) -> None:
    server.inject_fault(Fault.hang(after_chunks=after_chunks))
    responses: list[httpx.Response] = []

    async def ask() -> None:
        body = harness_request("patience", stream=False)
        responses.append(await client.post(f"{server.url}/chat/completions", json=body))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask)
        await server.wait_for_hung(1)
        assert server.release_hangs() == 1
    assert responses[0].json()["choices"][0]["message"]["content"] == "You said: patience"


async def test_hang_mid_stream_until_released(
    server: ModelServer, client: httpx.AsyncClient
) -> None:
    server.inject_fault(Fault.hang(after_chunks=2))
    lines: list[str] = []

    async def ask() -> None:
        async with client.stream("POST", f"{server.url}/chat/completions", json=MINIMAL) as r:
            lines.extend([line async for line in r.aiter_lines() if line])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask)
        await server.wait_for_hung(1)
        server.release_hangs()
    assert lines[-1] == "data: [DONE]"


async def test_hang_is_ended_by_shutdown_and_no_task_is_left(client: httpx.AsyncClient) -> None:
    before = all_tasks()
    outcomes: dict[str, Any] = {}

    async def ask(server: ModelServer, name: str, text: str) -> None:
        try:
            response = await client.post(
                f"{server.url}/chat/completions", json=harness_request(text)
            )
        except httpx.HTTPError as error:
            outcomes[name] = error
        else:
            outcomes[name] = response.status_code

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery, open_model_server() as server:
            assert len(all_tasks()) > len(before)
            server.inject_fault(Fault.hang(match="before-headers"))
            server.inject_fault(Fault.hang(after_chunks=2, match="mid-stream"))
            nursery.start_soon(ask, server, "before", "before-headers")
            nursery.start_soon(ask, server, "mid", "mid-stream")
            await server.wait_for_hung(2)
            # Leaving the block ended both hung requests; the nursery can close.
    assert outcomes["before"] == 503
    assert isinstance(outcomes["mid"], httpx.RemoteProtocolError)
    assert all_tasks() == before
    with pytest.raises(httpx.ConnectError):
        await client.get(f"{server.root_url}/health")


async def test_hung_client_that_leaves_is_forgotten(
    server: ModelServer, client: httpx.AsyncClient
) -> None:
    server.inject_fault(Fault.hang())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(post_stream, client, server, MINIMAL)
        await server.wait_for_hung(1)
        nursery.cancel_scope.cancel()
    with trio.fail_after(5):
        await server.wait_for_idle()
    assert server.statistics().hung == 0


async def test_targeted_faults_hit_only_their_agent(
    server: ModelServer, client: httpx.AsyncClient
) -> None:
    server.inject_fault(Fault.rate_limit(retry_after=3, match="agent-B"))
    statuses: dict[str, int] = {}

    async def ask(marker: str) -> None:
        response = await client.post(
            f"{server.url}/chat/completions", json=harness_request("go", marker=marker)
        )
        statuses[marker] = response.status_code

    # agent-A comes first and passes the queued fault by.
    await ask("agent-A")
    assert len(server.pending_faults) == 1
    async with trio.open_nursery() as nursery:
        for marker in ("agent-A", "agent-B", "agent-C"):
            nursery.start_soon(ask, marker)
    assert statuses == {"agent-A": 200, "agent-B": 429, "agent-C": 200}
    assert server.pending_faults == []


# -- request log ------------------------------------------------------------------------


async def test_request_log_in_memory_and_jsonl(tmp_path: Path, client: httpx.AsyncClient) -> None:
    log = tmp_path / "requests.jsonl"
    async with open_model_server(log_path=log) as server:
        await post_stream(client, server, MINIMAL)
        second = harness_request("again", stream=False)
        await client.post(f"{server.root_url}/chat/completions", json=second)
        await server.wait_for_requests(2)

    assert [r.body for r in server.requests] == [MINIMAL, second]
    assert [r.seq for r in server.requests] == [1, 2]
    assert [r.path for r in server.requests] == ["/v1/chat/completions", "/chat/completions"]
    assert server.requests[0].received_at <= server.requests[1].received_at
    assert server.requests[1].user_request == "again"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["body"] for line in lines] == [MINIMAL, second]
    assert lines[0]["received_at"] == server.requests[0].received_at


# -- control endpoint ------------------------------------------------------------------------


async def test_control_endpoint(server: ModelServer, client: httpx.AsyncClient) -> None:
    control = f"{server.root_url}/control"
    response = await client.post(
        f"{control}/faults",
        json=[
            {"kind": "http_error", "status": 429, "retry_after": 2, "match": "agent-9"},
            {"kind": "hang"},
        ],
    )
    assert response.status_code == 200
    assert response.json()["queued"] == 2
    assert server.pending_faults == [Fault.rate_limit(2, match="agent-9"), Fault.hang()]
    listed = (await client.get(f"{control}/faults")).json()["faults"]
    assert [Fault.from_json(f) for f in listed] == server.pending_faults

    async with trio.open_nursery() as nursery:
        nursery.start_soon(post_stream, client, server, MINIMAL)
        await server.wait_for_hung(1)
        assert (await client.post(f"{control}/release")).json() == {"released": 1}

    response = await client.post(
        f"{server.url}/chat/completions", json=harness_request("x", marker="agent-9")
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"

    await client.post(f"{control}/faults", json={"kind": "slow", "chunk_delay": 0.5})
    assert (await client.delete(f"{control}/faults")).json() == {"cleared": 1}

    reply = {"text": "from afar", "tool_calls": [{"name": "get_weather", "arguments": {}}]}
    response = await client.post(f"{control}/replies", json=reply)
    assert response.json() == {"queued": 1, "pending": 1}
    events = await post_stream(client, server, MINIMAL)
    assert content_of(events[:-1]) == "from afar"
    assert tool_calls_of(events)[0]["name"] == "get_weather"

    logged = (await client.get(f"{control}/requests")).json()["requests"]
    assert [entry["seq"] for entry in logged] == [r.seq for r in server.requests]
    assert logged[-1]["body"] == MINIMAL


@pytest.mark.parametrize(
    "payload",
    [
        {"kind": "explode"},
        {"kind": "http_error", "status": "429"},
        {"kind": "hang", "times": 0},
        {"kind": "hang", "surprise": 1},
        {"kind": "hang", "match": 5},
        {"kind": "slow", "chunk_delay": -1},
        "hang",
    ],
)
async def test_control_rejects_bad_faults(
    server: ModelServer, client: httpx.AsyncClient, payload: Any
) -> None:
    response = await client.post(f"{server.root_url}/control/faults", json=payload)
    assert response.status_code == 400
    assert response.json()["error"]["message"]
    assert server.pending_faults == []


def test_reply_from_json() -> None:
    reply = reply_from_json(
        {
            "text": "t",
            "tool_calls": [{"name": "f", "arguments": '{"a": 1}', "id": "c1"}],
            "chunk_size": 3,
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        }
    )
    assert reply == Reply(
        "t", (ToolCallSpec("f", '{"a": 1}', "c1"),), chunk_size=3, usage=CompletionUsage(1, 2)
    )
    with pytest.raises(TypeError):
        reply_from_json({"tool_calls": [{"name": 3}]})


# -- life cycle ------------------------------------------------------------------------


async def test_busy_port_raises_oserror() -> None:
    async with open_model_server() as first:
        with pytest.raises(OSError):
            async with open_model_server(port=first.port):
                pass  # pragma: no cover


async def test_shutdown_is_prompt_with_an_open_keep_alive_connection(
    client: httpx.AsyncClient,
) -> None:
    # The client keeps its connection open after each answer; leaving must not
    # wait on it (hypercorn's graceful timeout alone would take 2 s).
    with trio.fail_after(1):
        async with open_model_server() as server:
            await post_stream(client, server, MINIMAL)
            body = harness_request("x", stream=False)
            await client.post(f"{server.url}/chat/completions", json=body)


async def test_body_exception_propagates_unwrapped() -> None:
    with pytest.raises(KeyError, match="boom"):
        async with open_model_server():
            raise KeyError("boom")
