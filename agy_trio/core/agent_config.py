"""How to create one agent: :class:`AgentConfig`.

A frozen attrs class that validates on construction and raises
:class:`~agy_trio.errors.ConfigError` naming the offending field. Writing it
to JSON or TOML and reading it back is :mod:`agy_trio.core.serialization`'s
job. Also importable from :mod:`agy_trio.core.settings`.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from agy_trio.core import capabilities as caps
from agy_trio.core.budget import Budget
from agy_trio.core.capabilities import (
    CompactionConfig,
    InlineSkill,
    RunCommandConfig,
    SubagentConfig,
)
from agy_trio.core.hooks import Hooks
from agy_trio.core.mcp import McpServer, as_mcp_servers, check_mcp_servers
from agy_trio.core.model_options import MAX_OUTPUT_TOKENS_LIMIT, ServiceTier, ThinkingLevel
from agy_trio.core.policy import PolicySet, flatten_policies
from agy_trio.core.policy_types import Decision, PolicyRule
from agy_trio.core.structured import ResponseSchema
from agy_trio.core.tools import Tool, tool
from agy_trio.core.validation import (
    as_dict,
    as_seconds,
    as_tuple,
    attrs_validator,
    enum_converter,
    enum_validator,
    instance_of,
    optional,
    positive_number,
    string_map,
    tuple_of,
    unicode_text,
    unique_names,
)
from agy_trio.errors import ConfigError

__all__ = ["SECRET", "AgentConfig"]

SECRET = "agy_trio.secret"
"""attrs field metadata key marking a field that is left out when written, unless asked."""


def _as_optional_seconds(value: float | None) -> float | None:
    return None if value is None else as_seconds(value)


_optional_positive = attrs_validator(optional(positive_number))


def _optional_text(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(
            f"must be a non-empty string or None, got {value!r}", field=attribute.name
        )


_optional_unicode = attrs_validator(optional(unicode_text))


def _as_tools(value: Iterable[Tool | Callable[..., Any]]) -> tuple[Tool, ...]:
    items = as_tuple(value)
    if not isinstance(items, tuple):
        return items
    # Plain functions are accepted and wrapped, as if decorated with @tool.
    try:
        return tuple(
            item if isinstance(item, Tool) or not callable(item) else tool(item) for item in items
        )
    except ConfigError as exc:
        raise ConfigError(str(exc), field="tools") from exc


def _as_paths(value: Iterable[str | os.PathLike[str]]) -> tuple[str, ...]:
    items = as_tuple(value)
    if not isinstance(items, tuple):
        return items
    return tuple(os.fspath(item) if isinstance(item, os.PathLike) else item for item in items)


def _as_optional_path(value: str | os.PathLike[str] | None) -> str | None:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _as_decision(value: Decision | str) -> Decision:
    try:
        return Decision(value)
    except ValueError:
        return value  # type: ignore[return-value]  # the validator names the field


def _as_policies(value: Iterable[Any]) -> tuple[Any, ...]:
    # The SDK's MCP builders and presets return lists of rules: flattened, as the SDK does.
    items = as_tuple(value)
    if not isinstance(items, tuple):
        return items
    try:
        return flatten_policies(items)
    except ConfigError:
        return items  # the validator names the field


_check_tools = attrs.validators.and_(tuple_of(Tool, "tools"), unique_names("tool"))


def _check_base_url(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    parts = urllib.parse.urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"must start with http:// or https:// and name a host, got {value!r}",
            field=attribute.name,
        )


def _check_default_policy(
    _instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if value not in (Decision.ALLOW, Decision.DENY):
        raise ConfigError(
            f"must be Decision.ALLOW or Decision.DENY ('allow' or 'deny'), got {value!r}",
            field=attribute.name,
        )


def _as_response_schema(value: object) -> ResponseSchema | None:
    try:
        return None if value is None else ResponseSchema.of(value)
    except ConfigError as exc:
        raise ConfigError(str(exc), field="response_schema") from None


def _below(parent: str, error: ConfigError) -> ConfigError:
    """``error`` of a nested object, its field named from the config down (``budget.x``)."""
    message = str(error).removeprefix(f"{error.field}: ") if error.field else str(error)
    return ConfigError(message, field=f"{parent}.{error.field}" if error.field else parent)


def _as_budget(value: object) -> object:
    # A mapping (JSON over HTTP) builds the Budget; its fields check themselves.
    if isinstance(value, Mapping):
        try:
            return Budget(**value)
        except TypeError as exc:
            raise ConfigError(f"invalid Budget: {exc}", field="budget") from None
        except ConfigError as exc:
            raise _below("budget", exc) from None
    return value


def _check_max_output_tokens(
    _instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if value is None:
        return
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not 1 <= value <= MAX_OUTPUT_TOKENS_LIMIT
    ):
        raise ConfigError(
            f"must be an integer from 1 to {MAX_OUTPUT_TOKENS_LIMIT} or None, got {value!r}",
            field=attribute.name,
        )


_thinking_level = enum_converter(ThinkingLevel)
_service_tier = enum_converter(ServiceTier)


def _as_thinking_level(value: ThinkingLevel | str | None) -> ThinkingLevel | None:
    return _thinking_level(value)  # type: ignore[return-value]  # the validator names the field


def _as_service_tier(value: ServiceTier | str | None) -> ServiceTier | None:
    return _service_tier(value)  # type: ignore[return-value]  # the validator names the field


_MODEL_OPTIONS = ("thinking_level", "service_tier", "max_output_tokens")


def _refuse_model_options_for_base_url(config: AgentConfig) -> None:
    if config.base_url is None:
        return
    for name in _MODEL_OPTIONS:
        if getattr(config, name) is not None:
            raise ConfigError(
                "is a Gemini / Vertex AI option: the harness's OpenAI-compatible endpoint "
                "(base_url) takes only the URL and always sends max_completion_tokens: 65535",
                field=name,
            )


def _redact(value: str | None) -> str:
    # Keys end up in logs through repr(); never print them.
    return "None" if value is None else "'***'"


@attrs.frozen
class AgentConfig:
    """How to create one agent: its model endpoint, instructions, tools and rules.

    Attributes:
        name: A label for logs and progress views.
        model: The model name; None lets the backend choose.
        base_url: An OpenAI-compatible endpoint (``http://`` or ``https://``),
            e.g. a local Ollama, vLLM or LM Studio server.
        api_key: The Gemini API key; also the key quotas are tracked under.
            A secret: never shown by ``repr()``, and left out when the config
            is written unless ``include_secrets=True`` is passed.
        vertex_project: The Google Cloud project, to use Vertex AI.
        vertex_location: The Vertex AI region (needs ``vertex_project``).
        system_instructions: Extra instructions for the model (valid Unicode:
            no lone surrogates).
        tools: Custom tools; plain functions are wrapped with ``@tool``. Names
            must be unique.
        policies: Rules deciding which tools may run, with the SDK's
            precedence (see :mod:`agy_trio.core.policy`); lists of rules, as
            the presets and MCP builders return, are flattened.
        hooks: Lifecycle hooks.
        builtin_tools: SDK built-in tools to enable, by name (none by default).
        workspaces: Folders the agent may work in.
        save_dir: Where conversations are stored.
        app_data_dir: The SDK's application data folder.
        home_dir: The home folder the SDK's harness sees.
        conversation_id: Resume this conversation instead of starting a new one.
        chat_timeout: Per-agent override of ``RuntimeConfig.chat_timeout``.
        default_policy: Decision for tools no rule matches (ALLOW or DENY).
        metadata: Free-form string labels, carried along for the caller.
        response_schema: What the agent's final answer must look like: an
            attrs class, a pydantic model class, a JSON-schema dict or a JSON
            string (kept as a :class:`~agy_trio.core.structured.ResponseSchema`).
            ``await response.structured_output()`` returns the answer.
        mcp_servers: MCP servers the backend runs for the agent
            (:class:`~agy_trio.McpStdioServer`, :class:`~agy_trio.McpHttpServer`),
            names unique; policies address their tools as ``server/tool``.
        budget: Limits on the agent's model calls, tool calls and tokens; a
            turn that reaches one ends with the matching ``StopReason``.
        thinking_level: How much a Gemini model reasons (not for ``base_url``).
        service_tier: The Gemini inference queue (not for ``base_url``).
        max_output_tokens: The most tokens one answer may have (not for ``base_url``).
        subagents: Subagents the agent may hand tasks to
            (:class:`~agy_trio.core.capabilities.SubagentConfig`, names unique);
            they switch the built-in ``invoke_subagent`` tool on.
        allowed_subagents: Which subagents it may invoke (None: all of them).
        max_subagent_depth: How deep subagents may nest (None: the harness's default).
        skills_paths: Folders the harness finds skills in.
        inline_skills: Skills defined here
            (:class:`~agy_trio.core.capabilities.InlineSkill`).
        compaction: When the harness compacts the context
            (:class:`~agy_trio.core.capabilities.CompactionConfig`).
        run_command: How the built-in ``run_command`` runs commands
            (:class:`~agy_trio.core.capabilities.RunCommandConfig`).
    """

    name: str | None = attrs.field(default=None, validator=_optional_text)
    model: str | None = attrs.field(default=None, validator=_optional_text)
    base_url: str | None = attrs.field(default=None, validator=_check_base_url)
    api_key: str | None = attrs.field(
        default=None, validator=_optional_text, repr=_redact, metadata={SECRET: True}
    )
    vertex_project: str | None = attrs.field(default=None, validator=_optional_text)
    vertex_location: str | None = attrs.field(default=None, validator=_optional_text)
    system_instructions: str | None = attrs.field(default=None, validator=_optional_unicode)
    tools: tuple[Tool, ...] = attrs.field(default=(), converter=_as_tools, validator=_check_tools)
    policies: tuple[PolicyRule, ...] = attrs.field(
        default=(),
        converter=_as_policies,
        validator=tuple_of(PolicyRule, "PolicyRule objects"),
    )
    hooks: Hooks = attrs.field(factory=Hooks, validator=attrs_validator(instance_of(Hooks)))
    builtin_tools: tuple[str, ...] = attrs.field(
        default=(), converter=as_tuple, validator=tuple_of(str, "tool names", non_empty=True)
    )
    workspaces: tuple[str, ...] = attrs.field(
        default=(), converter=_as_paths, validator=tuple_of(str, "folders", non_empty=True)
    )
    save_dir: str | None = attrs.field(
        default=None, converter=_as_optional_path, validator=_optional_text
    )
    app_data_dir: str | None = attrs.field(
        default=None, converter=_as_optional_path, validator=_optional_text
    )
    home_dir: str | None = attrs.field(
        default=None, converter=_as_optional_path, validator=_optional_text
    )
    conversation_id: str | None = attrs.field(default=None, validator=_optional_text)
    chat_timeout: float | None = attrs.field(
        default=None, converter=_as_optional_seconds, validator=_optional_positive
    )
    default_policy: Decision = attrs.field(
        default=Decision.ALLOW, converter=_as_decision, validator=_check_default_policy
    )
    metadata: dict[str, str] = attrs.field(
        factory=dict, converter=as_dict, validator=attrs_validator(string_map), hash=False
    )
    response_schema: ResponseSchema | None = attrs.field(
        default=None, converter=_as_response_schema
    )
    mcp_servers: tuple[McpServer, ...] = attrs.field(
        default=(), converter=as_mcp_servers, validator=check_mcp_servers
    )
    budget: Budget | None = attrs.field(
        default=None, converter=_as_budget, validator=attrs_validator(optional(instance_of(Budget)))
    )
    thinking_level: ThinkingLevel | None = attrs.field(
        default=None,
        converter=_as_thinking_level,
        validator=enum_validator(ThinkingLevel),
    )
    service_tier: ServiceTier | None = attrs.field(
        default=None, converter=_as_service_tier, validator=enum_validator(ServiceTier)
    )
    max_output_tokens: int | None = attrs.field(default=None, validator=_check_max_output_tokens)
    subagents: tuple[SubagentConfig, ...] = attrs.field(
        default=(), converter=caps.as_subagents, validator=caps.check_subagents
    )
    allowed_subagents: tuple[str, ...] | None = attrs.field(
        default=None, converter=caps.as_optional_names, validator=caps.check_optional_names
    )
    max_subagent_depth: int | None = attrs.field(default=None, validator=caps.check_depth)
    skills_paths: tuple[str, ...] = attrs.field(
        default=(), converter=_as_paths, validator=tuple_of(str, "folders", non_empty=True)
    )
    inline_skills: tuple[InlineSkill, ...] = attrs.field(
        default=(), converter=caps.as_inline_skills, validator=caps.check_inline_skills
    )
    compaction: CompactionConfig | None = attrs.field(
        default=None, converter=caps.as_compaction, validator=caps.check_compaction
    )
    run_command: RunCommandConfig | None = attrs.field(
        default=None, converter=caps.as_run_command, validator=caps.check_run_command
    )

    def __attrs_post_init__(self) -> None:
        if self.vertex_location is not None and self.vertex_project is None:
            raise ConfigError("vertex_location needs vertex_project", field="vertex_project")
        _refuse_model_options_for_base_url(self)

    @property
    def quota_key(self) -> str:
        """The key this agent's quota is tracked under: its API key, or ``""``."""
        return self.api_key or ""

    @property
    def policy_set(self) -> PolicySet:
        """The agent's rules and default decision as one :class:`PolicySet`."""
        return PolicySet(self.policies, default=self.default_policy)

    def replace(self, **changes: Any) -> AgentConfig:
        """A copy with ``changes`` applied (validated like a new config).

        Raises:
            ConfigError: A changed value is invalid.
        """
        return attrs.evolve(self, **changes)
