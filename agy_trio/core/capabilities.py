"""What an agent can do beyond its tools: subagents, skills, compaction, the command sandbox.

The classes and their fields carry the SDK's names (``SubagentConfig``,
``InlineSkill``, ``CompactionConfig``, ``RunCommandConfig``,
``SandboxStatus`` in ``google.antigravity.types``), as plain attrs classes
that are data: they travel in JSON configs (``agy-trio serve``) and to
Temporal workers unchanged. A subagent names the agent's custom tools it may
use (by name: the tools themselves stay the agent's, behind its policies).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import attrs

from agy_trio.core.validation import (
    as_dict,
    as_tuple,
    attrs_validator,
    instance_of,
    optional,
    positive_int,
    positive_number,
    sdk_name,
    string_map,
    tuple_of,
    unique_names,
)
from agy_trio.errors import ConfigError

__all__ = [
    "CompactionConfig",
    "InlineSkill",
    "RunCommandConfig",
    "SandboxStatus",
    "SubagentConfig",
    "as_subagents",
    "check_subagents",
]

_check_name = attrs_validator(sdk_name)


_text = attrs_validator(instance_of(str))
_optional_text = attrs_validator(optional(instance_of(str)))
_bool = attrs_validator(instance_of(bool))
_names = tuple_of(str, "names")
_optional_count = attrs_validator(optional(positive_int))


@attrs.frozen
class CompactionConfig:
    """When the harness compacts the conversation's context.

    Attributes:
        token_threshold: Compact once the context holds this many tokens
            (None: the harness's default).
    """

    token_threshold: int | None = attrs.field(default=None, validator=_optional_count)


@attrs.frozen
class RunCommandConfig:
    """How ``run_command`` runs shell commands.

    Attributes:
        enable_daemons: Let commands keep running in the background. agy_trio
            keeps this off: the harness's ``manage_task`` tool, which drives
            background commands, consults no policy.
        timeout_seconds: The longest a command may run (None: the harness's default).
        enable_sandbox: Run commands in the harness's sandbox (where the
            platform has one: see ``AgentHandle.sandbox_status()``).
    """

    enable_daemons: bool = attrs.field(default=False, validator=_bool)
    timeout_seconds: float | None = attrs.field(
        default=None, validator=attrs_validator(optional(positive_number))
    )
    enable_sandbox: bool = attrs.field(default=False, validator=_bool)

    def __attrs_post_init__(self) -> None:
        if self.enable_daemons:
            raise ConfigError(
                "background commands are not offered: the harness's manage_task tool, "
                "which drives them, consults no policy",
                field="enable_daemons",
            )


@attrs.frozen
class SandboxStatus:
    """Whether the command sandbox isolates commands on this machine.

    Attributes:
        available: Whether the sandbox enforces isolation.
        unavailable_reason: Why not, when it does not.
    """

    available: bool
    unavailable_reason: str | None = None


@attrs.frozen
class InlineSkill:
    """A skill defined in the config: instructions the model looks up when it needs them.

    Attributes:
        name: Its unique name (e.g. ``"emoji-summarizer"``).
        description: When the model should pick it.
        content: The instructions (Markdown or text).
        allowed_tools: Tools the skill may use.
        dependent_tools: Tools loaded when the skill is looked up.
        dependent_skills: Skills it builds on.
        metadata: Free-form labels (e.g. ``{"visibility": "hidden"}``).
    """

    name: str = attrs.field(validator=_check_name)
    description: str = attrs.field(validator=_text)
    content: str = attrs.field(validator=_text)
    allowed_tools: tuple[str, ...] = attrs.field(default=(), converter=as_tuple, validator=_names)
    dependent_tools: tuple[str, ...] = attrs.field(default=(), converter=as_tuple, validator=_names)
    dependent_skills: tuple[str, ...] = attrs.field(
        default=(), converter=as_tuple, validator=_names
    )
    metadata: dict[str, str] = attrs.field(
        factory=dict, converter=as_dict, validator=attrs_validator(string_map), hash=False
    )


def _from_mapping(kind: Callable[..., object], value: object) -> object:
    # Configs arrive as JSON too (agy-trio serve, Temporal): a mapping is built
    # into the class; anything else passes, for the field's validator to judge.
    return kind(**value) if isinstance(value, Mapping) else value


def _from_mappings(kind: Callable[..., object], value: Iterable[object]) -> tuple[object, ...]:
    items = as_tuple(value)
    if not isinstance(items, tuple):
        return items
    return tuple(_from_mapping(kind, item) for item in items)


def as_run_command(value: object) -> object:
    """Converter of ``AgentConfig.run_command``: a mapping (JSON) becomes the config."""
    return _from_mapping(RunCommandConfig, value)


check_run_command = attrs_validator(optional(instance_of(RunCommandConfig)))
"""Validator of ``AgentConfig.run_command``."""


@attrs.frozen
class SubagentConfig:
    """A subagent the agent may hand a task to (the built-in ``invoke_subagent`` tool).

    The subagent runs in the same harness, on the agent's endpoint; its tool
    calls go through the agent's policies and hooks like the agent's own.

    Attributes:
        name: Its unique name (how the model picks it).
        description: What it is for (the model reads it).
        system_instructions: Instructions added to the subagent's own.
        builtin_tools: SDK built-in tools it may use, by name (the SDK's
            ``capabilities.enabled_tools``; none by default).
        tools: The agent's custom tools it may use, by name.
        model: A model name for it (on the agent's endpoint); None: the agent's.
        allowed_subagents: Subagents it may itself invoke (needs
            ``"invoke_subagent"`` in its ``builtin_tools``).
        run_command: How its ``run_command`` runs.
    """

    name: str = attrs.field(validator=_check_name)
    description: str = attrs.field(validator=_text)
    system_instructions: str | None = attrs.field(default=None, validator=_optional_text)
    builtin_tools: tuple[str, ...] = attrs.field(default=(), converter=as_tuple, validator=_names)
    tools: tuple[str, ...] = attrs.field(default=(), converter=as_tuple, validator=_names)
    model: str | None = attrs.field(default=None, validator=_optional_text)
    allowed_subagents: tuple[str, ...] = attrs.field(
        default=(), converter=as_tuple, validator=_names
    )
    run_command: RunCommandConfig | None = attrs.field(
        default=None, converter=as_run_command, validator=check_run_command
    )


def as_subagents(value: Iterable[object]) -> tuple[object, ...]:
    """Converter of ``AgentConfig.subagents``: mappings (JSON) become :class:`SubagentConfig`."""
    return _from_mappings(SubagentConfig, value)


def as_inline_skills(value: Iterable[object]) -> tuple[object, ...]:
    """Converter of ``AgentConfig.inline_skills``: mappings (JSON) become :class:`InlineSkill`."""
    return _from_mappings(InlineSkill, value)


def as_compaction(value: object) -> object:
    """Converter of ``AgentConfig.compaction``: a mapping (JSON) becomes the config."""
    return _from_mapping(CompactionConfig, value)


def as_optional_names(value: Iterable[str] | None) -> tuple[str, ...] | None:
    """Converter of an optional list of names (None passes)."""
    return None if value is None else as_tuple(value)


check_subagents = attrs.validators.and_(
    tuple_of(SubagentConfig, "SubagentConfig objects"), unique_names("subagent")
)
"""Validator of ``AgentConfig.subagents``: SubagentConfig objects with distinct names."""

check_inline_skills = attrs.validators.and_(
    tuple_of(InlineSkill, "InlineSkill objects"), unique_names("skill")
)
"""Validator of ``AgentConfig.inline_skills``: InlineSkill objects with distinct names."""

check_compaction = attrs_validator(optional(instance_of(CompactionConfig)))
"""Validator of ``AgentConfig.compaction``."""

check_depth = _optional_count
"""Validator of ``AgentConfig.max_subagent_depth``: a positive integer or None."""

check_optional_names = attrs.validators.optional(_names)
"""Validator of an optional list of names."""
