"""The new AgentConfig fields as the SDK gets them: schema, budget, MCP servers, model options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import google.antigravity as sdk
import google.antigravity.hooks.policy as policy
import pytest
from google.antigravity.connections.local.local_connection import build_models_proto

import agy_trio
from agy_trio import AgentConfig
from agy_trio.adapters.antigravity.config import (
    sdk_agent_config,
)
from agy_trio.adapters.antigravity.errors import classify_error
from agy_trio.adapters.antigravity.mcp import GUARD_PATH, McpLease, mcp_call
from agy_trio.errors import ConfigError, McpServerError
from tests.adapters.sdk_specs import agent_spec

LOCAL = {"model": "m", "base_url": "http://127.0.0.1:9/v1"}


async def _authorize(tool_call: Any, reason: str = "") -> bool:
    return True


def _sdk(tmp_path: Path, config: AgentConfig, **kw: Any) -> Any:
    return sdk_agent_config(agent_spec(tmp_path, config, authorize=_authorize, **kw))


def test_the_schema_becomes_the_finish_tool_schema_and_finish_is_allowed(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    sdk_config = _sdk(tmp_path, AgentConfig(response_schema=schema, **LOCAL))
    assert json.loads(sdk_config.response_schema) == schema
    rules = [(rule.tool, rule.decision) for rule in sdk_config.policies]
    assert ("finish", policy.Decision.APPROVE) in rules
    assert rules[-1] == ("*", policy.Decision.DENY)
    # Without a schema there is no finish to allow.
    plain = _sdk(tmp_path, AgentConfig(**LOCAL))
    assert all(rule.tool != "finish" for rule in plain.policies)


def test_the_budget_reaches_the_sdk_with_its_fields_and_scope(tmp_path: Path) -> None:
    budget = agy_trio.Budget(
        max_tool_calls=4, max_total_tokens=9000, scope=agy_trio.BudgetScope.FORWARD_LOOKING
    )
    sdk_config = _sdk(tmp_path, AgentConfig(budget=budget, **LOCAL))
    assert sdk_config.budget_config == sdk.types.BudgetConfig(
        max_tool_calls=4,
        max_total_tokens=9000,
        scope=sdk.types.BudgetScope.FORWARD_LOOKING,
    )
    assert _sdk(tmp_path, AgentConfig(**LOCAL)).budget_config is None


@pytest.mark.parametrize("vertex", [False, True])
def test_model_options_reach_the_harness_models(tmp_path: Path, vertex: bool) -> None:
    endpoint = {"vertex_project": "p", "vertex_location": "us-central1"} if vertex else {}
    config = AgentConfig(
        model="gemini-x",
        api_key="k",
        thinking_level="low",
        service_tier="flex",
        max_output_tokens=777,
        **endpoint,
    )
    sdk_config = _sdk(tmp_path, config)
    (text_model,) = [m for m in sdk_config.models if sdk.types.ModelType.TEXT in m.types]
    assert text_model.name == "gemini-x"
    options = text_model.endpoint.options
    assert (options.thinking_level.value, options.service_tier.value) == ("low", "flex")
    assert options.max_output_tokens == 777
    # What the harness is sent (its protobuf HarnessConfig models).
    (proto, *_) = build_models_proto([text_model])
    wire = proto.vertex_endpoint if vertex else proto.gemini_api_endpoint
    assert (wire.options.thinking_level, wire.options.service_tier) == ("low", "flex")
    assert wire.options.max_output_tokens == 777


def test_without_model_options_the_model_stays_a_name(tmp_path: Path) -> None:
    sdk_config = _sdk(tmp_path, AgentConfig(model="gemini-x", api_key="k"))
    assert sdk_config.model == "gemini-x"


def test_mcp_servers_reach_the_sdk_stdio_under_the_guard(tmp_path: Path) -> None:
    stdio = agy_trio.McpStdioServer(
        name="files", command=sys.executable, args=["-m", "x"], env={"A": "1"}, timeout_seconds=5
    )
    http = agy_trio.McpHttpServer(
        name="web", url="http://127.0.0.1:1/mcp", headers={"H": "v"}, disabled_tools=["rm"]
    )
    config = AgentConfig(mcp_servers=[stdio, http], **LOCAL)
    sdk_config = _sdk(tmp_path, config, mcp_lease="agy-trio-mcp-test")
    sdk_stdio, sdk_http = sdk_config.mcp_servers
    assert isinstance(sdk_stdio, sdk.types.McpStdioServer)
    assert sdk_stdio.command == sys.executable
    assert sdk_stdio.args == [
        "-I", "-S", GUARD_PATH, "--lease", "agy-trio-mcp-test", "--", sys.executable, "-m", "x",
    ]  # fmt: skip
    assert (sdk_stdio.name, sdk_stdio.env, sdk_stdio.timeout_seconds) == ("files", {"A": "1"}, 5)
    assert isinstance(sdk_http, sdk.types.McpStreamableHttpServer)
    assert (sdk_http.url, sdk_http.headers, sdk_http.disabled_tools) == (
        "http://127.0.0.1:1/mcp",
        {"H": "v"},
        ["rm"],
    )
    # Every tool of every server is put to the runtime's policies.
    asks = {
        r.tool: r.ask_user for r in sdk_config.policies if r.decision is policy.Decision.ASK_USER
    }
    assert asks == {"files/*": _authorize, "web/*": _authorize}


def test_mcp_calls_are_named_server_slash_tool_with_their_own_arguments() -> None:
    lazy = {"ServerName": "files", "ToolName": "read", "Arguments": {"path": "a"}}
    assert mcp_call("read", "files", lazy) == ("files/read", {"path": "a"})
    assert mcp_call("read", "files", {"path": "a"}) == ("files/read", {"path": "a"})
    assert mcp_call("view_file", None, {"p": 1}) == ("view_file", {"p": 1})


def test_an_mcp_load_failure_is_the_typed_error_naming_the_server() -> None:
    execution = sdk.types.AntigravityExecutionError
    error = classify_error(execution("MCP load failed for files: context deadline exceeded"))
    assert isinstance(error, McpServerError) and error.server == "files"
    assert "in time" in str(error)
    crashed = classify_error(execution('MCP load failed for web-2: calling "initialize": EOF'))
    assert isinstance(crashed, McpServerError) and crashed.server == "web-2"


# ------------------------------------------------------------------ the guard and the lease


def _guard(*args: str, **kw: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-I", "-S", GUARD_PATH, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        **kw,
    )


def test_the_guard_passes_the_pipes_through_and_the_exit_status() -> None:
    guard = _guard(
        "--",
        sys.executable,
        "-c",
        "import sys; sys.stdout.write(sys.stdin.read()[::-1]); sys.exit(3)",
    )
    out, _ = guard.communicate(b"mcp", timeout=30)
    assert (out, guard.returncode) == (b"pcm", 3)


def test_the_guard_ends_its_server_when_the_lease_breaks() -> None:
    lease = McpLease()
    name = lease.hold()
    guard = _guard("--lease", name, "--", sys.executable, "-c", "import time; time.sleep(600)")
    try:
        # The server runs until the lease is released (the agent closed).
        with pytest.raises(subprocess.TimeoutExpired):
            guard.wait(timeout=1)
        lease.release()
        assert guard.wait(timeout=30) == 128 + 15  # SIGTERM, passed on by the guard
    finally:
        if guard.poll() is None:
            guard.kill()
            guard.wait()
        assert guard.stdin is not None and guard.stdout is not None
        guard.stdin.close()
        guard.stdout.close()


def test_the_guard_refuses_to_start_for_an_agent_already_gone() -> None:
    guard = _guard(
        "--lease", "agy-trio-mcp-nobody-holds-this", "--", "true", stderr=subprocess.PIPE
    )
    _, err = guard.communicate(timeout=30)
    assert guard.returncode == 70 and b"agent is gone" in err


def test_a_missing_stdio_command_is_refused_naming_the_server(tmp_path: Path) -> None:
    server = agy_trio.McpStdioServer(name="ghost", command="no-such-command-for-agy-trio")
    with pytest.raises(ConfigError) as caught:
        _sdk(tmp_path, AgentConfig(mcp_servers=[server], **LOCAL))
    assert "ghost" in str(caught.value) and caught.value.field == "mcp_servers[0].command"
