"""OpenAI Responses at /v1/responses, driven by the real ``openai`` client."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import openai
import pytest
import trio
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

import agy_trio
from agy_trio.adapters.scripted import CallTool, Say, ScriptedBackend, Think, Turn
from agy_trio.serve import ServerAddress, serve
from tests.serve._helpers import FAST, TOKEN, script, served

STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)

# A client that stops reading a stream early (`break`) closes the stream, but
# the openai client's own async generators (AsyncStream.__aiter__ and the SSE
# decoder under it) are left for the garbage collector: asyncio finalizes them
# quietly, Trio warns. Only the tests that hang up early meet them.
HUNG_UP_EARLY = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object "
    r"(AsyncStream\.|SSEDecoder\.|AsyncResponse\.|Stream\.)"
    ":pytest.PytestUnraisableExceptionWarning"
)


@asynccontextmanager
async def openai_client(
    address: ServerAddress, token: str | None = None
) -> AsyncIterator[openai.AsyncOpenAI]:
    """The real client, closed on the way out (an open one leaks its socket under Trio)."""
    async with openai.AsyncOpenAI(
        base_url=f"{address.url}/v1", api_key=token or "unused", max_retries=0, timeout=30
    ) as client:
        yield client


def strict(raw: dict[str, Any]) -> Response:
    """The Response object validated against the openai package's own model."""
    return Response.model_validate(raw, strict=False)


@agy_trio.tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def thinking(agent_id: str, prompt: str, index: int) -> Turn:
    if prompt == "add":
        return Turn(
            [
                Think("let me add"),
                CallTool("add", {"a": 2, "b": 3}),
                Say("It is 5.", chunks=2),
            ]
        )
    return script(agent_id, prompt, index)


@asynccontextmanager
async def served_with_tools() -> AsyncIterator[ServerAddress]:
    backend = ScriptedBackend(thinking)
    defaults = agy_trio.AgentConfig(tools=[add])
    async with (
        agy_trio.open_runtime(FAST, backend=backend) as runtime,
        trio.open_nursery() as nursery,
    ):
        address = await nursery.start(functools.partial(serve, runtime, port=0, defaults=defaults))
        yield address
        nursery.cancel_scope.cancel()


async def test_models_lists_the_served_profile() -> None:
    async with served() as s, openai_client(s.address) as client:
        page = await client.models.list()
        assert [m.id for m in page.data] == ["agy"]
        assert (await client.models.retrieve("agy")).owned_by == "agy_trio"
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("gpt-nothing")


async def test_a_response_answers_and_previous_response_id_continues_the_agent() -> None:
    async with served() as s, openai_client(s.address) as client:
        first = await client.responses.create(model="agy", input="hello there")
        assert first.status == "completed"
        assert first.output_text == "You said: hello there"
        assert first.usage is not None and first.usage.output_tokens > 0
        assert [item.type for item in first.output] == ["message"]
        # The raw body is a valid Response for the openai package's own model.
        raw = (await s.client.get(f"/v1/responses/{first.id}")).json()
        assert strict(raw).output_text == first.output_text
        assert [a.agent_id for a in s.runtime.agents] != []

        second = await client.responses.create(
            model="agy",
            input=[{"role": "user", "content": [{"type": "input_text", "text": "again"}]}],
            previous_response_id=first.id,
        )
        assert second.output_text == "You said: again"
        assert second.previous_response_id == first.id
        # One agent answered both: its conversation holds both turns.
        (agent,) = s.runtime.agents
        history = await agent.history()
        assert [m.text for m in history if m.role == "user"] == ["hello there", "again"]

        fetched = await client.responses.retrieve(second.id)
        assert fetched.output_text == "You said: again"


