"""The SDK's hook points through the real SDK, its harness and the local model server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from agy_trio import Hooks, tool
from agy_trio.core.hook_types import HookContext, HookResult, StopArgs, StopDecision, StopHookResult
from agy_trio.core.policy import ToolRequest
from agy_trio.errors import TurnVetoed
from tests.core.sample_tools import lookup
from tests.sdk_support import local_agent, sdk_agent, sdk_runtime

pytestmark = pytest.mark.sdk


@tool
def flaky(topic: str) -> str:
    """A tool that fails.

    Args:
        topic: What to look up.
    """
    raise RuntimeError("database on fire")


def _tool_messages(server: Any) -> list[str]:
    return [
        str(message.get("content"))
        for request in server.requests
        for message in request.messages
        if message.get("role") == "tool"
    ]


async def test_pre_turn_rewrites_the_prompt_the_model_receives(tmp_path: Path, server: Any) -> None:
    def rewrite(prompt: str, context: HookContext) -> str:
        return f"{prompt} (turn {context.turn})"

    config = local_agent(server, hooks=Hooks(pre_turn=(rewrite,)))
    async with sdk_runtime(tmp_path) as (rt, _):
        agent = await rt.create_agent(config)
        assert await (await agent.chat("hello")).text() == "You said: hello (turn 1)"
        assert server.requests[-1].user_request == "hello (turn 1)"

        vetoing = local_agent(server, hooks=Hooks(pre_turn=(lambda p: HookResult(False, "no"),)))
        other = await rt.create_agent(vetoing)
        count = len(server.requests)
        with pytest.raises(TurnVetoed, match="no"):
            await other.chat("anything")
        assert len(server.requests) == count  # the prompt never left


async def test_pre_tool_call_rewrites_the_arguments_the_tool_gets(
    tmp_path: Path, server: Any
) -> None:
    seen: list[ToolRequest] = []

    async def redirect(call: ToolRequest) -> HookResult:
        await trio.lowlevel.checkpoint()
        seen.append(call)
        return HookResult(modified_args={"topic": "trio"})

    config = local_agent(server, tools=[lookup], hooks=Hooks(pre_tool_call=(redirect,)))
    async with sdk_agent(tmp_path, config) as (agent, _):
        response = await agent.chat('call tool lookup with {"topic": "asyncio"}')
        text = await response.text()
        [call] = response.tool_calls
    assert [dict(c.args) for c in seen] == [{"topic": "asyncio"}]
    assert call.result == "facts about trio"
    assert "facts about trio" in text
    assert any("facts about trio" in content for content in _tool_messages(server))


async def test_on_tool_error_message_reaches_the_model(tmp_path: Path, server: Any) -> None:
    def explain(error: Exception, context: HookContext) -> str:
        assert context.call is not None and context.call.tool == "flaky"
        return f"flaky is down ({type(error).__name__}); answer from memory"

    config = local_agent(server, tools=[flaky], hooks=Hooks(on_tool_error=(explain,)))
    async with sdk_agent(tmp_path, config) as (agent, _):
        response = await agent.chat('call tool flaky with {"topic": "x"}')
        await response.text()
    tool_contents = _tool_messages(server)
    assert any("flaky is down (RuntimeError); answer from memory" in c for c in tool_contents)
    assert not any("database on fire" in c for c in tool_contents)


async def test_a_stop_hook_continues_the_turn(tmp_path: Path, server: Any) -> None:
    seen: list[StopArgs] = []

    def keep_going(args: StopArgs) -> StopHookResult:
        seen.append(args)
        if args.continuation_count == 0:
            return StopHookResult(StopDecision.CONTINUE, "now say goodbye")
        return StopHookResult()

    config = local_agent(server, hooks=Hooks(stop=(keep_going,)))
    async with sdk_agent(tmp_path, config) as (agent, _):
        response = await agent.chat("hello")
        text = await response.text()
    assert [args.continuation_count for args in seen] == [0, 1]
    assert seen[0].response_text == "You said: hello"
    # The harness gave the model the hook's reason and the turn went on.
    assert len(server.requests) == 2
    assert "now say goodbye" in str(server.requests[-1].messages)
    assert "You said: hello" in text
