from __future__ import annotations

import json
import logging
import math
import operator
import pathlib
import pickle
from collections.abc import Callable
from typing import Any

import attrs
import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from agy_trio.core import config as config_module
from agy_trio.core import serialization
from agy_trio.core.config import (
    CHAT_TIMEOUT_ENV,
    REMOVED_RUNTIME_FIELDS,
    AgentConfig,
    RuntimeConfig,
    converter,
    default_chat_timeout,
    from_json,
    from_toml,
    structure,
    to_json,
    to_toml,
    unstructure,
)
from agy_trio.core.hooks import Hooks
from agy_trio.core.policy import Decision, PolicyRule, allow, ask_user, deny
from agy_trio.core.tools import Tool, tool
from agy_trio.errors import ConfigError
from tests.core import sample_tools


@pytest.fixture(autouse=True)
def _no_env_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CHAT_TIMEOUT_ENV, raising=False)
    monkeypatch.delenv("AGI_CHAT_TIMEOUT_SECS", raising=False)


def test_the_chat_timeout_variable_has_the_agy_prefix_and_its_old_name_as_alias(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert CHAT_TIMEOUT_ENV == "AGY_CHAT_TIMEOUT_SECS"
    monkeypatch.setenv("AGI_CHAT_TIMEOUT_SECS", "33")
    assert RuntimeConfig().chat_timeout == 33.0  # the earlier name still works
    monkeypatch.setenv("AGY_CHAT_TIMEOUT_SECS", "44")
    assert RuntimeConfig().chat_timeout == 44.0  # and the new one wins


# --------------------------------------------------------------------------
# RuntimeConfig defaults and the environment
# --------------------------------------------------------------------------


def test_runtime_defaults() -> None:
    config = RuntimeConfig()
    assert config == RuntimeConfig(
        channel_capacity=64,
        chat_timeout=120.0,
        operation_timeout=240.0,
        shutdown_timeout=10.0,
        inter_agent_delay=0.5,
        handler_timeout=30.0,
        log_level=None,
    )


def test_chat_timeout_from_env_read_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHAT_TIMEOUT_ENV, "45")
    config = RuntimeConfig()
    assert config.chat_timeout == 45.0
    assert config.operation_timeout == 165.0
    monkeypatch.setenv(CHAT_TIMEOUT_ENV, " 2.5 ")
    assert RuntimeConfig().chat_timeout == 2.5


def test_explicit_chat_timeout_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHAT_TIMEOUT_ENV, "45")
    assert RuntimeConfig(chat_timeout=10).chat_timeout == 10.0


@pytest.mark.parametrize("raw", ["abc", "-3", "0", "nan", "inf", "", "1e999"])
def test_invalid_env_value_warns_and_uses_default(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, raw: str
) -> None:
    monkeypatch.setenv(CHAT_TIMEOUT_ENV, raw)
    with caplog.at_level(logging.WARNING, logger="agy_trio.config"):
        assert default_chat_timeout() == 120.0
        assert RuntimeConfig().chat_timeout == 120.0
    warnings = [r for r in caplog.records if r.name == "agy_trio.config"]
    assert warnings
    assert CHAT_TIMEOUT_ENV in warnings[0].getMessage()
    assert warnings[0].levelno == logging.WARNING


def test_operation_timeout_derived_or_explicit() -> None:
    assert RuntimeConfig(chat_timeout=30).operation_timeout == 150.0
    assert RuntimeConfig(chat_timeout=30, operation_timeout=30).operation_timeout == 30.0


def test_replace_rederives_a_derived_operation_timeout() -> None:
    derived = RuntimeConfig(chat_timeout=30)
    assert derived.replace(chat_timeout=300).operation_timeout == 420.0
    explicit = RuntimeConfig(chat_timeout=30, operation_timeout=1000)
    assert explicit.replace(chat_timeout=300).operation_timeout == 1000.0
    assert derived.replace(chat_timeout=60, operation_timeout=61).operation_timeout == 61.0
    assert derived.replace(channel_capacity=4).operation_timeout == 150.0


