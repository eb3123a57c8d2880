"""Subagents, skills, compaction and the command sandbox, as the SDK's configuration.

From :mod:`agy_trio.core.capabilities` to ``google.antigravity.types``: the
agent's subagents become the SDK's static ``SubagentConfig`` (with the
built-in ``invoke_subagent`` tool switched on for them), its skills and
compaction settings the SDK config's ``skills_paths``, ``inline_skills`` and
``compaction_config``, its ``run_command`` the capabilities'
``run_command_config``.

The subagents run in the agent's harness; every tool they call, built in or
custom, is put to the agent's policies and hooks like the agent's own (the
built-ins through the same ``ask_user`` rules, the custom tools through
``call_tool``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agy_trio.adapters.antigravity.sdk import load_sdk
from agy_trio.core.capabilities import RunCommandConfig, SubagentConfig
from agy_trio.core.settings import AgentConfig
from agy_trio.errors import ConfigError

__all__ = [
    "SUBAGENT_TOOL",
    "capability_options",
    "sdk_config_options",
    "subagent_builtins",
]

SUBAGENT_TOOL = "invoke_subagent"
"""The built-in tool through which the model hands a task to a subagent."""


def _run_command(config: RunCommandConfig | None) -> Any:
    if config is None:
        return None
    return load_sdk().types.RunCommandConfig(
        enable_daemons=False,
        timeout_seconds=config.timeout_seconds,
        enable_sandbox=config.enable_sandbox,
    )


def _builtins(names: Sequence[str], field: str) -> list[Any]:
    builtin = load_sdk().BuiltinTools
    chosen: list[Any] = []
    for name in names:
        try:
            chosen.append(builtin(name))
        except ValueError:
            raise ConfigError(f"unknown built-in tool {name!r}", field=field) from None
    return chosen


def subagent_builtins(config: AgentConfig) -> list[Any]:
    """Every built-in tool the agent's subagents may use (each needs its policy rule)."""
    found: list[Any] = []
    for subagent in config.subagents:
        for member in _builtins(subagent.builtin_tools, "subagents"):
            if member not in found:
                found.append(member)
    return found


def _subagent(subagent: SubagentConfig, custom_tools: set[str]) -> Any:
    types = load_sdk().types
    unknown = sorted(set(subagent.tools) - custom_tools)
    if unknown:
        raise ConfigError(
            f"subagent {subagent.name!r} names tools the agent does not have: {unknown}",
            field="subagents",
        )
    capabilities = types.SubagentCapabilities(
        enabled_tools=_builtins(subagent.builtin_tools, "subagents"),
        allowed_subagents=list(subagent.allowed_subagents) or None,
        run_command_config=_run_command(subagent.run_command),
    )
    return types.SubagentConfig(
        name=subagent.name,
        description=subagent.description,
        system_instructions=subagent.system_instructions,
        capabilities=capabilities,
        tools=list(subagent.tools),
        model=subagent.model,
    )


def capability_options(config: AgentConfig) -> dict[str, Any]:
    """The ``CapabilitiesConfig`` fields for subagents and ``run_command``."""
    options: dict[str, Any] = {}
    if config.subagents:
        options["enable_subagents"] = True
        options["max_subagent_depth"] = config.max_subagent_depth
        if config.allowed_subagents is not None:
            options["allowed_subagents"] = list(config.allowed_subagents)
    options["run_command_config"] = _run_command(config.run_command)
    return options


def sdk_config_options(config: AgentConfig) -> dict[str, Any]:
    """The SDK config fields for subagents, skills and compaction."""
    types = load_sdk().types
    custom = {tool.name for tool in config.tools}
    options: dict[str, Any] = {
        "subagents": [_subagent(subagent, custom) for subagent in config.subagents],
        "skills_paths": list(config.skills_paths) or None,
        "inline_skills": [
            types.InlineSkill(
                name=skill.name,
                description=skill.description,
                content=skill.content,
                allowed_tools=list(skill.allowed_tools),
                dependent_tools=list(skill.dependent_tools),
                dependent_skills=list(skill.dependent_skills),
                metadata=dict(skill.metadata),
            )
            for skill in config.inline_skills
        ],
    }
    if config.compaction is not None:
        options["compaction_config"] = types.CompactionConfig(
            token_threshold=config.compaction.token_threshold
        )
    return options
