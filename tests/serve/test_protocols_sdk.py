"""The agent protocols over the real SDK, its harness and the local model server, offline.

Each protocol's real client drives a served profile with a tool: the model
server calls it (``call tool add with {...}``), the harness runs it through
agy_trio, and the protocol shows the call, its result and the answer.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import google.antigravity  # noqa: F401  (the README set-up installs the SDK)
import httpx
import openai
import pytest
import trio
from a2a.client import ClientConfig, ClientFactory
from a2a.types import Message, Part, Role, SendMessageRequest, TaskState
from mcp import Client

import agy_trio
from agy_trio.adapters.antigravity import AntigravityBackend
from agy_trio.serve import ServerAddress, serve
from agy_trio.testing import open_model_server
from tests.serve._helpers import FAST

pytestmark = [pytest.mark.sdk, pytest.mark.usefixtures("offline", "no_harness_left")]

ADD = 'call tool add with {"a": 2, "b": 3}'


@agy_trio.tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@attrs.define
class Served:
    runtime: agy_trio.Runtime
    address: ServerAddress


@asynccontextmanager
async def served_sdk(tmp_path: Path) -> AsyncIterator[Served]:
    base = tmp_path / "backend"
    async with open_model_server() as model:
        backend = AntigravityBackend(base_dir=base)
        profile = agy_trio.AgentConfig(model="agy-trio-local", base_url=model.url, tools=[add])
        async with (
            agy_trio.open_runtime(FAST, backend=backend) as runtime,
            trio.open_nursery() as nursery,
        ):
            address = await nursery.start(
                functools.partial(serve, runtime, port=0, defaults=profile)
            )
            yield Served(runtime, address)
            nursery.cancel_scope.cancel()
    assert list(base.iterdir()) == [], "the backend left its folder behind"


async def test_openai_responses_over_the_real_sdk(tmp_path: Path) -> None:
    async with (
        served_sdk(tmp_path) as s,
        openai.AsyncOpenAI(
            base_url=f"{s.address.url}/v1", api_key="-", max_retries=0, timeout=60
        ) as client,
    ):
        stream = await client.responses.create(model="agy", input=ADD, stream=True)
        async with stream:
            events = [event async for event in stream]
        final = events[-1]
        assert final.type == "response.completed"
        kinds = [item.type for item in final.response.output]
        assert kinds == ["function_call", "function_call_output", "message"]
        call, output, _ = final.response.output
        assert call.name == "add" and output.output == "5"
        assert final.response.output_text == 'Tool add returned: {"result": 5}'
        assert final.response.usage is not None and final.response.usage.output_tokens > 0

        again = await client.responses.create(
            model="agy", input="and now?", previous_response_id=final.response.id
        )
        assert again.output_text == "You said: and now?"
        (agent,) = s.runtime.agents
        assert [m.text for m in await agent.history() if m.role == "user"] == [ADD, "and now?"]


async def test_mcp_chat_over_the_real_sdk(tmp_path: Path) -> None:
    async with served_sdk(tmp_path) as s, Client(f"{s.address.url}/mcp") as client:
        result = await client.call_tool("chat", {"prompt": ADD})
        assert result.structured_content is not None, result.content
        assert result.structured_content["answer"] == 'Tool add returned: {"result": 5}'
        conversation = result.structured_content["conversation_id"]
        history = await client.call_tool("history", {"conversation_id": conversation})
        assert history.structured_content is not None
        assert history.structured_content["result"][0] == {"role": "user", "text": ADD}
        assert [a.agent_id for a in s.runtime.agents] == [conversation]


async def test_a2a_over_the_real_sdk(tmp_path: Path) -> None:
    async with (
        served_sdk(tmp_path) as s,
        httpx.AsyncClient(timeout=60) as http,
    ):
        client = await ClientFactory(ClientConfig(httpx_client=http)).create_from_url(s.address.url)
        async with client:
            message = Message(
                message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text=ADD)]
            )
            responses = [r async for r in client.send_message(SendMessageRequest(message=message))]
        calls = [
            r.status_update.status.message
            for r in responses
            if r.HasField("status_update") and r.status_update.status.message.parts
        ]
        assert [m.metadata["kind"] for m in calls] == ["tool_call", "tool_result"]
        answer = "".join(
            part.text
            for r in responses
            if r.HasField("artifact_update")
            for part in r.artifact_update.artifact.parts
        )
        assert answer == 'Tool add returned: {"result": 5}'
        assert responses[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
        assert len(s.runtime.agents) == 1


@pytest.mark.parametrize("approved", [True, False])
async def test_an_a2a_approval_over_the_real_sdk(tmp_path: Path, approved: bool) -> None:
    removed: list[str] = []

    @agy_trio.tool
    def remove(path: str) -> str:
        """Remove a file."""
        removed.append(path)
        return f"removed {path}"

    base = tmp_path / "backend"
    async with open_model_server() as model:
        profile = agy_trio.AgentConfig(
            model="agy-trio-local",
            base_url=model.url,
            tools=[remove],
            policies=[agy_trio.policy.ask_user("remove", reason="removing needs a yes")],
        )
        async with (
            agy_trio.open_runtime(FAST, backend=AntigravityBackend(base_dir=base)) as runtime,
            trio.open_nursery() as nursery,
        ):
            address = await nursery.start(
                functools.partial(serve, runtime, port=0, defaults=profile)
            )
            async with httpx.AsyncClient(timeout=60) as http:
                factory = ClientFactory(ClientConfig(httpx_client=http))
                async with await factory.create_from_url(address.url) as client:
                    ask = 'call tool remove with {"path": "notes.txt"}'
                    message = Message(
                        message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text=ask)]
                    )
                    asked = [
                        r async for r in client.send_message(SendMessageRequest(message=message))
                    ]
                    status = asked[-1].status_update.status
                    assert status.state == TaskState.TASK_STATE_INPUT_REQUIRED
                    assert "remove" in status.message.parts[0].text
                    assert removed == []
                    answer = Message(
                        message_id=str(uuid.uuid4()),
                        role=Role.ROLE_USER,
                        task_id=asked[0].task.id,
                        context_id=asked[0].task.context_id,
                        parts=[Part(text="approve" if approved else "deny")],
                    )
                    rest = [
                        r async for r in client.send_message(SendMessageRequest(message=answer))
                    ]
            assert rest[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
            assert removed == (["notes.txt"] if approved else [])
            nursery.cancel_scope.cancel()
    assert list(base.iterdir()) == []