# Each (field, value) RuntimeConfig refuses, naming the field.
BAD_RUNTIME_VALUES: list[tuple[str, Any]] = [
    ("channel_capacity", 0),
    ("channel_capacity", -1),
    ("channel_capacity", 1.5),
    ("channel_capacity", True),
    ("chat_timeout", -1),
    ("chat_timeout", 0),
    ("chat_timeout", math.nan),
    ("chat_timeout", math.inf),
    ("chat_timeout", "120"),
    ("operation_timeout", -5),
    ("operation_timeout", math.inf),
    ("chat_timeout", True),
    ("shutdown_timeout", -0.1),
    ("shutdown_timeout", 0),
    ("shutdown_timeout", math.nan),
    ("inter_agent_delay", -1),
    ("inter_agent_delay", math.inf),
    ("handler_timeout", 0),
    ("handler_timeout", math.inf),
    ("log_level", "LOUD"),
]


def test_operation_timeout_shorter_than_chat_timeout_is_rejected() -> None:
    with pytest.raises(ConfigError) as info:
        RuntimeConfig(chat_timeout=100, operation_timeout=99)
    assert info.value.field == "operation_timeout"


def test_zero_inter_agent_delay_is_allowed() -> None:
    assert RuntimeConfig(inter_agent_delay=0).inter_agent_delay == 0.0


def test_zero_shutdown_timeout_is_rejected() -> None:
    # With no time to shut down at all, every exit would end in OperationTimeout.
    with pytest.raises(ConfigError, match="greater than 0") as info:
        RuntimeConfig(shutdown_timeout=0)
    assert info.value.field == "shutdown_timeout"
    with pytest.raises(ConfigError) as info:
        from_toml("shutdown_timeout = 0.0\n", RuntimeConfig)
    assert info.value.field == "shutdown_timeout"


@pytest.mark.parametrize("field", sorted(REMOVED_RUNTIME_FIELDS))
def test_removed_runtime_fields_are_not_accepted(field: str) -> None:
    removed: dict[str, Any] = {field: 1}
    with pytest.raises(TypeError, match=field):
        RuntimeConfig(**removed)
    assert field not in attrs.fields_dict(RuntimeConfig)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("stream_batch_max", 256, "ScriptedBackend(stream_batch_max="),
        ("stream_buffer_high_water", 1024, "stream_high_water="),
        ("host_threads", 2, "AntigravityBackend(host_threads="),
        ("command_dispatch", "task", "single command path"),
    ],
)
def test_config_files_with_removed_fields_say_where_they_went(
    field: str, value: Any, says: str
) -> None:
    data = {"chat_timeout": 30.0, field: value}
    readers: list[Callable[[], RuntimeConfig]] = [
        lambda: from_json(json.dumps(data), RuntimeConfig),
        lambda: from_toml(tomli_w.dumps(data), RuntimeConfig),
        lambda: structure(data, RuntimeConfig),
    ]
    for read in readers:
        with pytest.raises(ConfigError) as info:
            read()
        assert info.value.field == field
        assert says in str(info.value)
    moved = [name for name in REMOVED_RUNTIME_FIELDS if name != "command_dispatch"]
    if field in moved:
        assert "belongs to the backend" in str(info.value)


def test_log_level_is_normalised() -> None:
    assert RuntimeConfig(log_level="debug").log_level == "DEBUG"


# --------------------------------------------------------------------------
# AgentConfig
# --------------------------------------------------------------------------


def test_agent_defaults_and_quota_key() -> None:
    config = AgentConfig()
    assert config.tools == ()
    assert config.default_policy is Decision.ALLOW
    assert config.quota_key == ""
    assert AgentConfig(api_key="k1").quota_key == "k1"


def test_api_key_is_not_in_repr() -> None:
    assert "secret-key" not in repr(AgentConfig(api_key="secret-key"))


def test_plain_functions_in_tools_are_wrapped() -> None:
    config = AgentConfig(tools=[sample_tools.halve, sample_tools.echo])
    assert config.tools == (tool(sample_tools.halve), sample_tools.echo)
    assert all(isinstance(t, Tool) for t in config.tools)


def test_paths_accept_pathlike(tmp_path: pathlib.Path) -> None:
    config = AgentConfig(save_dir=tmp_path, workspaces=[tmp_path, "/srv"])
    assert config.save_dir == str(tmp_path)
    assert config.workspaces == (str(tmp_path), "/srv")


