"""The HTTP API over a scripted runtime: every path and field, with httpx against a real server."""

from __future__ import annotations

import json

import httpx
import pytest
import trio

import agy_trio
from agy_trio.serve import HTTP_SETTABLE_FIELDS
from tests.serve._helpers import chat_events, create_agent, data, open_chat, served


async def test_healthz() -> None:
    async with served() as s:
        answer = await s.client.get("/healthz")
        assert answer.status_code == 200
        assert answer.json() == {"status": "ok"}


async def test_create_agent_with_defaults_and_with_fields() -> None:
    async with served() as s:
        answer = await s.client.post("/v1/agents", json={})
        assert answer.status_code == 201
        body = answer.json()
        assert set(body) == {"id", "name", "conversation_id"}
        assert body["name"] is None
        handle = s.runtime.agent(body["id"])
        assert handle.conversation_id == body["conversation_id"]

        answer = await s.client.post(
            "/v1/agents",
            json={"name": "researcher", "system_instructions": "Be brief.", "chat_timeout": 5},
        )
        assert answer.status_code == 201
        body = answer.json()
        assert body["name"] == "researcher"
        config = s.runtime.agent(body["id"]).config
        assert config.system_instructions == "Be brief."
        assert config.chat_timeout == 5.0

        # An empty body means the server's defaults too.
        answer = await s.client.post("/v1/agents")
        assert answer.status_code == 201


