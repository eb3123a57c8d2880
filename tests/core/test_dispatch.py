from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

from agy_trio.core.backend import AgentServices
from agy_trio.core.config import AgentConfig
from agy_trio.core.dispatch import ToolDispatcher
from agy_trio.core.hooks import Hooks, ToolEvent, ToolResultEvent, TurnEvent
from agy_trio.core.policy import Decision, PolicySet, ToolRequest, allow, ask_user, deny
from agy_trio.core.tools import ToolArgumentError, ToolNotFound, tool
from agy_trio.errors import ConfigError, PolicyDenied
from tests.core import sample_tools


class Journal:
    """Records the order in which policies, hooks and tools ran."""

    def __init__(self) -> None:
        self.entries: list[Any] = []

    async def ask(self, request: ToolRequest) -> bool:
        self.entries.append(("policy", request.tool, dict(request.arguments)))
        return True

    async def before(self, event: ToolEvent) -> None:
        self.entries.append(("before", event.tool))

    async def after(self, event: ToolResultEvent) -> None:
        self.entries.append(("after", event.tool, event.result, type(event.error)))

    async def turn(self, event: TurnEvent) -> None:
        self.entries.append(("turn", event.agent_id))

    def hooks(self) -> Hooks:
        return Hooks(
            on_turn_start=(self.turn,),
            on_turn_end=(self.turn,),
            before_tool=(self.before,),
            after_tool=(self.after,),
        )


def make(
    journal: Journal | None = None,
    policies: PolicySet | None = None,
    **kwargs: Any,
) -> ToolDispatcher:
    journal = journal or Journal()

    @tool
    def record(x: int) -> int:
        journal.entries.append(("tool", x))
        return x + 1

    @tool
    def explode() -> None:
        journal.entries.append(("tool", "explode"))
        raise RuntimeError("tool failed")

    return ToolDispatcher(
        "agent-1",
        (record, explode, sample_tools.add),
        policies if policies is not None else PolicySet((ask_user("*", journal.ask),)),
        journal.hooks(),
        **kwargs,
    )


def test_satisfies_agent_services() -> None:
    services: AgentServices = make()
    assert services.agent_id == "agent-1"
    assert [t.name for t in services.tools] == ["record", "explode", "add"]


async def test_call_runs_policy_then_hooks_then_tool() -> None:
    journal = Journal()
    assert await make(journal).call_tool("record", {"x": 1}) == 2
    assert journal.entries == [
        ("policy", "record", {"x": 1}),
        ("before", "record"),
        ("tool", 1),
        ("after", "record", 2, type(None)),
    ]


async def test_async_tool_through_the_dispatcher() -> None:
    assert await make().call_tool("add", {"a": 2, "b": 5}) == 7


async def test_unknown_tool_is_a_clear_error() -> None:
    journal = Journal()
    with pytest.raises(ToolNotFound) as info:
        await make(journal).call_tool("nope", {})
    assert info.value.tool == "nope"
    assert "record" in str(info.value)
    assert journal.entries == []


async def test_denied_tool_runs_nothing() -> None:
    journal = Journal()
    dispatcher = make(journal, PolicySet((deny("record"),)))
    with pytest.raises(PolicyDenied):
        await dispatcher.call_tool("record", {"x": 1})
    assert journal.entries == []


async def test_before_tool_veto_blocks_the_tool() -> None:
    ran: list[str] = []

    @tool
    def guarded() -> None:
        ran.append("tool")

    def veto(event: ToolEvent) -> bool:
        return False

    dispatcher = ToolDispatcher("a", [guarded], hooks=Hooks(before_tool=(veto,)))
    with pytest.raises(PolicyDenied, match="vetoed"):
        await dispatcher.call_tool("guarded", {})
    assert ran == []


async def test_tool_error_reaches_after_hooks_then_propagates() -> None:
    journal = Journal()
    with pytest.raises(RuntimeError, match="tool failed"):
        await make(journal).call_tool("explode", {})
    assert journal.entries[-1] == ("after", "explode", None, RuntimeError)


async def test_bad_arguments_reach_after_hooks_then_propagate() -> None:
    journal = Journal()
    with pytest.raises(ToolArgumentError):
        await make(journal).call_tool("record", {"x": "one"})
    assert journal.entries[-1] == ("after", "record", None, ToolArgumentError)


async def test_handler_timeout_applies(autojump_clock: trio.abc.Clock) -> None:
    async def slow(request: ToolRequest) -> bool:
        await trio.sleep(100)
        return True

    dispatcher = make(policies=PolicySet((ask_user("*", slow),)), handler_timeout=7)
    with pytest.raises(PolicyDenied, match="within 7 s"):
        await dispatcher.call_tool("record", {"x": 1})
    assert trio.current_time() == pytest.approx(7)


async def test_authorize_answers_without_raising(caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal()
    dispatcher = make(journal, PolicySet((allow("*"), deny("run_command"))))
    assert await dispatcher.authorize("read_file", {"path": "x"}) is True
    with caplog.at_level(logging.INFO, logger="agy_trio.dispatch"):
        assert await dispatcher.authorize("run_command", {"cmd": "rm"}) is False
    assert any("run_command" in record.getMessage() for record in caplog.records)
    # Built-in tools still pass through the before_tool hooks, but never run here.
    assert journal.entries == [("before", "read_file")]


async def test_authorize_fails_closed_on_hook_error() -> None:
    def broken(event: ToolEvent) -> None:
        raise RuntimeError("bug")

    dispatcher = ToolDispatcher("a", hooks=Hooks(before_tool=(broken,)))
    assert await dispatcher.authorize("anything", {}) is False


async def test_turn_hooks() -> None:
    journal = Journal()
    dispatcher = make(journal)
    await dispatcher.turn_started()
    await dispatcher.turn_ended()
    assert journal.entries == [("turn", "agent-1"), ("turn", "agent-1")]


def test_duplicate_tool_names_are_rejected() -> None:
    with pytest.raises(ConfigError) as info:
        ToolDispatcher("a", [sample_tools.echo, tool(sample_tools.halve, name="echo")])
    assert info.value.field == "tools"


@pytest.mark.parametrize("value", [0, -1, float("nan"), True, "5"])
def test_invalid_handler_timeout_is_rejected(value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        ToolDispatcher("a", handler_timeout=value)
    assert info.value.field == "handler_timeout"


async def test_from_config_uses_tools_policies_and_default() -> None:
    config = AgentConfig(
        tools=(sample_tools.echo, sample_tools.add),
        policies=(allow("echo"),),
        default_policy=Decision.DENY,
    )
    dispatcher = ToolDispatcher.from_config("a", config, handler_timeout=3)
    assert dispatcher.tools == (sample_tools.echo, sample_tools.add)
    assert await dispatcher.call_tool("echo", {"text": "hi"}) == "hi"
    with pytest.raises(PolicyDenied):
        await dispatcher.call_tool("add", {"a": 1})
    assert dispatcher.get_tool("echo") is sample_tools.echo
    assert "echo" in repr(dispatcher)