def test_default_policy_accepts_its_value() -> None:
    assert AgentConfig(default_policy="deny").default_policy is Decision.DENY


def test_policy_set_and_replace() -> None:
    config = AgentConfig(policies=(deny("x"),), default_policy=Decision.DENY)
    assert config.policy_set.rules == (deny("x"),)
    assert config.policy_set.default is Decision.DENY
    changed = config.replace(model="m", default_policy=Decision.ALLOW)
    assert (changed.model, changed.default_policy, changed.policies) == (
        "m",
        Decision.ALLOW,
        (deny("x"),),
    )
    with pytest.raises(ConfigError):
        config.replace(base_url="localhost:8080")


# Each (field, value) AgentConfig refuses, naming the field.
BAD_AGENT_VALUES: list[tuple[str, Any]] = [
    ("name", ""),
    ("name", 3),
    ("model", "  "),
    ("base_url", "localhost:11434"),
    ("base_url", "ftp://example.com"),
    ("base_url", "http://"),
    ("api_key", ""),
    ("system_instructions", 5),
    ("system_instructions", "be brief \ud800"),
    ("tools", [3]),
    ("tools", "echo"),
    ("tools", [Hooks]),
    ("policies", ["deny"]),
    ("hooks", {}),
    ("builtin_tools", "run_command"),
    ("builtin_tools", [""]),
    ("workspaces", [3]),
    ("save_dir", ""),
    ("conversation_id", ""),
    ("chat_timeout", -1),
    ("chat_timeout", math.nan),
    ("default_policy", Decision.ASK_USER),
    ("default_policy", "maybe"),
    ("metadata", {"a": 1}),
    ("metadata", "a=b"),
]


@pytest.mark.parametrize(
    ("config", "field", "value"),
    [
        *((RuntimeConfig, field, value) for field, value in BAD_RUNTIME_VALUES),
        *((AgentConfig, field, value) for field, value in BAD_AGENT_VALUES),
    ],
)
def test_a_bad_value_is_refused_naming_its_field(
    config: type[RuntimeConfig | AgentConfig], field: str, value: Any
) -> None:
    with pytest.raises(ConfigError) as info:
        config(**{field: value})
    assert info.value.field == field


def test_tool_names_must_be_unique() -> None:
    with pytest.raises(ConfigError) as info:
        AgentConfig(tools=(sample_tools.echo, tool(sample_tools.halve, name="echo")))
    assert info.value.field == "tools"
    assert "echo" in str(info.value)


def test_vertex_location_needs_project() -> None:
    with pytest.raises(ConfigError) as info:
        AgentConfig(vertex_location="us-central1")
    assert info.value.field == "vertex_project"
    AgentConfig(vertex_project="p", vertex_location="us-central1")


# --------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
_NON_EMPTY = _TEXT.filter(lambda s: bool(s.strip()))
_OPTIONAL = st.none() | _NON_EMPTY
_SECONDS = st.floats(min_value=0, max_value=1e300, exclude_min=True, allow_nan=False)
_SMALL_INT = st.integers(min_value=1, max_value=2**31)


@st.composite
def runtime_configs(draw: st.DrawFn) -> RuntimeConfig:
    chat = draw(_SECONDS)
    operation = draw(st.none() | st.floats(min_value=0, max_value=1e300).map(lambda x: chat + x))
    extra = {} if operation is None else {"operation_timeout": operation}
    return RuntimeConfig(
        channel_capacity=draw(_SMALL_INT),
        chat_timeout=chat,
        shutdown_timeout=draw(_SECONDS),
        inter_agent_delay=draw(st.just(0.0) | _SECONDS),
        handler_timeout=draw(_SECONDS),
        log_level=draw(st.none() | st.sampled_from(["debug", "INFO", "Warning", "ERROR"])),
        **extra,
    )


_PATTERN = st.text(alphabet="abc_*?", min_size=1, max_size=6)
_RULE = st.one_of(
    st.builds(allow, _PATTERN),
    st.builds(deny, _PATTERN),
    st.builds(ask_user, _PATTERN, st.sampled_from(sample_tools.HANDLERS)),
)
_TOOLS: list[Tool] = [*sample_tools.ALL_TOOLS, tool(sample_tools.halve)]
_HOOK_LIST = st.lists(st.sampled_from(sample_tools.HOOKS), max_size=3)


