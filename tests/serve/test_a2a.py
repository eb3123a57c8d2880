"""A2A at /a2a and the agent card, driven by a2a-sdk's own client."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
from a2a.client import A2ACardResolver, Client, ClientConfig, ClientFactory
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskNotFoundError,
    TaskState,
)
from google.protobuf import json_format
from httpx_sse import aconnect_sse

import agy_trio
from agy_trio.adapters.scripted import CallTool, Say, ScriptedBackend, Turn
from agy_trio.serve import ServerAddress, serve
from agy_trio.serve.a2a_render import data_part as a2a_data
from tests.serve._helpers import FAST, TOKEN, script, served

SLOW = "slowly"

# A client that stops reading a stream early closes the generator it holds,
# but a2a-sdk's client nests generators of its own that it does not close:
# asyncio finalizes those quietly, Trio warns when it collects them. Only the
# tests that hang up early meet them; the server is not involved.
HUNG_UP_EARLY = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object "
    r"(BaseClient\.|JsonRpcTransport\.|send_http_stream_request|aconnect_sse)"
    ":pytest.PytestUnraisableExceptionWarning"
)


def slow_script(agent_id: str, prompt: str, index: int) -> Turn:
    if prompt.startswith(SLOW):
        return Turn([Say("one two three four five six", chunks=6, delay=0.2)])
    return script(agent_id, prompt, index)


@asynccontextmanager
async def a2a_client(address: ServerAddress, token: str | None = None) -> AsyncIterator[Client]:
    """a2a-sdk's client, made from the served card, on an httpx client closed after it."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        client = await ClientFactory(ClientConfig(httpx_client=http)).create_from_url(address.url)
        async with client:
            yield client


@asynccontextmanager
async def served_slowly() -> AsyncIterator[tuple[agy_trio.Runtime, ServerAddress]]:
    async with (
        agy_trio.open_runtime(FAST, backend=ScriptedBackend(slow_script)) as runtime,
        trio.open_nursery() as nursery,
    ):
        address = await nursery.start(functools.partial(serve, runtime, port=0))
        yield runtime, address
        nursery.cancel_scope.cancel()


def user_message(text: str, **fields: Any) -> Message:
    return Message(
        message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text=text)], **fields
    )


def answer_of(responses: list[StreamResponse]) -> str:
    pieces = []
    for response in responses:
        if response.HasField("artifact_update"):
            update = response.artifact_update
            if not update.append:
                pieces.clear()
            pieces.extend(part.text for part in update.artifact.parts)
    return "".join(pieces)


def states(responses: list[StreamResponse]) -> list[int]:
    found = []
    for response in responses:
        if response.HasField("task"):
            found.append(response.task.status.state)
        elif response.HasField("status_update"):
            found.append(response.status_update.status.state)
    return found


async def test_the_card_describes_the_served_profile() -> None:
    async with served() as s, httpx.AsyncClient(timeout=30) as http:
        card = await A2ACardResolver(http, s.address.url).get_agent_card()
        assert card.name == "agy"
        assert card.capabilities.streaming
        assert [skill.id for skill in card.skills] == ["chat"]
        (interface,) = card.supported_interfaces
        assert interface.url == f"{s.address.url}/a2a"
        assert interface.protocol_binding == "JSONRPC"
        assert not card.security_schemes
    async with served(token=TOKEN, authorized=False) as s, httpx.AsyncClient(timeout=30) as http:
        # The card is public (it is how a client learns that it needs the token).
        card = await A2ACardResolver(http, s.address.url).get_agent_card()
        assert card.security_schemes["bearer"].http_auth_security_scheme.scheme == "bearer"
        assert list(card.security_requirements[0].schemes) == ["bearer"]


