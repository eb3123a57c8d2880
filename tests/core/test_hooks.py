from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
import trio

from agy_trio.core.hooks import Hooks, ToolEvent, ToolResultEvent, TurnEvent
from agy_trio.errors import ConfigError, PolicyDenied

EVENT = ToolEvent("agent-1", "write", {"path": "x"})


def test_hooks_are_stored_as_tuples() -> None:
    def hook(event: Any) -> None:
        pass

    hooks = Hooks(on_turn_start=[hook], before_tool=[hook, hook])
    assert hooks.on_turn_start == (hook,)
    assert hooks.before_tool == (hook, hook)
    assert hooks.after_tool == ()


@pytest.mark.parametrize("kind", ["on_turn_start", "on_turn_end", "before_tool", "after_tool"])
def test_non_callable_hook_is_rejected(kind: str) -> None:
    with pytest.raises(ConfigError) as info:
        bad: dict[str, Any] = {kind: ["not callable"]}
        Hooks(**bad)
    assert info.value.field == kind


async def test_turn_hooks_run_in_order_with_the_agent_id() -> None:
    calls: list[tuple[str, TurnEvent]] = []

    def first(event: TurnEvent) -> None:
        calls.append(("first", event))

    async def second(event: TurnEvent) -> None:
        await trio.lowlevel.checkpoint()
        calls.append(("second", event))

    hooks = Hooks(on_turn_start=(first, second), on_turn_end=(second, first))
    await hooks.run_turn_start("a1", handler_timeout=1)
    await hooks.run_turn_end("a1", handler_timeout=1)
    assert calls == [
        ("first", TurnEvent("a1")),
        ("second", TurnEvent("a1")),
        ("second", TurnEvent("a1")),
        ("first", TurnEvent("a1")),
    ]


async def test_sync_hooks_run_off_the_trio_thread() -> None:
    threads: list[int] = []

    def where(event: Any) -> None:
        threads.append(threading.get_ident())

    await Hooks(on_turn_start=(where,)).run_turn_start("a", handler_timeout=1)
    assert threads and threads[0] != threading.get_ident()


@pytest.mark.parametrize("answer", [None, True])
async def test_before_tool_none_or_true_lets_the_tool_run(answer: Any) -> None:
    seen: list[ToolEvent] = []

    def hook(event: ToolEvent) -> Any:
        seen.append(event)
        return answer

    await Hooks(before_tool=(hook,)).run_before_tool(EVENT, handler_timeout=1)
    assert seen == [EVENT]


async def test_before_tool_false_vetoes_and_stops_later_hooks() -> None:
    calls: list[str] = []

    async def veto(event: ToolEvent) -> bool:
        calls.append("veto")
        return False

    def later(event: ToolEvent) -> None:
        calls.append("later")

    with pytest.raises(PolicyDenied) as info:
        await Hooks(before_tool=(veto, later)).run_before_tool(EVENT, handler_timeout=1)
    assert info.value.tool == "write"
    assert "vetoed" in info.value.reason
    assert calls == ["veto"]


async def test_before_tool_raising_denies(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: ToolEvent) -> None:
        raise RuntimeError("hook bug")

    with (
        caplog.at_level(logging.WARNING, logger="agy_trio.hooks"),
        pytest.raises(PolicyDenied, match="RuntimeError: hook bug"),
    ):
        await Hooks(before_tool=(broken,)).run_before_tool(EVENT, handler_timeout=1)
    assert caplog.records


@pytest.mark.parametrize("answer", [0, 1, "no", []])
async def test_before_tool_odd_answer_denies(answer: Any) -> None:
    def odd(event: ToolEvent) -> Any:
        return answer

    with pytest.raises(PolicyDenied, match="not None, True or False"):
        await Hooks(before_tool=(odd,)).run_before_tool(EVENT, handler_timeout=1)


async def test_before_tool_past_timeout_denies(autojump_clock: trio.abc.Clock) -> None:
    async def slow(event: ToolEvent) -> None:
        await trio.sleep(100)

    with pytest.raises(PolicyDenied, match="did not answer within 3 s"):
        await Hooks(before_tool=(slow,)).run_before_tool(EVENT, handler_timeout=3)
    assert trio.current_time() == pytest.approx(3)


async def test_observer_failures_are_logged_and_swallowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    def broken(event: Any) -> None:
        calls.append("broken")
        raise ValueError("observer bug")

    async def fine(event: Any) -> None:
        calls.append("fine")

    hooks = Hooks(
        on_turn_start=(broken, fine), on_turn_end=(broken, fine), after_tool=(broken, fine)
    )
    with caplog.at_level(logging.ERROR, logger="agy_trio.hooks"):
        await hooks.run_turn_start("a", handler_timeout=1)
        await hooks.run_turn_end("a", handler_timeout=1)
        await hooks.run_after_tool(ToolResultEvent("a", "t", result=1), handler_timeout=1)
    assert calls == ["broken", "fine"] * 3
    errors = [record for record in caplog.records if record.name == "agy_trio.hooks"]
    assert len(errors) == 3
    assert all(record.exc_info and "observer bug" in str(record.exc_info[1]) for record in errors)


async def test_slow_observer_is_abandoned_with_a_warning(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    async def slow(event: Any) -> None:
        await trio.sleep(100)
        calls.append("slow finished")

    # Async on purpose: under the autojump clock, time leaps while a worker
    # thread runs, so a sync hook here could itself appear to time out.
    async def after(event: Any) -> None:
        calls.append("after")

    with caplog.at_level(logging.WARNING, logger="agy_trio.hooks"):
        await Hooks(on_turn_end=(slow, after)).run_turn_end("a", handler_timeout=2)
    assert calls == ["after"]
    assert trio.current_time() == pytest.approx(2)
    assert any("did not return" in record.getMessage() for record in caplog.records)


def test_tool_result_event_ok() -> None:
    assert ToolResultEvent("a", "t", result=3).ok
    assert not ToolResultEvent("a", "t", error=ValueError()).ok


def test_tool_result_event_is_the_tool_event_with_its_outcome() -> None:
    event = ToolResultEvent("a", "t", {"x": 1}, result=2)
    assert isinstance(event, ToolEvent)
    assert (event.agent_id, event.tool, dict(event.arguments), event.result) == (
        "a",
        "t",
        {"x": 1},
        2,
    )
    assert event != ToolEvent("a", "t", {"x": 1})
