"""MCP servers through the real SDK: the Go harness runs them, agy_trio's policies guard them.

The shipped test server (:mod:`agy_trio.testing.mcp_server`, written with
the ``mcp`` package) runs over stdio, started by the harness under agy_trio's
guard, and over streamable HTTP on hypercorn's Trio worker in the test's own
Trio run. The local model server calls its tools lazily (``call_mcp_tool``)
or eagerly (``mcp_<server>_<tool>``) when the prompt says so.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest
import trio

import agy_trio
from agy_trio import ConfigError, McpServerError, policy
from agy_trio.adapters.antigravity import AntigravityBackend
from agy_trio.policy import ToolRequest
from agy_trio.testing import open_model_server
from agy_trio.testing.mcp_server import TABLE, open_mcp_http_server
from tests.sdk_support import local_agent, sdk_runtime

pytestmark = pytest.mark.sdk

LOOKUP = 'call mcp tool agytest/lookup with {"key": "alpha"}'


def stdio_server(tmp_path: Path, *extra: str, **fields: Any) -> agy_trio.McpStdioServer:
    return agy_trio.McpStdioServer(
        name="agytest",
        command=sys.executable,
        args=[
            "-m",
            "agy_trio.testing.mcp_server",
            "--calls",
            str(tmp_path / "calls.jsonl"),
            "--pid-file",
            str(tmp_path / "mcp.pid"),
            *extra,
        ],
        **fields,
    )


def calls_made(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "calls.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def mcp_pid(tmp_path: Path) -> int:
    return int((tmp_path / "mcp.pid").read_text())


def guards_and_servers() -> list[psutil.Process]:
    """Every MCP guard or test server process on the machine started for a test."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        if "mcp_guard.py" in cmdline or "agy_trio.testing.mcp_server" in cmdline:
            found.append(proc)
    return found


async def wait_gone(pids: Sequence[int], timeout: float = 15.0) -> list[int]:
    """Wait (in a thread: psutil's wait blocks) until the processes are gone; those left over."""

    def wait() -> list[int]:
        left = []
        for pid in pids:
            try:
                psutil.Process(pid).wait(timeout=timeout)
            except psutil.NoSuchProcess:
                continue
            except psutil.TimeoutExpired:
                left.append(pid)
        return left

    return await trio.to_thread.run_sync(wait)


@pytest.fixture(autouse=True)
def _no_mcp_process_left() -> Any:
    before = {p.pid for p in guards_and_servers()}
    yield
    # A guard whose server just went may still be exiting: wait for that, bounded.
    new = [p for p in guards_and_servers() if p.pid not in before]
    _, left = psutil.wait_procs(new, timeout=10)
    assert left == [], f"MCP processes outlived their test: {[p.cmdline() for p in left]}"


async def test_a_stdio_server_answers_lazily_with_its_name_on_the_tool_call(
    tmp_path: Path,
) -> None:
    async with open_model_server() as model, sdk_runtime(tmp_path) as (runtime, _):
        config = local_agent(model, mcp_servers=[stdio_server(tmp_path)])
        async with runtime.open_agent(config) as agent:
            response = await agent.chat(LOOKUP)
            text = await response.text()
            assert TABLE["alpha"] in text
            (call,) = response.tool_calls
            assert (call.name, call.server_name, call.arguments) == (
                "lookup",
                "agytest",
                {"key": "alpha"},
            )
            history = await agent.history()
            assert any(
                c.server_name == "agytest" and c.name == "lookup"
                for m in history
                for c in m.tool_calls
            )
            pid = mcp_pid(tmp_path)
            assert psutil.pid_exists(pid)
        # The agent is gone (its harness lives on for others): so is its server.
        assert await wait_gone([pid]) == []
    assert calls_made(tmp_path) == [{"tool": "lookup", "arguments": {"key": "alpha"}, "pid": pid}]
    declared = model.requests[0].tools
    assert "call_mcp_tool" in declared and "mcp_agytest_lookup" not in declared


