"""From AgentConfig to the SDK's config: endpoints, safe defaults, folders, policies, history."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import google.antigravity as sdk
import google.antigravity.hooks.policy as policy
import pytest

from agy_trio import AgentConfig, tool
from agy_trio.adapters.antigravity import INSTALL_HINT, AntigravityNotInstalled, RetryPolicy
from agy_trio.adapters.antigravity import sdk as sdk_loader
from agy_trio.adapters.antigravity.config import (
    Endpoint,
    builtin_tool_names,
    choose_endpoint,
    conversation_files,
    resolve_folders,
    sdk_agent_config,
    validate_conversation_id,
)
from agy_trio.adapters.antigravity.events import normalize_arguments, transcript
from agy_trio.errors import BackendError, ConfigError, QuotaExceeded
from tests.adapters.sdk_specs import CONVERSATION, agent_spec
from tests.processes import offline_env, run_python


@tool
def lookup(query: str, limit: int = 3) -> str:
    """Look something up."""
    return query * limit


# ---------------------------------------------------------------------------- endpoints


def test_base_url_selects_the_openai_compatible_endpoint() -> None:
    config = AgentConfig(model="llama3", base_url="http://127.0.0.1:11434/v1")
    assert choose_endpoint(config, {}) is Endpoint.OPENAI_COMPATIBLE


def test_base_url_needs_a_model() -> None:
    with pytest.raises(ConfigError) as info:
        choose_endpoint(AgentConfig(base_url="http://127.0.0.1:1/v1"), {})
    assert info.value.field == "model"


def test_api_key_or_environment_selects_gemini() -> None:
    assert choose_endpoint(AgentConfig(api_key="k"), {}) is Endpoint.GEMINI
    assert choose_endpoint(AgentConfig(), {"GEMINI_API_KEY": "k"}) is Endpoint.GEMINI


def test_vertex_project_selects_vertex() -> None:
    config = AgentConfig(vertex_project="p", vertex_location="europe-west4")
    assert choose_endpoint(config, {}) is Endpoint.VERTEX


def test_no_endpoint_at_all_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no model endpoint"):
        choose_endpoint(AgentConfig(), {})


# ---------------------------------------------------------------------------- SDK config


def test_openai_compatible_config_has_no_builtin_tools_and_private_folders(
    tmp_path: Path,
) -> None:
    config = AgentConfig(
        model="m", base_url="http://127.0.0.1:9/v1", system_instructions="Be brief"
    )
    sdk_config = sdk_agent_config(agent_spec(tmp_path, config))
    assert isinstance(sdk_config, sdk.LocalOpenAIAgentConfig)
    assert sdk_config.base_url == "http://127.0.0.1:9/v1"
    assert sdk_config.model == "m"
    assert sdk_config.capabilities.enabled_tools == []
    assert sdk_config.capabilities.enable_subagents is False
    assert sdk_config.system_instructions == "Be brief"
    assert sdk_config.save_dir == str(tmp_path / "conversations")
    assert sdk_config.app_data_dir == str(tmp_path / "app_data")
    assert sdk_config.workspaces == [str(tmp_path / "workspace")]
    assert sdk_config.env["HOME"] == str(tmp_path / "home")
    assert sdk_config.env["AGY_TRIO_HARNESS_OWNER"] == "test/agent-1"
    assert sdk_config.conversation_id == CONVERSATION
    mode = sdk.types.SessionContinuationMode
    assert sdk_config.session_continuation_mode is mode.CREATE_ONLY
    resumed = sdk_agent_config(agent_spec(tmp_path, config, resume=True))
    assert resumed.session_continuation_mode is mode.RESUME


def test_user_chosen_folders_are_used(tmp_path: Path) -> None:
    config = AgentConfig(
        model="m",
        base_url="http://127.0.0.1:9/v1",
        save_dir=tmp_path / "s",
        app_data_dir=tmp_path / "a",
        home_dir=tmp_path / "h",
        workspaces=[tmp_path / "w1", tmp_path / "w2"],
    )
    sdk_config = sdk_agent_config(agent_spec(tmp_path / "root", config))
    assert sdk_config.save_dir == str(tmp_path / "s")
    assert sdk_config.app_data_dir == str(tmp_path / "a")
    assert sdk_config.env["HOME"] == str(tmp_path / "h")
    assert sdk_config.workspaces == [str(tmp_path / "w1"), str(tmp_path / "w2")]
    assert all((tmp_path / name).is_dir() for name in ("s", "a", "h", "w1", "w2"))
    assert not (tmp_path / "root" / "home").exists()


def test_gemini_and_vertex_configs(tmp_path: Path) -> None:
    gemini = sdk_agent_config(agent_spec(tmp_path, AgentConfig(model="gemini-x", api_key="secret")))
    assert type(gemini).__mro__[1] is sdk.LocalAgentConfig
    assert gemini.api_key == "secret"
    assert gemini.vertex is False
    assert gemini.models[0].name == "gemini-x"

    config = AgentConfig(vertex_project="proj", vertex_location="us-central1")
    vertex = sdk_agent_config(agent_spec(tmp_path, config))
    assert vertex.vertex is True
    assert (vertex.project, vertex.location) == ("proj", "us-central1")
    # Application Default Credentials live under the real home: HOME is left alone.
    assert "HOME" not in vertex.env


def test_builtin_tools_are_enabled_by_name_only(tmp_path: Path) -> None:
    config = AgentConfig(
        model="m", base_url="http://127.0.0.1:9/v1", builtin_tools=["view_file", "run_command"]
    )
    enabled = sdk_agent_config(agent_spec(tmp_path, config)).capabilities.enabled_tools
    assert enabled == [sdk.BuiltinTools.VIEW_FILE, sdk.BuiltinTools.RUN_COMMAND]
    with pytest.raises(ConfigError, match="unknown built-in tool"):
        builtin_tool_names(AgentConfig(builtin_tools=["format_disk"]))


def test_sdk_policies_let_custom_tools_through_and_ask_for_builtins(tmp_path: Path) -> None:
    async def authorize(tool_call: Any, reason: str = "") -> bool:
        return True

    def sdk_tool() -> None:
        """A tool."""

    sdk_tool.__name__ = "lookup"
    config = AgentConfig(model="m", base_url="http://127.0.0.1:9/v1", builtin_tools=["view_file"])
    rules = sdk_agent_config(
        agent_spec(tmp_path, config, tools=[sdk_tool], authorize=authorize)
    ).policies
    decisions = {(rule.tool, rule.decision) for rule in rules}
    assert ("lookup", policy.Decision.APPROVE) in decisions
    assert ("view_file", policy.Decision.ASK_USER) in decisions
    assert ("*", policy.Decision.DENY) in decisions
    assert next(r for r in rules if r.tool == "view_file").ask_user is authorize


def test_conversation_ids_are_checked() -> None:
    assert validate_conversation_id(CONVERSATION) == CONVERSATION
    for bad in ("short", "x" * 31, "has space" + "x" * 30, "../" + "x" * 32):
        with pytest.raises(ConfigError):
            validate_conversation_id(bad)


def test_conversation_files_name_the_database_and_transcripts(tmp_path: Path) -> None:
    folders = resolve_folders(
        AgentConfig(model="m", base_url="http://127.0.0.1:9/v1"),
        tmp_path,
        Endpoint.OPENAI_COMPATIBLE,
    )
    names = {str(p.relative_to(tmp_path)) for p in conversation_files(folders, CONVERSATION)}
    assert f"conversations/{CONVERSATION}.db" in names
    assert f"conversations/{CONVERSATION}.db-wal" in names
    assert f"app_data/brain/{CONVERSATION}" in names


# ---------------------------------------------------------------------------- the SDK missing


def test_the_backend_explains_how_to_install_a_missing_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    from agy_trio.adapters.antigravity import AntigravityBackend

    def missing() -> Any:
        raise ImportError("No module named 'google.antigravity'")

    monkeypatch.setattr(sdk_loader, "_sdk_module", missing)
    with pytest.raises(AntigravityNotInstalled) as info:
        AntigravityBackend()
    assert INSTALL_HINT in str(info.value)
    assert isinstance(info.value, ImportError) and isinstance(info.value, ConfigError)


def test_the_module_imports_without_the_sdk(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["google.antigravity"] = None  # as if it were not installed
        import agy_trio.adapters.antigravity as backend_module
        from agy_trio.adapters.antigravity.errors import classify_error
        from agy_trio.errors import BackendError
        assert type(classify_error(RuntimeError("x"))) is BackendError
        try:
            backend_module.AntigravityBackend()
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit("constructing the backend should have failed")
        """
    )
    result = run_python("-c", script, env=offline_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert INSTALL_HINT in result.stdout


# ---------------------------------------------------------------------------- retry policy


def test_retry_policy_backs_off_and_honours_the_retry_delay() -> None:
    retry = RetryPolicy(attempts=3, initial_backoff=0.5, multiplier=2.0, max_backoff=5.0)
    assert retry.delay(0, BackendError("x", status=503)) == 0.5
    assert retry.delay(1, BackendError("x", status=503)) == 1.0
    assert retry.delay(2, BackendError("x", status=503)) is None  # no attempt left
    assert retry.delay(0, QuotaExceeded("x", retry_after=4.0)) == 4.0
    assert retry.delay(0, QuotaExceeded("x", retry_after=600.0)) is None  # too long to wait
    assert retry.delay(0, BackendError("x", status=400)) is None  # not transient
    assert retry.delay(0, BackendError("x")) is None
    with pytest.raises(ConfigError):
        RetryPolicy(attempts=0)


@pytest.mark.parametrize(
    ("field", "value"),
    [("attempts", 1.5), ("initial_backoff", 0), ("multiplier", math.nan), ("max_backoff", True)],
)
def test_retry_policy_rejects_what_is_not_a_positive_number(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        RetryPolicy(**{field: value})
    assert info.value.field == field


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("shutdown_grace", 0),
        ("shutdown_grace", math.inf),
        ("cancel_grace", -1.0),
        ("cancel_grace", "2"),
        ("host_threads", 0),
        ("retry", 3),
    ],
)
def test_backend_options_are_checked_when_it_is_constructed(option: str, value: object) -> None:
    from agy_trio.adapters.antigravity import AntigravityBackend

    with pytest.raises(ConfigError) as info:
        AntigravityBackend(**{option: value})
    assert info.value.field == option