async def test_a_streamed_message_is_a_task_whose_answer_is_an_artifact() -> None:
    async with served() as s, a2a_client(s.address) as client:
        responses = [
            r async for r in client.send_message(SendMessageRequest(message=user_message("hello")))
        ]
        first = responses[0]
        assert first.HasField("task")
        assert first.task.status.state == TaskState.TASK_STATE_SUBMITTED
        assert states(responses)[-1] == TaskState.TASK_STATE_COMPLETED
        assert TaskState.TASK_STATE_WORKING in states(responses)
        assert answer_of(responses) == "You said: hello"
        task_id, context_id = first.task.id, first.task.context_id
        assert [a.agent_id for a in s.runtime.agents] == [context_id]

        task = await client.get_task(GetTaskRequest(id=task_id))
        assert task.status.state == TaskState.TASK_STATE_COMPLETED
        assert [p.text for p in task.artifacts[0].parts] == ["You said: hello"]
        assert task.history[0].parts[0].text == "hello"

        # The same context continues the same agent (its conversation).
        again = [
            r
            async for r in client.send_message(
                SendMessageRequest(message=user_message("again", context_id=context_id))
            )
        ]
        assert answer_of(again) == "You said: again"
        assert again[0].task.context_id == context_id
        (agent,) = s.runtime.agents
        assert [m.text for m in await agent.history() if m.role == "user"] == ["hello", "again"]

        listed = await client.list_tasks(ListTasksRequest(context_id=context_id))
        assert [t.id for t in listed.tasks] == [again[0].task.id, task_id]
        assert listed.total_size == 2


async def test_send_message_without_streaming_returns_the_finished_task() -> None:
    async with served() as s, httpx.AsyncClient(timeout=30) as http:
        config = ClientConfig(httpx_client=http, streaming=False)
        client = await ClientFactory(config).create_from_url(s.address.url)
        async with client:
            (response,) = [
                r async for r in client.send_message(SendMessageRequest(message=user_message("hi")))
            ]
            task: Task = response.task
            assert task.status.state == TaskState.TASK_STATE_COMPLETED
            assert task.artifacts[0].parts[0].text == "You said: hi"


@HUNG_UP_EARLY
async def test_cancel_task_stops_the_turn() -> None:
    async with served() as s, a2a_client(s.address) as client:
        request = SendMessageRequest(
            message=user_message("hang on"),
            configuration=SendMessageConfiguration(return_immediately=True),
        )
        stream = client.send_message(request)
        first = await anext(stream)
        await stream.aclose()
        task_id = first.task.id
        cancelled = await client.cancel_task(CancelTaskRequest(id=task_id))
        assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
        (agent,) = s.runtime.agents
        with trio.fail_after(10):
            await agent.wait_for_idle()
        fetched = await client.get_task(GetTaskRequest(id=task_id))
        assert fetched.status.state == TaskState.TASK_STATE_CANCELED


@HUNG_UP_EARLY
async def test_a_task_goes_on_after_its_stream_closes_and_subscribe_reattaches() -> None:
    async with served_slowly() as (runtime, address), a2a_client(address) as client:
        stream = client.send_message(SendMessageRequest(message=user_message(f"{SLOW} please")))
        seen: list[StreamResponse] = []
        async for response in stream:
            seen.append(response)
            if response.HasField("artifact_update"):
                break
        await stream.aclose()  # the client hangs up mid-answer
        task_id = seen[0].task.id
        task = await client.get_task(GetTaskRequest(id=task_id))
        assert task.status.state == TaskState.TASK_STATE_WORKING

        resumed = [r async for r in client.subscribe(SubscribeToTaskRequest(id=task_id))]
        assert resumed[0].HasField("task")  # the task as it stands, then what follows
        snapshot = resumed[0].task.artifacts[0].parts[0].text
        rest = answer_of(resumed[1:]) if resumed[1].artifact_update.append else ""
        assert snapshot + rest == "one two three four five six"
        assert states(resumed)[-1] == TaskState.TASK_STATE_COMPLETED
        done = await client.get_task(GetTaskRequest(id=task_id))
        assert done.artifacts[0].parts[0].text == "one two three four five six"
        # A finished task cannot be subscribed to.
        with pytest.raises(Exception, match="ended"):
            [r async for r in client.subscribe(SubscribeToTaskRequest(id=task_id))]
        assert runtime.agents


