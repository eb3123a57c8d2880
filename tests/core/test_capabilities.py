"""Subagents, skills, compaction and run_command as AgentConfig data (JSON and TOML too)."""

from __future__ import annotations

import pytest

from agy_trio import AgentConfig
from agy_trio.core.capabilities import (
    CompactionConfig,
    InlineSkill,
    RunCommandConfig,
    SubagentConfig,
)
from agy_trio.core.config import from_json, from_toml, to_json, to_toml
from agy_trio.errors import ConfigError
from tests.core import sample_tools

FULL = AgentConfig(
    tools=(sample_tools.echo,),
    subagents=[
        SubagentConfig(
            name="researcher",
            description="looks things up",
            builtin_tools=["view_file"],
            tools=["echo"],
            run_command=RunCommandConfig(timeout_seconds=5, enable_sandbox=True),
        )
    ],
    allowed_subagents=["researcher"],
    max_subagent_depth=2,
    skills_paths=["/srv/skills"],
    inline_skills=[InlineSkill("haiku", "Write haiku", "5-7-5", allowed_tools=["echo"])],
    compaction=CompactionConfig(token_threshold=50_000),
    run_command=RunCommandConfig(timeout_seconds=30),
)


def test_the_config_round_trips_through_json_and_toml() -> None:
    assert from_json(to_json(FULL), AgentConfig) == FULL
    assert from_toml(to_toml(FULL), AgentConfig) == FULL


def test_json_data_builds_the_classes() -> None:
    config = from_json(
        '{"subagents": [{"name": "a", "description": "b"}],'
        ' "inline_skills": [{"name": "s", "description": "d", "content": "c"}],'
        ' "compaction": {"token_threshold": 9}, "run_command": {"enable_sandbox": true}}',
        AgentConfig,
    )
    assert config.subagents == (SubagentConfig("a", "b"),)
    assert config.inline_skills == (InlineSkill("s", "d", "c"),)
    assert config.compaction == CompactionConfig(9)
    assert config.run_command == RunCommandConfig(enable_sandbox=True)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"subagents": [SubagentConfig("a", "b"), SubagentConfig("a", "c")]}, "subagents"),
        ({"subagents": ["a"]}, "subagents"),
        ({"inline_skills": [InlineSkill("s", "d", "c")] * 2}, "inline_skills"),
        ({"max_subagent_depth": 0}, "max_subagent_depth"),
        ({"compaction": {"token_threshold": 0}}, "token_threshold"),
        ({"run_command": {"enable_daemons": True}}, "enable_daemons"),
        ({"run_command": {"timeout_seconds": -1}}, "timeout_seconds"),
    ],
)
def test_bad_values_name_their_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        AgentConfig(**changes)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_a_subagent_name_must_be_a_name() -> None:
    with pytest.raises(ConfigError) as caught:
        SubagentConfig("two words", "x")
    assert caught.value.field == "name"