async def test_server_defaults_apply_under_the_body() -> None:
    defaults = agy_trio.AgentConfig(model="house-model", system_instructions="house rules")
    async with served(defaults=defaults) as s:
        agent_id = await create_agent(s.client, name="a", system_instructions="mine")
        config = s.runtime.agent(agent_id).config
        assert config.model == "house-model"
        assert config.system_instructions == "mine"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": 5}, "name"),
        ({"base_url": "ftp://example.org"}, "base_url"),
        ({"chat_timeout": -1}, "chat_timeout"),
        ({"default_policy": "maybe"}, "default_policy"),
        ({"colour": "blue"}, "colour"),
        ({"tools": ["os:system"]}, "tools"),
        ({"policies": []}, "policies"),
        ({"hooks": {}}, "hooks"),
        ({"builtin_tools": ["run_command"]}, "builtin_tools"),
        ({"workspaces": ["/"]}, "workspaces"),
        ({"home_dir": "/root"}, "home_dir"),
        ({"name": "a/b"}, "name"),
    ],
)
async def test_a_bad_agent_body_gives_422_config_error(body: dict[str, object], field: str) -> None:
    async with served() as s:
        answer = await s.client.post("/v1/agents", json=body)
        assert answer.status_code == 422
        error = answer.json()["error"]
        assert error["type"] == "ConfigError"
        assert error["field"] == field
        assert isinstance(error["message"], str) and error["message"]
        assert s.runtime.agents == []


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
async def test_a_body_that_is_not_a_json_object_gives_422(raw: bytes) -> None:
    async with served() as s:
        answer = await s.client.post(
            "/v1/agents", content=raw, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 422
        assert answer.json()["error"]["type"] == "ConfigError"


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/v1/agents", b"[" * 100_000 + b"]" * 100_000),
        ("/v1/agents", b'{"name": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001),
        ("/v1/agents/{agent}/chat", b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ],
)
async def test_a_body_nested_100000_deep_gives_422_not_500(path: str, raw: bytes) -> None:
    async with served() as s:
        agent_id = await create_agent(s.client)
        answer = await s.client.post(
            path.format(agent=agent_id), content=raw, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["type"] == "ConfigError"
        assert "nests deeper than 100 levels" in error["message"]


async def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    async with served() as s:
        agent_id = await create_agent(s.client)
        prompt = "[[[{{{" * 1000
        events = await chat_events(s.client, agent_id, prompt)
        assert events[-1].json()["text"] == f"You said: {prompt}"


async def test_a_chat_with_no_body_says_what_to_send() -> None:
    async with served() as s:
        agent_id = await create_agent(s.client)
        answer = await s.client.post(f"/v1/agents/{agent_id}/chat")
        assert answer.status_code == 422
        assert answer.json()["error"] == {
            "type": "ConfigError",
            "message": 'the request has no body: send a JSON object, e.g. {"prompt": "hi"}',
        }


def test_tools_policies_hooks_and_folders_are_not_settable_over_http() -> None:
    settable = set(HTTP_SETTABLE_FIELDS)
    assert {"name", "model", "base_url", "system_instructions", "conversation_id"} <= settable
    assert not settable & {"tools", "policies", "hooks", "builtin_tools", "home_dir"}
    # A subagent's built-ins act on the server's machine; skills_paths are folders on its disk.
    assert not settable & {"subagents", "skills_paths"}
    assert {"inline_skills", "compaction", "run_command", "max_subagent_depth"} <= settable


async def test_list_agents_with_their_state_and_turns() -> None:
    async with served() as s:
        first = await create_agent(s.client, name="one")
        second = await create_agent(s.client)
        await chat_events(s.client, first, "hello")
        await chat_events(s.client, first, "again")
        answer = await s.client.get("/v1/agents")
        assert answer.status_code == 200
        rows = {row["id"]: row for row in answer.json()}
        assert rows == {
            first: {"id": first, "name": "one", "idle": True, "turns": 2},
            second: {"id": second, "name": None, "idle": True, "turns": 0},
        }


async def test_the_agent_list_shows_a_busy_agent() -> None:
    async with served() as s:
        agent_id = await create_agent(s.client)
        async with open_chat(s.client, agent_id, "hang on") as chat:
            await chat.wait_for("delta")
            (row,) = (await s.client.get("/v1/agents")).json()
            assert row["idle"] is False
            await s.client.post(f"/v1/agents/{agent_id}/cancel")
            await chat.wait_for("done")


async def test_chat_streams_deltas_then_done() -> None:
    async with served() as s:
        agent_id = await create_agent(s.client)
        events = await chat_events(s.client, agent_id, "hello there")
        names = [e.event for e in events]
        assert names[-1] == "done"
        assert set(names[:-1]) == {"delta"}
        assert len(names) > 2  # streamed in several pieces
        text = "".join(e.json()["text"] for e in events[:-1])
        assert text == "You said: hello there"
        done = events[-1].json()
        turn_id = done.pop("turn_id")
        assert turn_id.startswith("turn-")
        assert done == {
            "stop_reason": "end_turn",
            "text": "You said: hello there",
            "usage": {"input_tokens": 2, "output_tokens": 4},
            "structured_output": None,
        }
        # Every event names its turn and carries an increasing SSE id.
        assert {e.json()["turn_id"] for e in events} == {turn_id}
        ids = [int(e.id) for e in events]
        assert ids == sorted(set(ids)) and ids[0] >= 1


async def test_thoughts_and_tool_calls_stream_as_their_own_events() -> None:
    from agy_trio.adapters.scripted import CallTool, Say, ScriptedBackend, Think, Turn

    @agy_trio.tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    def thinking_script(agent_id: str, prompt: str, index: int) -> Turn:
        return Turn(
            [
                Think("let me add"),
                CallTool("add", {"a": 2, "b": 3}),
                CallTool("missing", {}),
                Say("It is 5.", chunks=2),
            ]
        )

    import functools

    from agy_trio.serve import serve
    from tests.serve._helpers import FAST

    backend = ScriptedBackend(thinking_script)
    async with agy_trio.open_runtime(FAST, backend=backend) as rt:
        # Tools are the embedding program's to give: this agent is made in-process.
        handle = await rt.create_agent(agy_trio.AgentConfig(name="calc", tools=[add]))
        async with trio.open_nursery() as nursery:
            address = await nursery.start(functools.partial(serve, rt, port=0))
            async with httpx.AsyncClient(base_url=address.url) as client:
                events = await chat_events(client, handle.agent_id, "what is 2 + 3?")
            nursery.cancel_scope.cancel()
    assert [e.event for e in events] == [
        "thought",
        "tool_call",
        "tool_call",
        "delta",
        "delta",
        "done",
    ]
    assert data(events[0]) == {"text": "let me add"}
    call = data(events[1])
    assert isinstance(call.pop("call_id"), str)
    assert call == {
        "name": "add",
        "arguments": {"a": 2, "b": 3},
        "result": 5,
        "error": None,
        "server_name": None,
    }
    missing = events[2].json()
    assert missing["name"] == "missing" and missing["result"] is None and missing["error"]
    assert events[-1].json()["text"] == "It is 5."


async def test_a_failed_turn_ends_with_an_error_event() -> None:
    async with served() as s:
        agent_id = await create_agent(s.client)
        events = await chat_events(s.client, agent_id, "quota")
        assert [e.event for e in events] == ["error"]
        assert data(events[0]) == {
            "type": "QuotaExceeded",
            "message": "slow down",
            "retry_after": 7,
        }
        # The runtime now backs off: the next chat waits out the Retry-After,
        # and the error was reported by its own class name.


async def test_a_bad_chat_body_gives_422() -> None:
    async with served() as s:
        agent_id = await create_agent(s.client)
        for body in ({}, {"prompt": ""}, {"prompt": 5}, {"prompt": "hi", "stream": False}):
            answer = await s.client.post(f"/v1/agents/{agent_id}/chat", json=body)
            assert answer.status_code == 422, body
            assert answer.json()["error"]["type"] == "ConfigError"


async def test_cancel_ends_the_live_stream_as_cancelled() -> None:
    async with served() as s:
        agent_id = await create_agent(s.client)
        async with open_chat(s.client, agent_id, "hang around") as chat:
            first = await chat.wait_for("delta")
            assert data(first) == {"text": "partial answer"}
            answer = await s.client.post(f"/v1/agents/{agent_id}/cancel")
            assert answer.status_code == 204
            assert answer.content == b""
            await chat.ended.wait()
        assert [e.event for e in chat.events] == ["delta", "done"]
        done = chat.events[-1].json()
        assert done["stop_reason"] == "cancelled"
        assert done["text"] == "partial answer"
        assert await s.runtime.agent(agent_id).is_idle()


async def test_history() -> None:
    async with served() as s:
        agent_id = await create_agent(s.client)
        answer = await s.client.get(f"/v1/agents/{agent_id}/history")
        assert answer.status_code == 200
        assert answer.json() == []
        await chat_events(s.client, agent_id, "hi")
        answer = await s.client.get(f"/v1/agents/{agent_id}/history")
        assert answer.json() == [
            {"role": "user", "text": "hi"},
            {"role": "assistant", "text": "You said: hi"},
        ]


async def test_delete_ends_the_agent_and_its_conversation() -> None:
    async with served() as s:
        created = (await s.client.post("/v1/agents", json={})).json()
        await chat_events(s.client, created["id"], "remember me")
        answer = await s.client.delete(f"/v1/agents/{created['id']}")
        assert answer.status_code == 204
        assert s.runtime.agents == []
        assert created["conversation_id"] not in s.backend.saved_conversations
        # Resuming the deleted conversation finds nothing.
        answer = await s.client.post(
            "/v1/agents", json={"conversation_id": created["conversation_id"]}
        )
        assert answer.status_code == 404
        assert answer.json()["error"]["type"] == "AgentNotFound"


async def test_a_conversation_can_be_resumed_by_id() -> None:
    async with served() as s:
        created = (await s.client.post("/v1/agents", json={})).json()
        await chat_events(s.client, created["id"], "first")
        await s.runtime.agent(created["id"]).disconnect()  # keeps the conversation
        resumed = (
            await s.client.post("/v1/agents", json={"conversation_id": created["conversation_id"]})
        ).json()
        history = (await s.client.get(f"/v1/agents/{resumed['id']}/history")).json()
        assert history[0] == {"role": "user", "text": "first"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/agents/nobody-1/chat", {"prompt": "hi"}),
        ("POST", "/v1/agents/nobody-1/cancel", None),
        ("GET", "/v1/agents/nobody-1/history", None),
        ("DELETE", "/v1/agents/nobody-1", None),
    ],
)
async def test_an_unknown_agent_gives_404_everywhere(
    method: str, path: str, body: dict[str, str] | None
) -> None:
    async with served() as s:
        answer = await s.client.request(method, path, json=body)
        assert answer.status_code == 404
        error = answer.json()["error"]
        assert error["type"] == "AgentNotFound"
        assert "nobody-1" in error["message"]


async def test_unknown_routes_and_methods_answer_json() -> None:
    async with served() as s:
        answer = await s.client.get("/v1/nothing-here")
        assert answer.status_code == 404
        assert answer.json()["error"]["type"] == "NotFound"
        answer = await s.client.put("/v1/agents")
        assert answer.status_code == 405
        assert answer.json()["error"]["type"] == "MethodNotAllowed"


async def test_agents_made_in_process_are_served_too() -> None:
    async with served() as s:
        handle = await s.runtime.create_agent(agy_trio.AgentConfig(name="local"))
        rows = (await s.client.get("/v1/agents")).json()
        assert [row["id"] for row in rows] == [handle.agent_id]
        events = await chat_events(s.client, handle.agent_id, "from afar")
        assert json.loads(events[-1].data)["text"] == "You said: from afar"