@st.composite
def agent_configs(draw: st.DrawFn) -> AgentConfig:
    project = draw(_OPTIONAL)
    return AgentConfig(
        name=draw(_OPTIONAL),
        model=draw(_OPTIONAL),
        base_url=draw(st.none() | st.sampled_from(["http://127.0.0.1:8080/v1", "https://x.io"])),
        api_key=draw(_OPTIONAL),
        vertex_project=project,
        vertex_location=draw(_OPTIONAL) if project is not None else None,
        system_instructions=draw(st.none() | _TEXT),
        tools=draw(st.lists(st.sampled_from(_TOOLS), unique_by=operator.attrgetter("name"))),
        policies=draw(st.lists(_RULE, max_size=4)),
        hooks=Hooks(
            on_turn_start=draw(_HOOK_LIST),
            on_turn_end=draw(_HOOK_LIST),
            before_tool=draw(_HOOK_LIST),
            after_tool=draw(_HOOK_LIST),
        ),
        builtin_tools=draw(st.lists(_NON_EMPTY, max_size=3)),
        workspaces=draw(st.lists(_NON_EMPTY, max_size=3)),
        save_dir=draw(_OPTIONAL),
        app_data_dir=draw(_OPTIONAL),
        home_dir=draw(_OPTIONAL),
        conversation_id=draw(_OPTIONAL),
        chat_timeout=draw(st.none() | _SECONDS),
        default_policy=draw(st.sampled_from([Decision.ALLOW, Decision.DENY])),
        metadata=draw(st.dictionaries(_TEXT, _TEXT, max_size=3)),
    )


@given(runtime_configs())
def test_runtime_config_round_trips_through_json(config: RuntimeConfig) -> None:
    assert from_json(to_json(config), RuntimeConfig) == config


@given(runtime_configs())
def test_runtime_config_round_trips_through_toml(config: RuntimeConfig) -> None:
    assert from_toml(to_toml(config), RuntimeConfig) == config


@given(agent_configs())
def test_agent_config_round_trips_through_json(config: AgentConfig) -> None:
    assert from_json(to_json(config, include_secrets=True), AgentConfig) == config
    assert from_json(to_json(config), AgentConfig) == config.replace(api_key=None)


@given(agent_configs())
def test_agent_config_round_trips_through_toml(config: AgentConfig) -> None:
    assert from_toml(to_toml(config, include_secrets=True), AgentConfig) == config
    assert from_toml(to_toml(config), AgentConfig) == config.replace(api_key=None)


@given(runtime_configs() | agent_configs())
def test_serialization_module_and_config_module_agree(config: RuntimeConfig | AgentConfig) -> None:
    # The helpers are importable from both modules and are the same objects.
    assert config_module.to_json is serialization.to_json
    assert config_module.converter is serialization.converter
    assert serialization.unstructure(config) == unstructure(config)


def test_secrets_are_left_out_unless_asked() -> None:
    secret = "AIza-very-secret-key"
    config = AgentConfig(name="helper", api_key=secret)
    for written in (
        to_json(config),
        to_toml(config),
        repr(unstructure(config)),
        repr(converter.unstructure(config)),
    ):
        assert secret not in written
        assert "api_key" not in written
    assert '"api_key": "AIza-very-secret-key"' in to_json(config, include_secrets=True)
    assert 'api_key = "AIza-very-secret-key"' in to_toml(config, include_secrets=True)
    assert unstructure(config, include_secrets=True)["api_key"] == secret
    # Field order is kept when the secret is written.
    assert list(unstructure(config, include_secrets=True))[:2] == ["name", "api_key"]


@given(agent_configs())
def test_agent_config_pickles(config: AgentConfig) -> None:
    assert pickle.loads(pickle.dumps(config)) == config


def test_round_trip_keeps_resolved_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHAT_TIMEOUT_ENV, "45")
    written = to_toml(RuntimeConfig())
    monkeypatch.delenv(CHAT_TIMEOUT_ENV)
    read = from_toml(written, RuntimeConfig)
    assert (read.chat_timeout, read.operation_timeout) == (45.0, 165.0)


