"""Approvals over HTTP: handler-less ask_user rules park until /v1/approvals answers them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio.testing
from httpx_sse import ServerSentEvent, aconnect_sse

import agy_trio
from agy_trio.adapters.scripted import CallTool, Say, ScriptedBackend, Turn
from agy_trio.errors import ConfigError
from agy_trio.serve import ServedProfile, load_profile, profile_from_toml
from tests.serve import sample_tools
from tests.serve._helpers import FAST, served

RULE_REASON = "lending a book needs a librarian's yes"


def lending(agent_id: str, prompt: str, index: int) -> Turn:
    return Turn([Say("Let me see. ", chunks=1), CallTool("lend", {"book": prompt}), Say("Done.")])


def lending_profile() -> ServedProfile:
    return profile_from_toml(
        f"""
        name = "library"
        description = "Lends books."

        [agent]
        name = "librarian"
        tools = ["tests.serve.sample_tools:lend"]
        policies = [{{ decision = "ask_user", tool = "lend", reason = "{RULE_REASON}" }}]
        """
    )


@attrs.define
class Library:
    runtime: agy_trio.Runtime
    client: httpx.AsyncClient


@asynccontextmanager
async def library(**serve_options: Any) -> AsyncIterator[Library]:
    """The lending profile served over :func:`lending`, and a client for it."""
    sample_tools.LENT.clear()
    serve_options.setdefault("profile", lending_profile())
    async with served(turns=lending, authorized=False, **serve_options) as server:
        yield Library(server.runtime, server.client)
    assert server.runtime.approver is None  # the server took its approver away when it stopped


class Chat:
    """One chat read in its own task; the test waits for events and hangs up at will."""

    def __init__(self) -> None:
        self.events: list[ServerSentEvent] = []
        self.turn_id = ""
        self._changed = trio.Event()
        self.scope = trio.CancelScope()
        self.ended = trio.Event()

    async def run(self, client: httpx.AsyncClient, agent_id: str, book: str) -> None:
        try:
            with self.scope:
                async with aconnect_sse(
                    client, "POST", f"/v1/agents/{agent_id}/chat", json={"prompt": book}
                ) as source:
                    self.turn_id = source.response.headers["x-turn-id"]
                    async for event in source.aiter_sse():
                        self.events.append(event)
                        self._changed.set()
                        self._changed = trio.Event()
        finally:
            self.ended.set()
            self._changed.set()

    async def wait_for(self, name: str) -> ServerSentEvent:
        while True:
            for event in self.events:
                if event.event == name:
                    return event
            assert not self.ended.is_set(), self.events
            await self._changed.wait()


async def new_agent(client: httpx.AsyncClient) -> str:
    answer = await client.post("/v1/agents", json={})
    assert answer.status_code == 201, answer.text
    agent_id: str = answer.json()["id"]
    return agent_id


async def test_a_parked_call_is_listed_and_runs_once_approved() -> None:
    async with library() as lib, trio.open_nursery() as nursery:
        agent_id = await new_agent(lib.client)
        assert agent_id.startswith("librarian-")  # the profile's AgentConfig
        chat = Chat()
        nursery.start_soon(chat.run, lib.client, agent_id, "Dune")
        asked = (await chat.wait_for("approval")).json()
        (listed,) = (await lib.client.get("/v1/approvals")).json()
        assert listed == {
            "id": asked["id"],
            "agent": agent_id,
            "tool": "lend",
            "arguments": {"book": "Dune"},
            "reason": RULE_REASON,
        }
        assert sample_tools.LENT == []  # nothing runs before the answer
        answer = await lib.client.post(f"/v1/approvals/{asked['id']}", json={"approved": True})
        assert answer.status_code == 200
        assert answer.json() == {"id": asked["id"], "approved": True, "reason": ""}
        await chat.ended.wait()
        names = [e.event for e in chat.events]
        # (The first delta may be recorded after the approval: the text was on
        # its way from the backend when the policy asked.)
        assert [n for n in names if n != "delta"] == [
            "approval",
            "approval_answered",
            "tool_call",
            "done",
        ]
        text = "".join(e.json()["text"] for e in chat.events if e.event == "delta")
        assert text == "Let me see. Done." and names[-2] == "delta"
        call = chat.events[names.index("tool_call")].json()
        assert call["result"] == "lent Dune" and call["error"] is None
        assert sample_tools.LENT == ["Dune"]
        assert (await lib.client.get("/v1/approvals")).json() == []
        # Answered already: 404, as for an id never seen.
        again = await lib.client.post(f"/v1/approvals/{asked['id']}", json={"approved": False})
        assert again.status_code == 404
        assert again.json()["error"]["type"] == "ApprovalNotFound"


async def test_a_denied_call_does_not_run_and_the_model_is_told() -> None:
    async with library() as lib, trio.open_nursery() as nursery:
        agent_id = await new_agent(lib.client)
        chat = Chat()
        nursery.start_soon(chat.run, lib.client, agent_id, "Dune")
        asked = (await chat.wait_for("approval")).json()
        answer = await lib.client.post(
            f"/v1/approvals/{asked['id']}", json={"approved": False, "reason": "overdue books"}
        )
        assert answer.json()["approved"] is False
        await chat.ended.wait()
        answered = next(e for e in chat.events if e.event == "approval_answered").json()
        assert answered["approved"] is False and answered["reason"] == "overdue books"
        call = next(e for e in chat.events if e.event == "tool_call").json()
        assert call["result"] is None and RULE_REASON in call["error"]
        assert sample_tools.LENT == []
        assert chat.events[-1].event == "done"


async def test_an_unanswered_approval_is_denied_after_the_timeout() -> None:
    async with library(approval_timeout=0.2) as lib, trio.open_nursery() as nursery:
        agent_id = await new_agent(lib.client)
        chat = Chat()
        nursery.start_soon(chat.run, lib.client, agent_id, "Dune")
        with trio.fail_after(5):
            await chat.ended.wait()
        answered = next(e for e in chat.events if e.event == "approval_answered").json()
        assert answered["approved"] is False
        assert answered["reason"] == "nobody answered within 0.2 s"
        assert sample_tools.LENT == []
        assert (await lib.client.get("/v1/approvals")).json() == []


async def test_the_grace_never_cancels_a_parked_turn() -> None:
    async with library(reattach_grace=0) as lib, trio.open_nursery() as nursery:
        agent_id = await new_agent(lib.client)
        chat = Chat()
        nursery.start_soon(chat.run, lib.client, agent_id, "Dune")
        asked = (await chat.wait_for("approval")).json()
        chat.scope.cancel()  # hang up while the turn is parked: no reader, grace 0
        await chat.ended.wait()
        handle = lib.runtime.agent(agent_id)
        await trio.testing.wait_all_tasks_blocked(0.05)
        assert not await handle.is_idle()  # parked, not cancelled
        rest: list[ServerSentEvent] = []

        async def reattach() -> None:
            async with aconnect_sse(
                lib.client,
                "GET",
                f"/v1/turns/{chat.turn_id}/events",
                headers={"last-event-id": chat.events[-1].id},
            ) as source:
                rest.extend([event async for event in source.aiter_sse()])

        nursery.start_soon(reattach)
        await trio.testing.wait_all_tasks_blocked(0.05)
        await lib.client.post(f"/v1/approvals/{asked['id']}", json={"approved": True})
    assert rest[-1].event == "done" and rest[-1].json()["stop_reason"] == "end_turn"
    assert sample_tools.LENT == ["Dune"]
    seen = [int(e.id) for e in chat.events + rest]
    assert seen == sorted(set(seen))


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 422, "approved"),
        ({"approved": "yes"}, 422, "approved"),
        ({"approved": True, "reason": 5}, 422, "reason"),
        ({"approved": True, "colour": "red"}, 422, "colour"),
    ],
)
async def test_bad_answers_are_refused(body: dict[str, Any], status: int, field: str) -> None:
    async with library() as lib, trio.open_nursery() as nursery:
        agent_id = await new_agent(lib.client)
        chat = Chat()
        nursery.start_soon(chat.run, lib.client, agent_id, "Dune")
        asked = (await chat.wait_for("approval")).json()
        answer = await lib.client.post(f"/v1/approvals/{asked['id']}", json=body)
        assert answer.status_code == status
        assert answer.json()["error"]["field"] == field
        assert len((await lib.client.get("/v1/approvals")).json()) == 1  # still waiting
        await lib.client.post(f"/v1/approvals/{asked['id']}", json={"approved": False})
        await chat.ended.wait()
    unknown = 404
    async with library() as lib:
        answer = await lib.client.post("/v1/approvals/approval-nope", json={"approved": True})
        assert answer.status_code == unknown


async def test_with_no_server_to_ask_the_call_is_denied_saying_so() -> None:
    sample_tools.LENT.clear()
    config = lending_profile().config
    async with (
        agy_trio.open_runtime(FAST, backend=ScriptedBackend(lending)) as runtime,
        runtime.open_agent(config) as agent,
    ):
        response = await agent.chat("Dune")
        await response.text()
    (call,) = response.tool_calls
    assert call.result is None and call.error is not None
    assert "no server to ask" in call.error
    assert sample_tools.LENT == []


async def test_a_rule_with_a_handler_keeps_its_handler_under_serve() -> None:
    asked: list[str] = []

    def librarian(request: agy_trio.policy.ToolRequest) -> bool:
        asked.append(request.tool)
        return True

    config = lending_profile().config.replace(
        policies=[agy_trio.policy.ask_user("lend", librarian)]
    )
    async with library(profile=ServedProfile(config=config)) as lib:
        agent_id = await new_agent(lib.client)
        async with aconnect_sse(
            lib.client, "POST", f"/v1/agents/{agent_id}/chat", json={"prompt": "Dune"}
        ) as source:
            names = [event.event async for event in source.aiter_sse()]
    assert "approval" not in names
    assert asked == ["lend"] and sample_tools.LENT == ["Dune"]


def test_a_profile_reads_from_toml_flat_or_with_an_agent_table(tmp_path: Path) -> None:
    profile = lending_profile()
    assert (profile.name, profile.description) == ("library", "Lends books.")
    assert profile.config.name == "librarian" and profile.tool_names == ["lend"]
    (rule,) = profile.config.policies
    assert rule.handler is None and rule.reason == RULE_REASON
    flat = profile_from_toml('model = "m"\nsystem_instructions = "Be brief."\n')
    assert flat.name == "agy" and flat.config.model == "m"
    assert flat.config.system_instructions == "Be brief."
    path = tmp_path / "profile.toml"
    path.write_text('name = "x"\n[agent]\nmodel = "mine"\n')
    base = agy_trio.AgentConfig(model="theirs", base_url="http://127.0.0.1:9/v1")
    loaded = load_profile(path, base=base)
    assert loaded.config.model == "mine" and loaded.config.base_url == base.base_url
    for text, field in (
        ("[agent]\ntools = ['no.such:thing']", "agent.tools[0]"),
        ("colour = 'red'", "colour"),
        ("name = 'a/b'", "name"),
        ("[agent]\nmodel = 'm'\n[other]\nx = 1", "other"),
    ):
        with pytest.raises(ConfigError) as info:
            profile_from_toml(text)
        assert info.value.field == field, text
    with pytest.raises(ConfigError):
        load_profile(tmp_path / "missing.toml")
