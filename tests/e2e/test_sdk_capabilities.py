"""Subagents, skills and compaction through the real SDK, its harness and the local model server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agy_trio import AgentConfig, Hooks, policy
from agy_trio.core.capabilities import (
    CompactionConfig,
    InlineSkill,
    RunCommandConfig,
    SandboxStatus,
    SubagentConfig,
)
from agy_trio.core.events import SubagentText, ToolCall, TurnEnd
from agy_trio.core.policy import ToolRequest
from agy_trio.errors import ConfigError
from tests.core.sample_tools import lookup
from tests.sdk_support import local_agent, sdk_agent, sdk_runtime

pytestmark = pytest.mark.sdk


def _invoke(subagent: str, prompt: str) -> str:
    arguments = {
        "Subagents": [{"TypeName": subagent, "Role": "Researcher", "Prompt": prompt}],
        "toolSummary": "Research",
        "toolAction": "Researching",
    }
    return f"call tool invoke_subagent with {json.dumps(arguments)}"


async def test_a_subagent_runs_its_tools_behind_the_agents_policies_with_its_depth(
    tmp_path: Path, server: Any
) -> None:
    asked: list[str] = []

    def approve(request: ToolRequest) -> bool:
        asked.append(request.tool)
        return True

    config = local_agent(
        server,
        tools=[lookup],
        policies=[policy.ask_user("*", approve)],
        subagents=[SubagentConfig(name="researcher", description="looks up", tools=["lookup"])],
        max_subagent_depth=1,
    )
    async with sdk_agent(tmp_path, config) as (agent, _):
        prompt = _invoke("researcher", 'call tool lookup with {"topic": "trio"}')
        response = await agent.chat(prompt)
        seen = [event async for event in response.events()]
    calls = [event for event in seen if isinstance(event, ToolCall)]
    assert [(c.name, c.depth) for c in calls] == [("invoke_subagent", 0), ("lookup", 1)]
    invoked, looked_up = calls
    assert looked_up.result == "facts about trio"
    assert looked_up.trajectory_id and looked_up.trajectory_id != invoked.trajectory_id
    # Both the invocation and the subagent's own call went through the agent's policy.
    assert asked == ["invoke_subagent", "lookup"]
    # The subagent's words stream apart, with its depth, never inside the answer.
    sub_text = "".join(e.text for e in seen if isinstance(e, SubagentText) and e.depth == 1)
    assert "facts about trio" in sub_text
    [end] = [event for event in seen if isinstance(event, TurnEnd)]
    assert looked_up.trajectory_id in end.trajectory_usages
    assert len(end.trajectory_usages) == 2


async def test_invoke_subagent_needs_static_subagents() -> None:
    from agy_trio.adapters.antigravity.config import builtin_tool_names

    with pytest.raises(ConfigError, match=r"needs AgentConfig\.subagents"):
        builtin_tool_names(AgentConfig(builtin_tools=["invoke_subagent"]))


async def test_an_inline_skill_reaches_the_model_and_is_used(tmp_path: Path, server: Any) -> None:
    skill = InlineSkill(
        name="haiku-writer",
        description="Write answers as haiku",
        content="Answer in three lines of five, seven and five syllables.",
    )
    config = local_agent(server, inline_skills=[skill])
    async with sdk_agent(tmp_path, config) as (agent, _):
        first = await agent.chat("hello")
        await first.text()
        request = server.requests[-1]
        assert "haiku-writer" in json.dumps(request.body)
        assert "lookup_skill" in request.tools
        lookup_call = {"skill_name": "haiku-writer", "toolSummary": "Skill", "toolAction": "Read"}
        used = await agent.chat(f"call tool lookup_skill with {json.dumps(lookup_call)}")
        text = await used.text()
    assert "three lines of five, seven and five syllables" in text


async def test_compaction_is_configured_and_compaction_indices_reflect_it(
    tmp_path: Path, server: Any
) -> None:
    summaries: list[str] = []
    config = local_agent(
        server,
        compaction=CompactionConfig(token_threshold=4000),
        hooks=Hooks(on_compaction=(summaries.append,)),
    )
    async with sdk_runtime(tmp_path) as (rt, _):
        agents = [await rt.create_agent(config), await rt.create_agent(local_agent(server))]
        for agent in agents:
            for n in range(8):
                await (await agent.chat(f"message {n} " + "lorem ipsum " * 60)).text()
        compacted, default = [await agent.compaction_indices() for agent in agents]
        history = await agents[0].history()
    assert compacted, "the harness never compacted"
    assert all(0 <= index < len(history) for index in compacted)
    assert default == []  # the harness's default threshold is far above these turns
    assert summaries and all(summary for summary in summaries)  # on_compaction saw each


async def test_the_sandbox_status_is_readable(tmp_path: Path, server: Any) -> None:
    config = local_agent(
        server,
        builtin_tools=["run_command"],
        run_command=RunCommandConfig(timeout_seconds=10, enable_sandbox=True),
        policies=[policy.deny("run_command")],
    )
    async with sdk_agent(tmp_path, config) as (agent, _):
        await (await agent.chat("hello")).text()
        status = await agent.sandbox_status()
    assert isinstance(status, SandboxStatus)
    # Where the platform cannot isolate commands, the harness says why.
    assert status.available or status.unavailable_reason
