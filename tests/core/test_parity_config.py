"""The SDK's structured output, MCP servers, budgets and model options as AgentConfig fields."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agy_trio
from agy_trio import AgentConfig, ConfigError, policy
from agy_trio.adapters.antigravity import parity
from agy_trio.core.config import from_json, from_toml, read_structured_output, to_json, to_toml
from agy_trio.core.policy import Decision, PolicySet
from agy_trio.errors import StructuredOutputError


def _positive(_instance: object, _attribute: object, value: int) -> None:
    if value <= 0:
        raise ValueError(f"count must be positive, got {value}")


@attrs.frozen
class Answer:
    """A checked answer."""

    answer: str
    count: int = attrs.field(validator=_positive)


STDIO = agy_trio.McpStdioServer(name="files", command="python", args=["-m", "server"])
HTTP = agy_trio.McpHttpServer(name="web", url="http://127.0.0.1:9/mcp", headers={"x": "y"})


# ------------------------------------------------------------------ response_schema


def test_response_schema_takes_an_attrs_class_and_parses_instances() -> None:
    schema = AgentConfig(response_schema=Answer).response_schema
    assert schema is not None
    assert schema.target is Answer
    assert schema.json_schema["properties"] == {
        "answer": {"type": "string"},
        "count": {"type": "integer"},
    }
    assert schema.json_schema["required"] == ["answer", "count"]
    assert read_structured_output(schema, {"answer": "x", "count": 2}) == Answer("x", 2)


def test_a_refused_answer_raises_the_typed_error_with_the_raw_json() -> None:
    schema = AgentConfig(response_schema=Answer).response_schema
    assert schema is not None
    with pytest.raises(StructuredOutputError) as caught:
        read_structured_output(schema, {"answer": "x", "count": -1})
    error = caught.value
    assert isinstance(error, agy_trio.AgyError)
    assert json.loads(error.raw_json) == {"answer": "x", "count": -1}
    assert error.value == {"answer": "x", "count": -1}
    assert error.target is Answer
    assert "count must be positive" in str(error)


def test_response_schema_takes_a_dict_or_json_text_and_keeps_the_json() -> None:
    as_dict = AgentConfig(response_schema={"type": "object"}).response_schema
    as_text = AgentConfig(response_schema='{"type": "object"}').response_schema
    assert as_dict == as_text
    assert as_dict is not None and as_dict.target is None
    assert read_structured_output(as_dict, {"any": 1}) == {"any": 1}


def test_response_schema_takes_a_pydantic_model() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Model(pydantic.BaseModel):  # type: ignore[misc, name-defined]
        answer: str

    schema = AgentConfig(response_schema=Model).response_schema
    assert schema is not None and schema.json_schema["required"] == ["answer"]
    assert read_structured_output(schema, {"answer": "a"}) == Model(answer="a")
    with pytest.raises(StructuredOutputError) as caught:
        read_structured_output(schema, {"answer": 3})
    assert caught.value.value == {"answer": 3}


@pytest.mark.parametrize("bad", [5, "not json", "[1, 2]", "{", object, {"a": object()}])
def test_a_bad_response_schema_is_a_config_error(bad: object) -> None:
    with pytest.raises(ConfigError) as caught:
        AgentConfig(response_schema=bad)
    assert caught.value.field == "response_schema"


# ------------------------------------------------------------------ MCP servers


def test_mcp_servers_keep_the_sdk_field_names() -> None:
    sdk_stdio = {
        "name",
        "command",
        "args",
        "env",
        "timeout_seconds",
        "enabled_tools",
        "disabled_tools",
        "force_all_tools_eager",
    }
    assert {f.name for f in attrs.fields(agy_trio.McpStdioServer)} == sdk_stdio
    sdk_http = {
        "name",
        "url",
        "headers",
        "timeout",
        "sse_read_timeout",
        "terminate_on_close",
        "timeout_seconds",
        "enabled_tools",
        "disabled_tools",
        "force_all_tools_eager",
    }
    assert {f.name for f in attrs.fields(agy_trio.McpHttpServer)} == sdk_http
    assert agy_trio.McpStreamableHttpServer is agy_trio.McpHttpServer
    assert (STDIO.type, HTTP.type) == ("stdio", "http")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "a b"}, "name"),
        ({"name": ""}, "name"),
        ({"command": " "}, "command"),
        ({"args": "one"}, "args"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": 1.5}, "timeout_seconds"),
        ({"enabled_tools": ["a"], "disabled_tools": ["b"]}, "enabled_tools"),
        ({"env": {"A": 1}}, "env"),
    ],
)
def test_bad_mcp_server_fields_are_config_errors(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        attrs.evolve(STDIO, **changes)
    assert caught.value.field == field


def test_mcp_server_names_must_be_unique_and_mappings_are_built() -> None:
    with pytest.raises(ConfigError, match="unique"):
        AgentConfig(mcp_servers=[STDIO, attrs.evolve(STDIO, command="other")])
    config = AgentConfig(
        mcp_servers=[
            {"type": "stdio", "name": "s", "command": "c"},
            {"name": "h", "url": "http://h"},
        ]
    )
    assert [type(s) for s in config.mcp_servers] == [
        agy_trio.McpStdioServer,
        agy_trio.McpHttpServer,
    ]
    with pytest.raises(ConfigError) as caught:
        AgentConfig(mcp_servers=[{"type": "ftp", "name": "x"}])
    assert caught.value.field == "mcp_servers[0]"


def test_mcp_policies_address_server_slash_tool_like_the_sdk() -> None:
    rules = policy.deny(STDIO, ["rm", "mv"])
    assert [r.tool for r in rules] == ["files/rm", "files/mv"]
    assert [r.tool for r in policy.allow(STDIO)] == ["files/*"]
    asked = policy.ask_user(HTTP, ["fetch"], handler=lambda request: True)
    assert [(r.tool, r.decision) for r in asked] == [("web/fetch", Decision.ASK_USER)]
    assert policy.ask_user(HTTP, handler=lambda request: True)[0].tool == "web/*"
    with pytest.raises(ConfigError):
        policy.deny(STDIO, "rm")  # a lone string would deny "r" and "m"
    # AgentConfig takes the lists as they are (the SDK flattens them too).
    config = AgentConfig(policies=[policy.deny(STDIO, ["rm"]), policy.allow("x")])
    assert [r.tool for r in config.policies] == ["files/rm", "x"]
    rules_set = PolicySet(config.policies)
    assert rules_set.decide("files/rm") is Decision.DENY
    assert rules_set.decide("files/ls") is Decision.ALLOW
    assert rules_set.decide("rm") is Decision.ALLOW  # a plain tool of that name is another tool


# ------------------------------------------------------------------ budgets


def _parity_targets(sdk_name: str, agy_name: str) -> set[str]:
    """The members of ``agy_name`` that the parity table maps the SDK's ``sdk_name``'s to.

    The table is checked against the installed SDK (tests/adapters/test_parity.py),
    so these are the SDK's own members, under agy_trio's names.
    """
    rows = parity.PARITY.items()
    targets = [
        row.target
        for key, row in rows
        if key.startswith(f"{sdk_name}.") and isinstance(row, parity.Mapped)
    ]
    return {target.removeprefix(f"{agy_name}.") for target in targets}


def test_budget_has_the_sdk_fields_and_scopes() -> None:
    fields = {f.name for f in attrs.fields(agy_trio.Budget)}
    # Exactly the SDK's BudgetConfig: no field of its own, none left out.
    assert fields == _parity_targets("BudgetConfig", "Budget")
    assert [s.value for s in agy_trio.BudgetScope] == ["LIFETIME", "FORWARD_LOOKING"]
    assert agy_trio.Budget(scope="forward_looking").scope is agy_trio.BudgetScope.FORWARD_LOOKING
    config = AgentConfig(budget={"max_tool_calls": 2})
    assert config.budget == agy_trio.Budget(max_tool_calls=2)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_model_calls": 0}, "max_model_calls"),
        ({"max_tool_calls": 2**31}, "max_tool_calls"),
        ({"max_input_tokens": True}, "max_input_tokens"),
        ({"max_output_tokens": 1.0}, "max_output_tokens"),
        ({"max_total_tokens": -5}, "max_total_tokens"),
        ({"scope": "weekly"}, "scope"),
    ],
)
def test_bad_budgets_are_config_errors(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        agy_trio.Budget(**changes)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_stop_reason_has_the_sdk_budget_and_quota_members() -> None:
    names = {member.name for member in agy_trio.StopReason}
    assert _parity_targets("StopReason", "StopReason") <= names
    assert {"END_TURN", "CANCELLED", "MAX_TOKENS", "SAFETY", "ERROR"} <= names


# ------------------------------------------------------------------ model options


def test_model_options_are_enums_checked_at_construction() -> None:
    config = AgentConfig(thinking_level="extra_high", service_tier="flex", max_output_tokens=512)
    assert config.thinking_level is agy_trio.ThinkingLevel.EXTRA_HIGH
    assert config.service_tier is agy_trio.ServiceTier.FLEX
    assert [m.value for m in agy_trio.ThinkingLevel] == [
        "minimal",
        "low",
        "medium",
        "high",
        "extra_high",
    ]
    assert [m.value for m in agy_trio.ServiceTier] == ["standard", "priority", "flex"]
    for changes, field in [
        ({"thinking_level": "huge"}, "thinking_level"),
        ({"service_tier": 1}, "service_tier"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"max_output_tokens": 2**31}, "max_output_tokens"),
    ]:
        with pytest.raises(ConfigError) as caught:
            AgentConfig(**changes)  # type: ignore[arg-type]
        assert caught.value.field == field


@pytest.mark.parametrize(
    "option", [{"thinking_level": "low"}, {"service_tier": "priority"}, {"max_output_tokens": 9}]
)
def test_model_options_are_refused_for_an_openai_compatible_base_url(
    option: dict[str, object],
) -> None:
    with pytest.raises(ConfigError) as caught:
        AgentConfig(model="m", base_url="http://127.0.0.1:1/v1", **option)  # type: ignore[arg-type]
    assert caught.value.field == next(iter(option))
    assert "OpenAI-compatible" in str(caught.value)
    assert "65535" in str(caught.value)


# ------------------------------------------------------------------ serialisation


def _full_config() -> AgentConfig:
    return AgentConfig(
        response_schema=Answer,
        mcp_servers=[STDIO, HTTP, attrs.evolve(STDIO, name="other", enabled_tools=["a"])],
        budget=agy_trio.Budget(max_model_calls=3, scope=agy_trio.BudgetScope.FORWARD_LOOKING),
        thinking_level=agy_trio.ThinkingLevel.LOW,
        service_tier=agy_trio.ServiceTier.PRIORITY,
        max_output_tokens=1000,
        policies=[policy.deny(STDIO, ["rm"])],
    )


def test_every_new_field_survives_json_and_toml() -> None:
    config = _full_config()
    text = to_json(config)
    data = json.loads(text)
    assert data["response_schema"] == "tests.core.test_parity_config:Answer"
    assert data["mcp_servers"][0]["type"] == "stdio"
    assert data["mcp_servers"][1]["type"] == "http"
    assert data["budget"] == {"max_model_calls": 3, "scope": "FORWARD_LOOKING"}
    assert from_json(text, AgentConfig) == config
    assert from_toml(to_toml(config), AgentConfig) == config


def test_a_json_schema_survives_json_as_json() -> None:
    config = AgentConfig(response_schema={"type": "object", "required": ["a"]})
    data = json.loads(to_json(config))
    assert data["response_schema"] == {"type": "object", "required": ["a"]}
    assert from_json(to_json(config), AgentConfig) == config


def test_bad_new_fields_in_a_file_name_their_path() -> None:
    cases = {
        '{"mcp_servers": [{"type": "stdio", "name": "a b", "command": "c"}]}': "mcp_servers[0]",
        '{"budget": {"max_tool_calls": 0}}': "budget.max_tool_calls",
        '{"budget": {"max_calls": 1}}': "budget.max_calls",
        '{"thinking_level": "huge"}': "thinking_level",
        '{"response_schema": 5}': "response_schema",
    }
    for text, where in cases.items():
        with pytest.raises(ConfigError) as caught:
            from_json(text, AgentConfig)
        assert caught.value.field is not None and caught.value.field.startswith(where), text


_NAMES = st.from_regex(r"[a-zA-Z0-9_-]{1,12}", fullmatch=True)
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_TOOLS = st.one_of(st.none(), st.lists(_NAMES, max_size=3))
_MAPPING = st.one_of(st.none(), st.dictionaries(_NAMES, _TEXT, max_size=3))


@st.composite
def _servers(draw: st.DrawFn) -> list[agy_trio.McpStdioServer | agy_trio.McpHttpServer]:
    names = draw(st.lists(_NAMES, unique=True, max_size=3))
    servers: list[agy_trio.McpStdioServer | agy_trio.McpHttpServer] = []
    for name in names:
        listed = draw(st.sampled_from(["enabled_tools", "disabled_tools", None]))
        lists = {listed: draw(st.lists(_NAMES, max_size=3))} if listed else {}
        common = {
            "name": name,
            "timeout_seconds": draw(st.one_of(st.none(), st.integers(1, 600))),
            "force_all_tools_eager": draw(st.booleans()),
            **lists,
        }
        if draw(st.booleans()):
            servers.append(
                agy_trio.McpStdioServer(
                    command=draw(_NAMES),
                    args=draw(st.lists(_TEXT, max_size=3)),
                    env=draw(_MAPPING),
                    **common,
                )
            )
        else:
            servers.append(
                agy_trio.McpHttpServer(
                    url=f"http://127.0.0.1:{draw(st.integers(1, 65535))}/mcp",
                    headers=draw(_MAPPING),
                    timeout=draw(st.floats(0.5, 100)),
                    terminate_on_close=draw(st.booleans()),
                    **common,
                )
            )
    return servers


_BUDGETS = st.one_of(
    st.none(),
    st.builds(
        agy_trio.Budget,
        max_model_calls=st.one_of(st.none(), st.integers(1, 2**31 - 1)),
        max_tool_calls=st.one_of(st.none(), st.integers(1, 2**31 - 1)),
        max_input_tokens=st.one_of(st.none(), st.integers(1, 2**63 - 1)),
        max_output_tokens=st.one_of(st.none(), st.integers(1, 2**63 - 1)),
        max_total_tokens=st.one_of(st.none(), st.integers(1, 2**63 - 1)),
        scope=st.sampled_from(agy_trio.BudgetScope),
    ),
)


@given(
    servers=_servers(),
    budget=_BUDGETS,
    thinking=st.one_of(st.none(), st.sampled_from(agy_trio.ThinkingLevel)),
    tier=st.one_of(st.none(), st.sampled_from(agy_trio.ServiceTier)),
    tokens=st.one_of(st.none(), st.integers(1, 2**31 - 1)),
    schema=st.sampled_from([None, Answer, {"type": "object"}, '{"type": "string"}']),
)
@settings(max_examples=60, deadline=None)
def test_any_combination_of_the_new_fields_round_trips(
    servers: list[Any], budget: Any, thinking: Any, tier: Any, tokens: Any, schema: Any
) -> None:
    config = AgentConfig(
        api_key="k",
        mcp_servers=servers,
        budget=budget,
        thinking_level=thinking,
        service_tier=tier,
        max_output_tokens=tokens,
        response_schema=schema,
    )
    assert from_json(to_json(config), AgentConfig) == config.replace(api_key=None)
    assert from_toml(to_toml(config), AgentConfig) == config.replace(api_key=None)