async def test_an_eager_server_tool_is_called_by_its_own_name(tmp_path: Path) -> None:
    server = stdio_server(tmp_path, force_all_tools_eager=True)
    async with open_model_server() as model, sdk_runtime(tmp_path) as (runtime, _):
        agent = await runtime.create_agent(local_agent(model, mcp_servers=[server]))
        response = await agent.chat('call mcp tool agytest/add with {"a": 2, "b": 40}')
        assert "42" in await response.text()
        assert [(c.name, c.server_name) for c in response.tool_calls] == [("add", "agytest")]
    assert "mcp_agytest_add" in model.requests[0].tools
    assert [c["tool"] for c in calls_made(tmp_path)] == ["add"]


async def test_a_deny_rule_on_server_slash_tool_stops_the_call_and_the_model_sees_it(
    tmp_path: Path,
) -> None:
    server = stdio_server(tmp_path)
    config_policies = [policy.deny(server, ["lookup"])]
    async with open_model_server() as model, sdk_runtime(tmp_path) as (runtime, _):
        config = local_agent(model, mcp_servers=[server], policies=config_policies)
        async with runtime.open_agent(config) as agent:
            denied = await agent.chat(LOOKUP)
            assert TABLE["alpha"] not in await denied.text()
            # Another tool of the same server is still allowed.
            allowed = await agent.chat('call mcp tool agytest/add with {"a": 1, "b": 2}')
            assert "3" in await allowed.text()
    assert [c["tool"] for c in calls_made(tmp_path)] == ["add"]
    refusal = model.requests[1].messages[-1]
    assert refusal["role"] == "tool" and "denied" in refusal["content"].lower()


async def test_an_ask_user_rule_on_an_mcp_tool_reaches_the_trio_handler(tmp_path: Path) -> None:
    asked: list[ToolRequest] = []

    async def approve(request: ToolRequest) -> bool:
        await trio.lowlevel.checkpoint()  # a Trio handler, in the runtime's run
        asked.append(request)
        return request.arguments.get("key") == "alpha"

    server = stdio_server(tmp_path)
    async with open_model_server() as model, sdk_runtime(tmp_path) as (runtime, _):
        rules = [policy.ask_user(server, ["lookup"], handler=approve)]
        async with runtime.open_agent(
            local_agent(model, mcp_servers=[server], policies=rules)
        ) as agent:
            assert TABLE["alpha"] in await (await agent.chat(LOOKUP)).text()
            refused = await agent.chat('call mcp tool agytest/lookup with {"key": "pi"}')
            assert TABLE["pi"] not in await refused.text()
    assert [(r.tool, dict(r.arguments)) for r in asked] == [
        ("agytest/lookup", {"key": "alpha"}),
        ("agytest/lookup", {"key": "pi"}),
    ]
    assert [c["arguments"] for c in calls_made(tmp_path)] == [{"key": "alpha"}]