async def test_the_stream_follows_the_responses_event_order() -> None:
    async with served_with_tools() as address, openai_client(address) as client:
        stream = await client.responses.create(model="agy", input="add", stream=True)
        async with stream:
            events = [event async for event in stream]
        kinds = [event.type for event in events]
        assert kinds[:2] == ["response.created", "response.in_progress"]
        assert kinds[-1] == "response.completed"
        assert [e.sequence_number for e in events] == list(range(len(events)))
        # Every item added is done, before the next one is added.
        open_items: list[str] = []
        for event in events:
            if event.type == "response.output_item.added":
                assert open_items == []
                open_items.append(event.item.id)
            elif event.type == "response.output_item.done":
                assert open_items == [event.item.id]
                open_items.clear()
        assert open_items == []
        final = events[-1].response
        assert [item.type for item in final.output] == [
            "reasoning",
            "function_call",
            "function_call_output",
            "message",
        ]
        reasoning, call, output, _ = final.output
        assert reasoning.content[0].text == "let me add"
        assert (call.name, call.arguments) == ("add", '{"a": 2, "b": 3}')
        assert output.call_id == call.call_id and output.output == "5"
        deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert deltas == final.output_text == "It is 5."
        thoughts = [e.delta for e in events if e.type == "response.reasoning_text.delta"]
        assert thoughts == ["let me add"]
        # Each event is a valid stream event of the openai package's own union.
        for event in events:
            STREAM_EVENT.validate_python(event.model_dump())


async def test_cancel_stops_a_streaming_response() -> None:
    async with served() as s, openai_client(s.address) as client:
        stream = await client.responses.create(model="agy", input="hang on", stream=True)
        async with stream:
            events = []
            async for event in stream:
                events.append(event)
                if event.type == "response.output_text.delta":
                    cancelled = await client.responses.cancel(events[0].response.id)
                    assert cancelled.status == "cancelled"
        assert events[-1].type == "response.incomplete"
        assert events[-1].response.status == "cancelled"
        (agent,) = s.runtime.agents
        with trio.fail_after(10):
            await agent.wait_for_idle()


# The server answers 413 before reading a body whose Content-Length is over
# the limit; httpx then abandons the generator that was uploading it, and
# Trio reports that generator (httpx's, not the server's) when it is collected.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object ByteStream.__aiter__"
    ":pytest.PytestUnraisableExceptionWarning"
)
async def test_bad_requests_get_openai_errors_and_change_nothing() -> None:
    async with served() as s, openai_client(s.address) as client:
        with pytest.raises(openai.NotFoundError) as missing_model:
            await client.responses.create(model="gpt-nothing", input="hi")
        assert missing_model.value.body["param"] == "model"  # type: ignore[index]
        with pytest.raises(openai.BadRequestError):
            await client.responses.create(model="agy", input="")
        with pytest.raises(openai.BadRequestError) as unknown:
            await client.responses.create(model="agy", input="hi", extra_body={"bogus": 1})
        assert unknown.value.body["param"] == "bogus"  # type: ignore[index]
        with pytest.raises(openai.NotFoundError):
            await client.responses.create(model="agy", input="hi", previous_response_id="resp_x")
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve("resp_unknown")
        with pytest.raises(openai.NotFoundError):
            await client.responses.cancel("resp_unknown")
        assert s.runtime.agents == []

        for body in (b"{not json", b"[1, 2]", b'{"model": "agy", "input": 3}'):
            answer = await s.client.post("/v1/responses", content=body)
            assert answer.status_code == 400
            error = answer.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert error["type"] == "invalid_request_error"
        huge = await s.client.post(
            "/v1/responses", json={"model": "agy", "input": "x" * (2 * 1024 * 1024)}
        )
        assert huge.status_code == 413
        assert s.runtime.agents == []


