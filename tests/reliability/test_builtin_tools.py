"""Every tool the harness can run goes through the agent's policies, or is not offered.

For every built-in tool the SDK knows, an agent enables it alone; every tool
the harness then offers the model is called, under each way of saying no
(a rule naming the tool, ``deny_all``, ``default_policy="deny"`` and an
``ask_user`` handler that refuses). None may run. Built-ins whose tools the
harness would run unchecked are refused outright.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from google.antigravity.types import BuiltinTools

import agy_trio
from agy_trio import policy, tool
from agy_trio.adapters.antigravity.config import UNGUARDED_BUILTINS, harness_tool_names
from agy_trio.errors import ConfigError
from tests.sdk_support import harness_processes, local_agent, sdk_agent, sdk_runtime

pytestmark = [pytest.mark.sdk, pytest.mark.usefixtures("offline", "no_harness_left")]

HANG = 60


def _arguments(workspace: Path) -> dict[str, dict[str, Any]]:
    """Valid arguments for every tool the harness may offer, by the name the model sees."""
    target = str(workspace / "target.txt")
    return {
        "list_dir": {"DirectoryPath": str(workspace)},
        "grep_search": {"SearchPath": str(workspace), "Query": "secret"},
        "find_by_name": {"SearchDirectory": str(workspace), "Pattern": "*"},
        "view_file": {"AbsolutePath": target},
        "write_to_file": {
            "TargetFile": str(workspace / "written.txt"),
            "Overwrite": False,
            "CodeContent": "written",
            "Description": "a file",
        },
        "replace_file_content": {
            "TargetFile": target,
            "Instruction": "replace",
            "Description": "an edit",
            "AllowMultiple": False,
            "TargetContent": "secret",
            "ReplacementContent": "edited",
            "StartLine": 1,
            "EndLine": 1,
        },
        "run_command": {
            "Cwd": str(workspace),
            "WaitMsBeforeAsync": 0,
            "CommandLine": "touch command-ran",
        },
        "ask_question": {"questions": [{"question": "which one?", "options": ["a", "b"]}]},
        "run_workflow": {"Script": "log(1)\n", "Description": "a workflow"},
        "generate_image": {"Prompt": "a cat", "ImageName": "cat"},
        "search_web": {"query": "trio"},
        "read_url_content": {"Url": "http://127.0.0.1:9/page"},
    }


def _refuse_all(asked: list[str]) -> Callable[[policy.ToolRequest], bool]:
    def refuse(request: policy.ToolRequest) -> bool:
        asked.append(request.tool)
        return False

    return refuse


def _ways_to_say_no(name: str, asked: list[str]) -> dict[str, dict[str, Any]]:
    return {
        "deny(name)": {"policies": [policy.deny(name)]},
        "deny_all()": {"policies": [policy.deny_all()]},
        "default_policy=deny": {"default_policy": "deny"},
        "ask_user('*')": {"policies": [policy.ask_user("*", _refuse_all(asked))]},
    }


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The agents' workspace, with one file in it that a denied tool must leave alone."""
    folder = tmp_path / "workspace"
    folder.mkdir()
    (folder / "target.txt").write_text("secret\n")
    return folder


def _left_alone(workspace: Path) -> bool:
    """Nothing any tool would have done happened in ``workspace``."""
    files = sorted(p.name for p in workspace.iterdir())
    return files == ["target.txt"] and (workspace / "target.txt").read_text() == "secret\n"


SUPPORTED = [t.value for t in BuiltinTools if t.value not in UNGUARDED_BUILTINS]


def test_every_built_in_the_sdk_knows_is_covered() -> None:
    known = {t.value for t in BuiltinTools}
    assert set(SUPPORTED) | set(UNGUARDED_BUILTINS) == known
    assert set(UNGUARDED_BUILTINS) <= known


