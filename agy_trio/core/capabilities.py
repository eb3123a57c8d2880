"""What an agent can do beyond its tools: subagents, skills, compaction, the command sandbox.

The classes and their fields carry the SDK's names (``SubagentConfig``,
``InlineSkill``, ``CompactionConfig``, ``RunCommandConfig``,
``SandboxStatus`` in ``google.antigravity.types``), as plain attrs classes
that are data: they travel in JSON configs (``agy-trio serve``) and to
Temporal workers unchanged. A subagent names the agent's custom tools it may
use (by name: the tools themselves stay the agent's, behind its policies).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from agy_trio.core.validation import attrs_validator, optional, positive_number
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

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def _names(value: Iterable[str] | None) -> tuple[str, ...]:
    if value is None or isinstance(value, str):
        return value  # type: ignore[return-value]  # the validator names the field
    return tuple(value)


def _check_names(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, tuple) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"must be a list of names, got {value!r}", field=attribute.name)


def _check_name(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigError(
            f"must be a name of letters, digits, '-' and '_', got {value!r}", field=attribute.name
        )


def _check_text(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise ConfigError(f"must be a string, got {value!r}", field=attribute.name)


def _check_optional_text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _check_text(instance, attribute, value)


def _check_bool(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"must be true or false, got {value!r}", field=attribute.name)


def _as_metadata(value: Mapping[str, str] | None) -> dict[str, str]:
    return dict(value) if isinstance(value, Mapping) else value  # type: ignore[return-value]


def _check_metadata(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(f"must map strings to strings, got {value!r}", field=attribute.name)


def _check_threshold(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(
            f"must be a positive number of tokens or None, got {value!r}", field=attribute.name
        )


@attrs.frozen
class CompactionConfig:
    """When the harness compacts the conversation's context.

    Attributes:
        token_threshold: Compact once the context holds this many tokens
            (None: the harness's default).
    """

    token_threshold: int | None = attrs.field(default=None, validator=_check_threshold)


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

    enable_daemons: bool = attrs.field(default=False, validator=_check_bool)
    timeout_seconds: float | None = attrs.field(
        default=None, validator=attrs_validator(optional(positive_number))
    )
    enable_sandbox: bool = attrs.field(default=False, validator=_check_bool)

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
    description: str = attrs.field(validator=_check_text)
    content: str = attrs.field(validator=_check_text)
    allowed_tools: tuple[str, ...] = attrs.field(
        default=(), converter=_names, validator=_check_names
    )
    dependent_tools: tuple[str, ...] = attrs.field(
        default=(), converter=_names, validator=_check_names
    )
    dependent_skills: tuple[str, ...] = attrs.field(
        default=(), converter=_names, validator=_check_names
    )
    metadata: dict[str, str] = attrs.field(
        factory=dict, converter=_as_metadata, validator=_check_metadata, hash=False
    )


def _as_run_command(value: object) -> object:
    return RunCommandConfig(**value) if isinstance(value, Mapping) else value


def _check_run_command(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, RunCommandConfig):
        raise ConfigError(
            f"must be a RunCommandConfig or None, got {value!r}", field=attribute.name
        )


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
    description: str = attrs.field(validator=_check_text)
    system_instructions: str | None = attrs.field(default=None, validator=_check_optional_text)
    builtin_tools: tuple[str, ...] = attrs.field(
        default=(), converter=_names, validator=_check_names
    )
    tools: tuple[str, ...] = attrs.field(default=(), converter=_names, validator=_check_names)
    model: str | None = attrs.field(default=None, validator=_check_optional_text)
    allowed_subagents: tuple[str, ...] = attrs.field(
        default=(), converter=_names, validator=_check_names
    )
    run_command: RunCommandConfig | None = attrs.field(
        default=None, converter=_as_run_command, validator=_check_run_command
    )


def as_subagents(value: Iterable[object]) -> tuple[object, ...]:
    """Converter of ``AgentConfig.subagents``: mappings (JSON) become :class:`SubagentConfig`."""
    if isinstance(value, str | Mapping) or not isinstance(value, Iterable):
        return value  # type: ignore[return-value]  # the validator names the field
    return tuple(SubagentConfig(**item) if isinstance(item, Mapping) else item for item in value)


def check_subagents(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator of ``AgentConfig.subagents``: SubagentConfig objects with distinct names."""
    if not isinstance(value, tuple) or not all(isinstance(item, SubagentConfig) for item in value):
        raise ConfigError(
            f"must be a list of SubagentConfig objects, got {value!r}", field=attribute.name
        )
    names = [item.name for item in value]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(
            f"subagent names must be unique, repeated: {repeated}", field=attribute.name
        )


def as_inline_skills(value: Iterable[object]) -> tuple[object, ...]:
    """Converter of ``AgentConfig.inline_skills``: mappings (JSON) become :class:`InlineSkill`."""
    if isinstance(value, str | Mapping) or not isinstance(value, Iterable):
        return value  # type: ignore[return-value]  # the validator names the field
    return tuple(InlineSkill(**item) if isinstance(item, Mapping) else item for item in value)


def check_inline_skills(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator of ``AgentConfig.inline_skills``: InlineSkill objects with distinct names."""
    if not isinstance(value, tuple) or not all(isinstance(item, InlineSkill) for item in value):
        raise ConfigError(
            f"must be a list of InlineSkill objects, got {value!r}", field=attribute.name
        )
    names = [item.name for item in value]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"skill names must be unique, repeated: {repeated}", field=attribute.name)


def as_compaction(value: object) -> object:
    """Converter of ``AgentConfig.compaction``: a mapping (JSON) becomes the config."""
    return CompactionConfig(**value) if isinstance(value, Mapping) else value


def check_compaction(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator of ``AgentConfig.compaction``."""
    if value is not None and not isinstance(value, CompactionConfig):
        raise ConfigError(
            f"must be a CompactionConfig or None, got {value!r}", field=attribute.name
        )


def as_run_command(value: object) -> object:
    """Converter of ``AgentConfig.run_command``: a mapping (JSON) becomes the config."""
    return _as_run_command(value)


def check_run_command(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator of ``AgentConfig.run_command``."""
    _check_run_command(instance, attribute, value)


def check_depth(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator of ``AgentConfig.max_subagent_depth``: a positive integer or None."""
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(
            f"must be a positive integer or None, got {value!r}", field=attribute.name
        )


def as_optional_names(value: Iterable[str] | None) -> tuple[str, ...] | None:
    """Converter of an optional list of names."""
    return None if value is None else _names(value)


def check_optional_names(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator of an optional list of names."""
    if value is not None:
        _check_names(instance, attribute, value)