async def test_an_http_server_on_hypercorns_trio_worker_answers(tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    async with (
        open_mcp_http_server("web", calls) as endpoint,
        open_model_server() as model,
        sdk_runtime(tmp_path) as (runtime, _),
    ):
        server = agy_trio.McpHttpServer(name="web", url=endpoint.url)
        async with runtime.open_agent(local_agent(model, mcp_servers=[server])) as agent:
            response = await agent.chat('call mcp tool web/lookup with {"key": "omega"}')
            assert TABLE["omega"] in await response.text()
            assert [(c.name, c.server_name) for c in response.tool_calls] == [("lookup", "web")]
    assert [c["arguments"] for c in calls_made(tmp_path)] == [{"key": "omega"}]
    assert calls_made(tmp_path)[0]["pid"] == os.getpid()  # served in this process


@asynccontextmanager
async def _a_lingering_server_in_use(
    tmp_path: Path,
) -> AsyncIterator[tuple[AntigravityBackend, int]]:
    """A stdio server whose tool an agent has called; the backend and the server's pid.

    ``--linger``: the server stays on after its stdin closes, as some servers
    do; only the guard ends it once the harness is gone.
    """
    server = stdio_server(tmp_path, "--linger", "600")
    async with open_model_server() as model, sdk_runtime(tmp_path) as (runtime, backend):
        agent = await runtime.create_agent(local_agent(model, mcp_servers=[server]))
        assert TABLE["alpha"] in await (await agent.chat(LOOKUP)).text()
        yield backend, mcp_pid(tmp_path)


async def test_no_server_outlives_a_sigkilled_harness(tmp_path: Path) -> None:
    async with _a_lingering_server_in_use(tmp_path) as (backend, pid):
        guard = psutil.Process(pid).parent()
        assert guard is not None and "mcp_guard.py" in " ".join(guard.cmdline())
        (harness,) = backend.harness_pids()
        os.kill(harness, signal.SIGKILL)
        assert await wait_gone([pid, guard.pid]) == []


async def test_no_server_outlives_the_runtime(tmp_path: Path) -> None:
    async with _a_lingering_server_in_use(tmp_path) as (_, pid):
        assert psutil.pid_exists(pid)  # serving while the runtime is open
    assert await wait_gone([pid]) == []


@pytest.mark.parametrize(
    ("flag", "expected"), [("--fail-start", "failing at start-up"), ("--hang-start", "in time")]
)
async def test_a_server_that_fails_to_start_fails_the_turn_naming_it(
    tmp_path: Path, flag: str, expected: str
) -> None:
    server = stdio_server(tmp_path, flag, timeout_seconds=2)
    async with open_model_server() as model, sdk_runtime(tmp_path) as (runtime, _):
        agent = await runtime.create_agent(local_agent(model, mcp_servers=[server]))
        with pytest.raises(McpServerError) as caught:
            await (await agent.chat("hello")).text()
        assert caught.value.server == "agytest"
        assert expected in str(caught.value)
        pid = mcp_pid(tmp_path)
    assert model.requests == []  # the model was never asked
    assert await wait_gone([pid]) == []


async def test_a_stdio_command_that_does_not_exist_is_refused_at_creation(
    tmp_path: Path,
) -> None:
    server = agy_trio.McpStdioServer(name="ghost", command="no-such-mcp-server-command")
    async with open_model_server() as model, sdk_runtime(tmp_path) as (runtime, _):
        with pytest.raises(ConfigError) as caught:
            await runtime.create_agent(local_agent(model, mcp_servers=[server]))
    assert "ghost" in str(caught.value)
    assert caught.value.field == "mcp_servers[0].command"


async def test_a_sigkilled_harness_leaves_no_helper_of_the_server_either(tmp_path: Path) -> None:
    helper_file = tmp_path / "helper.pid"
    server = stdio_server(tmp_path, "--linger", "600", "--helper-pid-file", str(helper_file))
    async with open_model_server() as model, sdk_runtime(tmp_path) as (runtime, backend):
        agent = await runtime.create_agent(local_agent(model, mcp_servers=[server]))
        assert TABLE["alpha"] in await (await agent.chat(LOOKUP)).text()
        pid, helper = mcp_pid(tmp_path), int(helper_file.read_text())
        assert psutil.pid_exists(helper)
        (harness,) = backend.harness_pids()
        os.kill(harness, signal.SIGKILL)
        assert await wait_gone([pid, helper]) == []


async def test_a_server_ends_with_its_agent_while_the_shared_harness_lives_on(
    tmp_path: Path,
) -> None:
    server = stdio_server(tmp_path, "--linger", "600")
    async with open_model_server() as model, sdk_runtime(tmp_path) as (runtime, backend):
        other = await runtime.create_agent(local_agent(model))
        async with runtime.open_agent(local_agent(model, mcp_servers=[server])) as agent:
            assert TABLE["alpha"] in await (await agent.chat(LOOKUP)).text()
            pid = mcp_pid(tmp_path)
            harnesses = backend.harness_pids()
        assert len(harnesses) == 1 and backend.harness_pids() == harnesses  # shared, still up
        assert await wait_gone([pid]) == []
        assert await (await other.chat("still here?")).text() == "You said: still here?"


async def test_an_http_server_nobody_listens_on_fails_the_turn_naming_it(tmp_path: Path) -> None:
    async with open_mcp_http_server("gone") as endpoint:
        url = endpoint.url  # a port that was just given up: nothing listens there now
    server = agy_trio.McpHttpServer(name="gone", url=url, timeout_seconds=3)
    async with open_model_server() as model, sdk_runtime(tmp_path) as (runtime, _):
        agent = await runtime.create_agent(local_agent(model, mcp_servers=[server]))
        with pytest.raises(McpServerError) as caught:
            await (await agent.chat("hello")).text()
        assert caught.value.server == "gone"
    assert model.requests == []