async def test_bad_requests_get_json_rpc_errors_and_change_nothing() -> None:
    headers = {"a2a-version": "1.0"}
    async with served() as s:
        http = s.client

        async def rpc(body: Any) -> dict[str, Any]:
            answer = await http.post("/a2a", json=body, headers=headers)
            assert answer.status_code == 200
            error: dict[str, Any] = answer.json()["error"]
            return error

        parse = await http.post("/a2a", content=b"{nope", headers=headers)
        assert parse.json()["error"]["code"] == -32700
        assert (await rpc([1, 2]))["code"] == -32600
        assert (await rpc({"jsonrpc": "1.0", "id": 1, "method": "GetTask"}))["code"] == -32600
        assert (await rpc({"jsonrpc": "2.0", "id": 1, "method": "Nope"}))["code"] == -32601
        bad_params = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": 5}}
        assert (await rpc(bad_params))["code"] == -32602
        no_text = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "SendMessage",
            "params": {"message": {"messageId": "m", "role": "ROLE_USER", "parts": []}},
        }
        assert (await rpc(no_text))["code"] == -32602
        unknown = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "turn-x"}}
        assert (await rpc(unknown))["code"] == -32001  # A2A's TaskNotFoundError
        cancel = {"jsonrpc": "2.0", "id": 1, "method": "CancelTask", "params": {"id": "turn-x"}}
        assert (await rpc(cancel))["code"] == -32001
        assert s.runtime.agents == []

        async with a2a_client(s.address) as client:
            with pytest.raises(TaskNotFoundError):
                await client.get_task(GetTaskRequest(id="turn-unknown"))
        assert s.runtime.agents == []


async def test_a_token_guards_the_json_rpc_endpoint() -> None:
    async with served(token=TOKEN, authorized=False) as s:
        body = {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}
        answer = await s.client.post("/a2a", json=body, headers={"a2a-version": "1.0"})
        assert answer.status_code == 401
        async with a2a_client(s.address, token=TOKEN) as client:
            responses = [
                r async for r in client.send_message(SendMessageRequest(message=user_message("hi")))
            ]
            assert answer_of(responses) == "You said: hi"


async def test_the_task_and_the_native_replay_of_its_turn_show_the_same_events() -> None:
    from agy_trio.adapters.scripted import Think

    @agy_trio.tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    def busy(agent_id: str, prompt: str, index: int) -> Turn:
        return Turn([Think("adding"), CallTool("add", {"a": 1, "b": 2}), Say("It is 3.", chunks=3)])

    profile = agy_trio.AgentConfig(tools=[add])
    async with (
        agy_trio.open_runtime(FAST, backend=ScriptedBackend(busy)) as runtime,
        trio.open_nursery() as nursery,
    ):
        address = await nursery.start(functools.partial(serve, runtime, port=0, defaults=profile))
        async with a2a_client(address) as client:
            message = user_message("what is 1 + 2?")
            task_stream = [
                r async for r in client.send_message(SendMessageRequest(message=message))
            ]
        task_id = task_stream[0].task.id
        async with (
            httpx.AsyncClient(base_url=address.url) as http,
            aconnect_sse(http, "GET", f"/v1/turns/{task_id}/events") as source,
        ):
            native = [event async for event in source.aiter_sse()]
        nursery.cancel_scope.cancel()

    def a2a_kind(response: StreamResponse) -> str | None:
        if response.HasField("artifact_update"):
            return "text:" + response.artifact_update.artifact.parts[0].text
        message = response.status_update.status.message
        if message.parts:
            return str(message.metadata["kind"])
        return None

    a2a_kinds = [k for k in map(a2a_kind, task_stream[2:]) if k is not None]
    native_kinds = []
    for event in native:
        if event.event == "delta":
            native_kinds.append("text:" + event.json()["text"])
        elif event.event in ("thought", "tool_call", "tool_result"):
            native_kinds.append(event.event)
    # A2A reports a tool call when it starts and when it is done; the native
    # wire has one tool_call event, with the result, where A2A says it is done.
    assert a2a_kinds[:3] == ["thought", "tool_call", "tool_result"]
    assert ["tool_call" if k == "tool_result" else k for k in a2a_kinds if k != "tool_call"] == (
        native_kinds
    )
    assert [k for k in a2a_kinds if k.startswith("text:")] == ["text:It ", "text:is ", "text:3."]