async def test_a_token_guards_the_responses_api() -> None:
    async with served(token=TOKEN, authorized=False) as s:
        async with openai_client(s.address, token="wrong") as client:
            with pytest.raises(openai.AuthenticationError):
                await client.models.list()
            with pytest.raises(openai.AuthenticationError):
                await client.responses.create(model="agy", input="hi")
        async with openai_client(s.address, token=TOKEN) as client:
            answer = await client.responses.create(model="agy", input="hi")
            assert answer.output_text == "You said: hi"
        async with httpx.AsyncClient(base_url=s.address.url) as raw:
            assert (await raw.get("/v1/responses/x")).status_code == 401


def slow_script(agent_id: str, prompt: str, index: int) -> Turn:
    if prompt.startswith("slowly"):
        return Turn([Say("one two three four five six", chunks=6, delay=0.2)])
    return script(agent_id, prompt, index)


@asynccontextmanager
async def served_slowly(**options: Any) -> AsyncIterator[tuple[agy_trio.Runtime, ServerAddress]]:
    async with (
        agy_trio.open_runtime(FAST, backend=ScriptedBackend(slow_script)) as runtime,
        trio.open_nursery() as nursery,
    ):
        address = await nursery.start(functools.partial(serve, runtime, port=0, **options))
        yield runtime, address
        nursery.cancel_scope.cancel()


@HUNG_UP_EARLY
async def test_a_background_response_goes_on_and_its_stream_resumes() -> None:
    # No grace at all: only `background` can keep the turn going once the client left.
    async with served_slowly(reattach_grace=0) as (_, address):
        async with openai_client(address) as client:
            stream = await client.responses.create(
                model="agy", input="slowly please", stream=True, background=True
            )
            first: list[Any] = []
            async with stream:
                async for event in stream:
                    first.append(event)
                    if event.type == "response.output_text.delta":
                        break  # the client hangs up mid-answer
            response_id = first[0].response.id
            assert first[0].response.background is True
            resumed = await client.responses.retrieve(
                response_id, stream=True, starting_after=first[-1].sequence_number
            )
            async with resumed:
                rest = [event async for event in resumed]
        # Nothing lost, nothing repeated: the sequence numbers run on.
        numbers = [e.sequence_number for e in first + rest]
        assert numbers == list(range(len(numbers)))
        assert rest[-1].type == "response.completed"
        text = "".join(e.delta for e in first + rest if e.type == "response.output_text.delta")
        assert text == rest[-1].response.output_text == "one two three four five six"
        # Replaying from the start gives the very same events.
        async with openai_client(address) as client:
            again = await client.responses.retrieve(response_id, stream=True)
            async with again:
                replay = [event async for event in again]
        assert [e.model_dump() for e in replay] == [e.model_dump() for e in first + rest]


@HUNG_UP_EARLY
async def test_without_background_a_response_whose_client_left_is_cancelled() -> None:
    async with (
        served_slowly(reattach_grace=0) as (runtime, address),
        openai_client(address) as client,
    ):
        stream = await client.responses.create(model="agy", input="slowly now", stream=True)
        async with stream:
            async for event in stream:
                if event.type == "response.created":
                    response_id = event.response.id
                elif event.type == "response.output_text.delta":
                    break
        (agent,) = runtime.agents
        with trio.fail_after(10):
            await agent.wait_for_idle()
        fetched = await client.responses.retrieve(response_id)
        assert fetched.status == "cancelled"
        assert fetched.output_text != "one two three four five six"


async def test_a_response_not_stored_leaves_no_agent_behind() -> None:
    async with served() as s, openai_client(s.address) as client:
        answer = await client.responses.create(model="agy", input="just once", store=False)
        assert answer.output_text == "You said: just once"
        assert answer.store is False
        assert s.runtime.agents == []  # the agent went with its turn
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(answer.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.create(
                model="agy", input="again", previous_response_id=answer.id
            )
        with pytest.raises(openai.BadRequestError) as refused:
            await client.responses.create(model="agy", input="hi", store=False, background=True)
        assert refused.value.body["param"] == "store"  # type: ignore[index]
        assert s.runtime.agents == []
