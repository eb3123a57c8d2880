"""The SDK's hook points in Trio: their powers, their context, and how they fail."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
import trio
import trio.testing

import agy_trio
from agy_trio import AgentConfig, Hooks, RuntimeConfig
from agy_trio.adapters.scripted import CallTool, Say, ScriptedBackend, Turn
from agy_trio.core import hook_points
from agy_trio.core.dispatch import ToolDispatcher
from agy_trio.core.hook_types import (
    AskQuestionInteractionSpec,
    HookContext,
    HookResult,
    QuestionHookResult,
    QuestionResponse,
    StopArgs,
    StopDecision,
    StopHookResult,
)
from agy_trio.core.policy import ToolRequest
from agy_trio.errors import PolicyDenied, ToolError, TurnVetoed
from tests.core.sample_tools import lookup

FAST = RuntimeConfig(inter_agent_delay=0, handler_timeout=5)


@agy_trio.tool
def explode(reason: str) -> str:
    """Fail on purpose.

    Args:
        reason: Why.
    """
    raise ValueError(f"boom: {reason}")


def _runtime(script: list[Turn] | None = None) -> Any:
    return agy_trio.open_runtime(FAST, backend=ScriptedBackend(script))


# ------------------------------------------------------------------ pre_turn


async def test_pre_turn_rewrites_the_prompt_sync_and_async() -> None:
    seen: list[tuple[str, int, str]] = []

    def shout(prompt: str, context: HookContext) -> str:
        seen.append((prompt, context.turn, context.agent_id))
        return prompt.upper()

    async def tag(prompt: str) -> str:
        await trio.lowlevel.checkpoint()
        return f"[{prompt}]"

    config = AgentConfig(hooks=Hooks(pre_turn=(shout, tag)))
    async with _runtime() as rt, rt.open_agent(config) as agent:
        assert await (await agent.chat("hello")).text() == "You said: [HELLO]"
        assert await (await agent.chat("again")).text() == "You said: [AGAIN]"
    assert [(p, t) for p, t, _ in seen] == [("hello", 1), ("again", 2)]
    assert seen[0][2] == agent.agent_id


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (False, "vetoed by pre_turn hook"),
        (HookResult(allow=False, message="not on Sundays"), "not on Sundays"),
    ],
)
async def test_pre_turn_vetoes(answer: Any, message: str) -> None:
    config = AgentConfig(hooks=Hooks(pre_turn=(lambda prompt: answer,)))
    async with _runtime() as rt, rt.open_agent(config) as agent:
        with pytest.raises(TurnVetoed) as caught:
            await agent.chat("hello")
        assert message in caught.value.reason
        assert isinstance(caught.value, PolicyDenied)
        assert await agent.turn_count() == 0


async def test_a_raising_pre_turn_hook_fails_closed_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(prompt: str) -> str:
        raise RuntimeError("hook bug")

    config = AgentConfig(hooks=Hooks(pre_turn=(broken,)))
    async with _runtime() as rt, rt.open_agent(config) as agent:
        with (
            caplog.at_level(logging.WARNING, "agy_trio.hooks"),
            pytest.raises(TurnVetoed) as caught,
        ):
            await agent.send("hello")
        assert "RuntimeError: hook bug" in caught.value.reason
        assert await agent.turn_count() == 0
    assert any("broken" in record.getMessage() for record in caplog.records)


async def test_a_hanging_pre_turn_hook_times_out_closed(autojump_clock: trio.abc.Clock) -> None:
    async def hang(prompt: str) -> None:
        await trio.sleep_forever()

    dispatcher = ToolDispatcher("a", hooks=Hooks(pre_turn=(hang,)), handler_timeout=3)
    start = trio.current_time()
    with pytest.raises(TurnVetoed, match="did not return within 3 s"):
        await dispatcher.pre_turn("hi")
    assert trio.current_time() - start == pytest.approx(3)


async def test_a_slow_pre_turn_hook_holds_up_only_its_own_agent() -> None:
    release = threading.Event()
    entered = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def slow(prompt: str) -> None:
        token.run_sync_soon(entered.set)
        release.wait(30)

    slow_config = AgentConfig(name="slow", hooks=Hooks(pre_turn=(slow,)))
    async with _runtime() as rt:
        slow_agent = await rt.create_agent(slow_config)
        quick_agent = await rt.create_agent(AgentConfig(name="quick"))

        async def chat_to_the_end() -> None:
            # Read, not dropped: an unread response is interrupted, with a warning.
            assert await (await slow_agent.chat("slow")).text() == "You said: slow"

        async with trio.open_nursery() as nursery:
            nursery.start_soon(chat_to_the_end)
            await entered.wait()
            # The other agent streams a whole turn while the hook still blocks.
            assert await (await quick_agent.chat("quick")).text() == "You said: quick"
            release.set()


# ------------------------------------------------------------------ tool hooks


async def test_pre_tool_call_rewrites_arguments_and_post_tool_call_sees_the_result() -> None:
    results: list[tuple[Any, Any, str | None]] = []

    def redirect(call: ToolRequest, context: HookContext) -> HookResult:
        assert context.call is not None and context.call.name == "lookup"
        return HookResult(modified_args={"topic": call.args["topic"] + " (checked)"})

    async def record(event: Any, context: HookContext) -> None:
        await trio.lowlevel.checkpoint()
        results.append((event.result, event.error, context.call and context.call.tool))

    script = [Turn([CallTool("lookup", {"topic": "trio"}), Say("done")])]
    config = AgentConfig(
        tools=(lookup,), hooks=Hooks(pre_tool_call=(redirect,), post_tool_call=(record,))
    )
    async with _runtime(script) as rt, rt.open_agent(config) as agent:
        response = await agent.chat("go")
        await response.text()
        [call] = response.tool_calls
    assert call.result == "facts about trio (checked)"
    assert results == [("facts about trio (checked)", None, "lookup")]


async def test_a_mapping_from_pre_tool_call_merges_and_false_denies() -> None:
    script = [Turn([CallTool("lookup", {"topic": "a"}), CallTool("lookup", {"topic": "b"})])]

    def hook(call: ToolRequest) -> Any:
        return {"topic": "merged"} if call.args["topic"] == "a" else False

    config = AgentConfig(tools=(lookup,), hooks=Hooks(pre_tool_call=(hook,)))
    async with _runtime(script) as rt, rt.open_agent(config) as agent:
        response = await agent.chat("go")
        await response.text()
        merged, denied = response.tool_calls
    assert merged.result == "facts about merged"
    assert denied.result is None and "denied by pre_tool_call hook" in (denied.error or "")


async def test_on_tool_error_gives_the_model_a_message_of_its_own() -> None:
    seen: list[Exception] = []

    def explain(error: Exception) -> str:
        seen.append(error)
        return "the tool is down; answer from memory"

    script = [Turn([CallTool("explode", {"reason": "x"}), Say("ok")])]
    config = AgentConfig(tools=(explode,), hooks=Hooks(on_tool_error=(explain,)))
    async with _runtime(script) as rt, rt.open_agent(config) as agent:
        response = await agent.chat("go")
        await response.text()
        [call] = response.tool_calls
    assert call.error is not None and "the tool is down; answer from memory" in call.error
    assert "boom" not in call.error
    [error] = seen
    assert isinstance(error, ValueError) and str(error) == "boom: x"


async def test_a_failing_on_tool_error_hook_keeps_the_error() -> None:
    dispatcher = ToolDispatcher(
        "a", [explode], hooks=Hooks(on_tool_error=(lambda error: 1 / 0,)), handler_timeout=1
    )
    with pytest.raises(ValueError, match="boom"):
        await dispatcher.call_tool("explode", {"reason": "x"})


async def test_tool_error_carries_the_message_and_pickles() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(ToolError("t", "msg", "srv")))
    assert (error.tool, error.message, error.server_name, str(error)) == ("t", "msg", "srv", "msg")


# ------------------------------------------------------------------ stop, interaction


async def test_stop_hooks_continue_with_a_reason_or_let_it_stop() -> None:
    context = HookContext("a")
    args = StopArgs(response_text="half done", continuation_count=0)

    def go_on(args: StopArgs) -> StopHookResult | None:
        if args.continuation_count == 0:
            return StopHookResult(StopDecision.CONTINUE, "finish the list")
        return None

    result = await hook_points.run_stop((go_on,), context, args, timeout=1)
    assert result == StopHookResult(StopDecision.CONTINUE, "finish the list")
    again = StopArgs(response_text="done", continuation_count=1)
    assert await hook_points.run_stop((go_on,), context, again, timeout=1) == StopHookResult()
    assert await hook_points.run_stop((lambda a: "go on",), context, args, timeout=1) == (
        StopHookResult(StopDecision.CONTINUE, "go on")
    )
    # A failing stop hook lets the turn stop.
    assert await hook_points.run_stop((lambda a: 1 / 0,), context, args, timeout=1) == (
        StopHookResult()
    )


async def test_on_interaction_answers_or_cancels() -> None:
    context = HookContext("a")
    spec = AskQuestionInteractionSpec()
    answered = await hook_points.run_on_interaction(
        (lambda s: None, lambda s: ["blue"]), context, spec, timeout=1
    )
    assert answered == QuestionHookResult((QuestionResponse(None, "blue"),))
    assert await hook_points.run_on_interaction((lambda s: None,), context, spec, timeout=1) is None
    failed = await hook_points.run_on_interaction((lambda s: 1 / 0,), context, spec, timeout=1)
    assert failed == QuestionHookResult(cancelled=True)


async def test_session_hooks_take_the_context_or_nothing() -> None:
    seen: list[str] = []

    def with_context(context: HookContext) -> None:
        context.set("started", True)
        seen.append(context.agent_id)

    def bare() -> None:
        seen.append("bare")

    dispatcher = ToolDispatcher("agent-9", hooks=Hooks(on_session_start=(with_context, bare)))
    await dispatcher.session_started()
    assert seen == ["agent-9", "bare"]
    assert dispatcher.context().get("started") is True


def test_hooks_know_their_sdk_points() -> None:
    hooks = Hooks(stop=(print,), pre_turn=(print,), before_tool=(print,))
    assert hooks.sdk_points == ("pre_turn", "stop")