def approving_script(agent_id: str, prompt: str, index: int) -> Turn:
    return Turn([CallTool("remove", {"path": "notes.txt"}), Say("Done.", chunks=1)])


@asynccontextmanager
async def served_with_approval(
    removed: list[str],
) -> AsyncIterator[tuple[agy_trio.Runtime, ServerAddress]]:
    @agy_trio.tool
    def remove(path: str) -> str:
        """Remove a file."""
        removed.append(path)
        return f"removed {path}"

    profile = agy_trio.AgentConfig(
        tools=[remove],
        policies=[agy_trio.policy.ask_user("remove", reason="removing files needs a yes")],
    )
    async with (
        agy_trio.open_runtime(FAST, backend=ScriptedBackend(approving_script)) as runtime,
        trio.open_nursery() as nursery,
    ):
        address = await nursery.start(functools.partial(serve, runtime, port=0, defaults=profile))
        yield runtime, address
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("approved", [True, False])
async def test_an_approval_is_an_input_required_task_answered_on_the_same_task(
    approved: bool,
) -> None:
    removed: list[str] = []
    async with served_with_approval(removed) as (_, address), a2a_client(address) as client:
        request = SendMessageRequest(message=user_message("tidy up"))
        asked = [r async for r in client.send_message(request)]
        last = asked[-1].status_update.status
        assert last.state == TaskState.TASK_STATE_INPUT_REQUIRED
        question = json_format.MessageToDict(last.message.parts[1].data)
        assert question["tool"] == "remove"
        assert question["arguments"] == {"path": "notes.txt"}
        assert question["reason"] == "removing files needs a yes"
        assert removed == []
        task_id, context_id = asked[0].task.id, asked[0].task.context_id
        waiting = await client.get_task(GetTaskRequest(id=task_id))
        assert waiting.status.state == TaskState.TASK_STATE_INPUT_REQUIRED

        answer = Message(
            message_id=str(uuid.uuid4()),
            role=Role.ROLE_USER,
            task_id=task_id,
            context_id=context_id,
            parts=[a2a_data({"approved": approved, "reason": "as you wish"})],
        )
        rest = [r async for r in client.send_message(SendMessageRequest(message=answer))]
        assert rest[0].task.id == task_id  # the same task goes on
        assert states(rest)[-1] == TaskState.TASK_STATE_COMPLETED
        assert answer_of(rest) == "Done."
        assert removed == (["notes.txt"] if approved else [])
        results = [
            json_format.MessageToDict(r.status_update.status.message.parts[0].data)
            for r in rest
            if r.HasField("status_update")
            and dict(r.status_update.status.message.metadata).get("kind") == "tool_result"
        ]
        (result,) = results
        if approved:
            assert result["tool_call"]["result"] == "removed notes.txt"
        else:
            assert result["tool_call"]["error"]


async def test_a_clients_bad_request_is_logged_at_info_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="a2a")
    async with served() as s:
        bad = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": 5}}
        answer = await s.client.post("/a2a", json=bad, headers={"a2a-version": "1.0"})
        assert answer.json()["error"]["code"] == -32602
    records = [r for r in caplog.records if r.name.startswith("a2a.server")]
    assert any(r.levelno == logging.INFO for r in records), "a2a-sdk logged the bad request"
    assert all(r.levelno <= logging.INFO and r.exc_info is None for r in records)