def test_omitted_fields_take_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHAT_TIMEOUT_ENV, "20")
    read = from_toml("channel_capacity = 8\n", RuntimeConfig)
    assert (read.channel_capacity, read.chat_timeout, read.operation_timeout) == (8, 20.0, 140.0)
    assert from_json("{}", AgentConfig) == AgentConfig()


def test_none_is_written_by_omission() -> None:
    text = to_toml(AgentConfig(model="m"))
    assert "model" in text
    assert "name" not in text
    assert "api_key" not in text
    assert "null" not in to_json(AgentConfig())


def test_written_form() -> None:
    config = AgentConfig(
        tools=(sample_tools.echo, sample_tools.halve),
        policies=(deny("rm*"), ask_user("write_*", sample_tools.approve)),
        hooks=Hooks(before_tool=(sample_tools.allow_tool,)),
        builtin_tools=("read_file",),
        default_policy=Decision.DENY,
        chat_timeout=5,
    )
    data = unstructure(config)
    assert data["tools"] == ["tests.core.sample_tools:echo", "tests.core.sample_tools:halve"]
    assert data["policies"] == [
        {"decision": "deny", "tool": "rm*"},
        {"decision": "ask_user", "tool": "write_*", "handler": "tests.core.sample_tools:approve"},
    ]
    assert data["hooks"]["before_tool"] == ["tests.core.sample_tools:allow_tool"]
    assert data["builtin_tools"] == ["read_file"]
    assert data["default_policy"] == "deny"
    assert data["chat_timeout"] == 5.0
    assert converter.unstructure(config) == data
    assert structure(data, AgentConfig) == config


def test_hand_written_toml() -> None:
    text = """
name = "helper"
base_url = "http://127.0.0.1:11434/v1"
tools = ["tests.core.sample_tools:echo", "tests.core.sample_tools:double"]
default_policy = "deny"

[[policies]]
decision = "allow"
tool = "echo"

[[policies]]
decision = "ask_user"
tool = "double_*"
handler = "tests.core.sample_tools:approve_async"

[hooks]
on_turn_start = ["tests.core.sample_tools:note_turn"]
"""
    config = from_toml(text, AgentConfig)
    assert config.tools == (sample_tools.echo, sample_tools.double)
    assert config.policies[1] == PolicyRule(
        Decision.ASK_USER, "double_*", sample_tools.approve_async
    )
    assert config.hooks == Hooks(on_turn_start=(sample_tools.note_turn,))


# --------------------------------------------------------------------------
# Errors when reading and writing
# --------------------------------------------------------------------------


def test_an_ask_user_rule_without_handler_reads_from_json() -> None:
    # Over JSON it means: ask the person behind the server.
    config = from_json(
        '{"policies": [{"decision": "ask_user", "tool": "x", "reason": "why"}]}', AgentConfig
    )
    assert config.policies == (PolicyRule(Decision.ASK_USER, "x", reason="why"),)
    assert to_json(config) and from_json(to_json(config), AgentConfig) == config