@pytest.mark.parametrize("builtin", SUPPORTED)
async def test_a_deny_policy_blocks_every_tool_a_built_in_brings(
    tmp_path: Path, server: Any, workspace: Path, builtin: str
) -> None:
    arguments = _arguments(workspace)
    asked: list[str] = []
    async with sdk_runtime(tmp_path) as (rt, _):
        for way, settings in _ways_to_say_no(builtin, asked).items():
            config = local_agent(
                server, builtin_tools=[builtin], workspaces=[workspace], **settings
            )
            agent = await rt.create_agent(config)
            with trio.fail_after(HANG):
                await (await agent.chat("which tools do you have?")).text()
            offered = set(server.requests[-1].tools)
            assert "manage_task" not in offered
            assert offered <= set(arguments), f"{builtin} offers an untested tool"
            for name in sorted(offered):
                asked.clear()
                with trio.fail_after(HANG):
                    prompt = f"call tool {name} with {json.dumps(arguments[name])}"
                    answer = await (await agent.chat(prompt)).text()
                assert "denied" in answer.lower(), f"{name} ran under {way}: {answer[:300]}"
                if way.startswith("ask_user"):
                    assert asked == [builtin], f"{name}: the handler was not asked"
            await agent.shutdown()
    assert _left_alone(workspace)


async def test_run_command_runs_when_allowed_and_never_brings_manage_task(
    tmp_path: Path, server: Any, workspace: Path
) -> None:
    arguments = _arguments(workspace)
    config = local_agent(
        server,
        builtin_tools=["run_command"],
        workspaces=[workspace],
        policies=[policy.allow("run_command")],
        default_policy="deny",
    )
    async with sdk_agent(tmp_path, config) as (agent, _):
        with trio.fail_after(HANG):
            prompt = f"call tool run_command with {json.dumps(arguments['run_command'])}"
            await (await agent.chat(prompt)).text()
            offered = set(server.requests[-1].tools)
            # The model asks for manage_task anyway: it is not there to run.
            answer = await (
                await agent.chat('call tool manage_task with {"Action": "list"}')
            ).text()
    assert offered == {"run_command"}
    assert (workspace / "command-ran").exists()
    assert answer.startswith("You said:")


@pytest.mark.parametrize("builtin", sorted(UNGUARDED_BUILTINS))
async def test_built_ins_the_harness_would_run_unchecked_are_refused(
    tmp_path: Path, server: Any, builtin: str
) -> None:
    async with sdk_runtime(tmp_path) as (rt, backend):
        with pytest.raises(ConfigError, match="without consulting any policy") as info:
            await rt.create_agent(local_agent(server, builtin_tools=[builtin]))
        assert info.value.field == "builtin_tools"
        assert rt.agents == []
        assert backend.harness_pids() == []
    assert harness_processes() == []


@pytest.mark.parametrize("name", ["run_command", "view_file", "manage_task", "write_to_file"])
async def test_a_custom_tool_named_like_a_built_in_is_refused(
    tmp_path: Path, server: Any, name: str
) -> None:
    def impostor() -> str:
        """Pretend to be a built-in."""
        return "impostor ran"

    impostor.__name__ = name
    assert name in harness_tool_names()
    async with sdk_runtime(tmp_path) as (rt, _):
        with pytest.raises(ConfigError, match="takes the name of a built-in") as info:
            await rt.create_agent(local_agent(server, tools=[tool(impostor)]))
        assert info.value.field == "tools"
        # Any other name is fine.
        impostor.__name__ = f"my_{name}"
        agent = await rt.create_agent(local_agent(server, tools=[tool(impostor)]))
        with trio.fail_after(HANG):
            answer = await (await agent.chat(f"call tool my_{name}")).text()
        assert "impostor ran" in answer


def test_harness_tool_names_cover_every_built_in() -> None:
    assert {t.value for t in BuiltinTools} <= harness_tool_names()
    assert agy_trio.ConfigError is ConfigError


@pytest.mark.parametrize("way", ["deny(name)", "ask_user('*')"])
async def test_a_denied_built_in_is_reported_with_its_error(
    tmp_path: Path, server: Any, workspace: Path, way: str
) -> None:
    asked: list[str] = []
    settings = _ways_to_say_no("edit_file", asked)[way]
    config = local_agent(server, builtin_tools=["edit_file"], workspaces=[workspace], **settings)
    async with sdk_agent(tmp_path, config) as (agent, _):
        arguments = _arguments(workspace)["replace_file_content"]
        with trio.fail_after(HANG):
            response = await agent.chat(
                f"call tool replace_file_content with {json.dumps(arguments)}"
            )
            await response.text()
        calls = [c for c in response.tool_calls if c.name == "edit_file"]
        assert calls, response.tool_calls
        # Never reported as if it had run: it carries the denial.
        assert all(c.error is not None and "denied" in c.error.lower() for c in calls), calls
        in_history = [c for m in await agent.history() for c in m.tool_calls]
        assert in_history and all(c.error is not None for c in in_history)
    assert _left_alone(workspace)