# ---------------------------------------------------------------------------- results and history


def test_integer_arguments_come_back_as_integers() -> None:
    assert normalize_arguments(lookup, {"query": "a", "limit": 2.0}) == {"query": "a", "limit": 2}
    assert normalize_arguments(lookup, {"query": "a", "limit": 2.5}) == {
        "query": "a",
        "limit": 2.5,
    }


def _step(**fields: Any) -> Any:
    return sdk.types.Step(**fields)


def test_transcript_keeps_finished_steps_and_hides_retries() -> None:
    t = sdk.types
    user, model, system = t.StepSource.USER, t.StepSource.MODEL, t.StepSource.SYSTEM
    done, active = t.StepStatus.DONE, t.StepStatus.ACTIVE
    steps = [
        _step(source=user, status=done, content="hi"),
        _step(source=system, status=t.StepStatus.ERROR, error="HTTP 429"),
        _step(source=user, status=done, content="hi"),  # the same prompt, sent again
        _step(source=model, target=t.StepTarget.USER, status=active, content="hel"),
        _step(source=model, target=t.StepTarget.USER, status=done, content="hello"),
        _step(type=t.StepType.COMPACTION, source=system, status=done),
        _step(source=user, status=done, content="use a tool"),
        _step(
            source=model,
            status=active,
            tool_calls=[t.ToolCall(name="lookup", args={"query": "q"}, id="c1")],
        ),
        _step(
            source=model,
            status=done,
            tool_calls=[t.ToolCall(name="lookup", args={"query": "q"}, id="c1")],
        ),
        _step(source=user, status=done, content=""),  # an empty continuation
        _step(source=model, target=t.StepTarget.USER, status=done, content="found it"),
        _step(source=user, status=done, content="unanswered"),
    ]
    from agy_trio import ToolCall

    outcome = ToolCall("lookup", {"query": "q"}, "c1", result="qqq")
    messages, compactions, completed = transcript(steps, {"c1": outcome})
    assert [(m.role, m.text) for m in messages] == [
        ("user", "hi"),
        ("assistant", "hello"),
        ("user", "use a tool"),
        ("tool", "'qqq'"),
        ("assistant", "found it"),
        ("user", "unanswered"),
    ]
    assert messages[4].tool_calls == (outcome,)
    assert compactions == [2]
    assert completed == 2


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("retry", "3 times"),
        ("connection_retry", 3),
        ("shutdown_grace", 0),
        ("cancel_grace", -1.0),
        ("unreachable_timeout", math.inf),
        ("cancel_grace", True),
    ],
)
def test_backend_options_are_checked_at_construction(option: str, value: object) -> None:
    from agy_trio.adapters.antigravity import AntigravityBackend

    with pytest.raises(ConfigError) as info:
        AntigravityBackend(**{option: value})
    assert info.value.field == option


def test_backend_options_reach_its_settings() -> None:
    from agy_trio.adapters.antigravity import AntigravityBackend, ConnectionRetry

    retry = RetryPolicy()
    backend = AntigravityBackend(
        retry=retry, connection_retry=None, cancel_grace=3.0, stream_high_water=7
    )
    settings = backend.settings
    assert settings.retry is retry
    assert settings.connection_retry is None
    assert settings.cancel_grace == 3.0
    assert settings.stream_high_water == 7
    assert isinstance(AntigravityBackend().settings.connection_retry, ConnectionRetry)