@pytest.mark.parametrize(
    ("config", "text", "field"),
    [
        (RuntimeConfig, '{"chat_timeout": -1}', "chat_timeout"),
        (RuntimeConfig, '{"chat_timeout": "soon"}', "chat_timeout"),
        (RuntimeConfig, '{"chat_timeout": 50, "operation_timeout": 10}', "operation_timeout"),
        (RuntimeConfig, '{"channel_capacity": 0}', "channel_capacity"),
        (RuntimeConfig, '{"unknown_knob": 1}', "unknown_knob"),
        (AgentConfig, '{"tools": ["no.such.module:x"]}', "tools[0]"),
        (AgentConfig, '{"tools": ["tests.core.sample_tools:echo", 3]}', "tools[1]"),
        (AgentConfig, '{"tools": ["tests.core.sample_tools:HOOKS"]}', "tools[0]"),
        (AgentConfig, '{"policies": [{"decision": "maybe"}]}', "policies[0].decision"),
        (
            AgentConfig,
            '{"policies": [{"decision": "ask_user", "handler": "tests.core:sample_tools"}]}',
            "policies[0].handler",
        ),
        (AgentConfig, '{"policies": [{"decision": "deny", "color": "red"}]}', "policies[0].color"),
        (AgentConfig, '{"hooks": {"before_tool": ["os:no_such_function"]}}', "hooks.before_tool"),
        (AgentConfig, '{"hooks": {"before_tool": "os:getcwd"}}', "hooks.before_tool"),
        (AgentConfig, '{"base_url": "localhost"}', "base_url"),
        (AgentConfig, '{"metadata": {"a": ["b"]}}', "metadata['a']"),
    ],
)
def test_bad_json_names_the_field(
    config: type[RuntimeConfig | AgentConfig], text: str, field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        from_json(text, config)
    assert info.value.field == field


def _nested(depth: int, open_: str, close: str) -> str:
    return open_ * depth + close * depth


@pytest.mark.parametrize("depth", [500, 1_000, 5_000, 100_000])
def test_deeply_nested_input_is_a_config_error(depth: int) -> None:
    # Whether the parser or the converter gives up first depends on the depth;
    # either way the reader answers with a ConfigError, never a RecursionError.
    readers: list[Callable[[], object]] = [
        lambda: from_json(_nested(depth, "[", "]"), RuntimeConfig),
        lambda: from_json('{"metadata": {"a": ' + _nested(depth, "[", "]") + "}}", AgentConfig),
        lambda: from_json('{"hooks": ' + _nested(depth, '{"a": ', "}") + "}", AgentConfig),
        lambda: from_toml("a = " + _nested(depth, "[", "]"), RuntimeConfig),
        lambda: from_toml("a = " + _nested(depth, "{b = ", "}"), RuntimeConfig),
        lambda: from_toml(b"[metadata]\na = " + _nested(depth, "[", "]").encode(), AgentConfig),
    ]
    for read in readers:
        with pytest.raises(ConfigError):
            read()


def test_deeply_nested_plain_data_is_a_config_error() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    for data, cls in (
        ({"metadata": {"a": deep}}, AgentConfig),
        ({"tools": deep}, AgentConfig),
        ({"channel_capacity": deep}, RuntimeConfig),
        (deep, RuntimeConfig),
    ):
        with pytest.raises(ConfigError) as info:
            structure(data, cls)
        assert len(str(info.value)) < 500  # the value is quoted shortened, not in full


def test_invalid_json_and_toml() -> None:
    with pytest.raises(ConfigError, match="JSON"):
        from_json("{not json", RuntimeConfig)
    with pytest.raises(ConfigError, match="TOML"):
        from_toml("= nope", RuntimeConfig)
    with pytest.raises(ConfigError, match="TOML"):
        from_toml(b"\xff", RuntimeConfig)
    with pytest.raises(ConfigError):
        from_json("[1, 2]", RuntimeConfig)


def test_lambda_handler_cannot_be_written() -> None:
    config = AgentConfig(policies=(allow(), ask_user("x", lambda request: True)))
    for write in (to_json, to_toml):
        with pytest.raises(ConfigError, match="lambda") as info:
            write(config)
        assert info.value.field == "policies[1].handler"


def test_local_function_tool_and_hook_cannot_be_written() -> None:
    def local_tool(x: int) -> int:
        return x

    def local_hook(event: Any) -> None:
        pass

    with pytest.raises(ConfigError, match="local function") as info:
        to_json(AgentConfig(tools=(sample_tools.echo, local_tool)))
    assert info.value.field == "tools[1]"
    with pytest.raises(ConfigError, match="local function") as info:
        to_toml(AgentConfig(hooks=Hooks(after_tool=(local_hook,))))
    assert info.value.field == "hooks.after_tool[0]"


def test_one_converter_for_all_config_classes() -> None:
    rule = ask_user("x", sample_tools.approve)
    assert converter.structure(converter.unstructure(rule), PolicyRule) == rule
    hooks = Hooks(on_turn_end=(sample_tools.note_turn,))
    assert converter.structure(converter.unstructure(hooks), Hooks) == hooks
    assert converter.structure(converter.unstructure(sample_tools.add), Tool) is sample_tools.add
    assert attrs.has(RuntimeConfig)
