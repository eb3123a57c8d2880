"""From an agy_trio :class:`~agy_trio.core.settings.AgentConfig` to the SDK's agent configuration.

The SDK's defaults are unsafe for a runtime that hosts many agents: every
built-in tool on (shell commands, file writes, web access, sub-agents), the
current directory as workspace, a new temporary ``save_dir`` per agent that is
never removed, and ``$HOME/.gemini`` written to. The mapping here starts from
nothing instead: no built-in tool unless ``AgentConfig.builtin_tools`` names
it, and every folder the harness touches under a per-backend temporary folder
unless the user chose one.

Every tool the harness can run on the agent's behalf goes through the agent's
policies, or is not offered to the model at all: which built-ins an agent may
have, and which names a custom tool may not take, is
:mod:`~agy_trio.adapters.antigravity.builtin_tools`'s.

Which endpoint an agent talks to follows from the config:

* ``base_url`` (with ``model``): any OpenAI-compatible chat-completions server
  (the local model server, Ollama, vLLM, LM Studio), through
  ``LocalOpenAIAgentConfig``;
* ``vertex_project`` (and ``vertex_location``): Vertex AI, through
  ``LocalAgentConfig(vertex=True, ...)``;
* ``api_key``, or ``GEMINI_API_KEY`` in the environment: the Gemini API,
  through ``LocalAgentConfig``.
"""

from __future__ import annotations

import enum
import functools
import importlib
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from agy_trio.adapters.antigravity.builtin_tools import (
    UNGUARDED_BUILTINS,
    builtin_tool_names,
    check_tool_names,
    harness_tool_names,
)
from agy_trio.adapters.antigravity.capabilities import (
    capability_options,
    sdk_config_options,
    subagent_builtins,
)
from agy_trio.adapters.antigravity.harness import HARNESS_OWNER_ENV
from agy_trio.adapters.antigravity.launcher import HARNESS_PATH_ENV, install_launcher
from agy_trio.adapters.antigravity.mcp import sdk_mcp_policies, sdk_mcp_servers
from agy_trio.adapters.antigravity.sdk import load_sdk
from agy_trio.core.settings import AgentConfig
from agy_trio.core.structured import FINISH_TOOL
from agy_trio.errors import ConfigError

__all__ = [
    "UNGUARDED_BUILTINS",
    "Endpoint",
    "HarnessFolders",
    "SdkAgentSpec",
    "builtin_tool_names",
    "check_tool_names",
    "choose_endpoint",
    "config_classes",
    "conversation_files",
    "harness_tool_names",
    "resolve_folders",
    "sdk_agent_config",
    "validate_conversation_id",
]

log = logging.getLogger("agy_trio.antigravity")


class Endpoint(enum.Enum):
    """The kind of model endpoint an agent talks to."""

    OPENAI_COMPATIBLE = "openai_compatible"
    GEMINI = "gemini"
    VERTEX = "vertex"


def choose_endpoint(config: AgentConfig, environ: Mapping[str, str] | None = None) -> Endpoint:
    """Which endpoint ``config`` selects (see the module docstring for the rules).

    Raises:
        ConfigError: The config names no endpoint (and ``GEMINI_API_KEY`` is
            unset), or ``base_url`` comes without ``model``.
    """
    env = os.environ if environ is None else environ
    if config.base_url is not None:
        if config.model is None:
            raise ConfigError(
                "an OpenAI-compatible endpoint (base_url) needs the model name", field="model"
            )
        if config.api_key is not None:
            # The harness sends no Authorization header to such endpoints.
            log.warning("api_key is not sent to an OpenAI-compatible base_url (SDK limitation)")
        return Endpoint.OPENAI_COMPATIBLE
    if config.vertex_project is not None:
        return Endpoint.VERTEX
    if config.api_key is not None or env.get("GEMINI_API_KEY"):
        return Endpoint.GEMINI
    raise ConfigError(
        "no model endpoint: set base_url and model (an OpenAI-compatible server), "
        "api_key (Gemini API; or GEMINI_API_KEY in the environment), or vertex_project",
        field="base_url",
    )


_CONVERSATION_ID = re.compile(r"^[a-zA-Z0-9-]{32,}$")


def validate_conversation_id(conversation_id: str) -> str:
    """Check an id the SDK would accept (32 or more of ``[a-zA-Z0-9-]``).

    Raises:
        ConfigError: It would not.
    """
    if not _CONVERSATION_ID.match(conversation_id):
        raise ConfigError(
            f"not an SDK conversation id (32+ characters of [a-zA-Z0-9-]): {conversation_id!r}",
            field="conversation_id",
        )
    return conversation_id


@attrs.frozen
class HarnessFolders:
    """The folders one agent's harness uses.

    Attributes:
        save_dir: Where conversations are stored (one SQLite ``<id>.db`` each).
        app_data_dir: The harness's application data (``brain/<id>/`` transcripts).
        home_dir: The ``HOME`` the harness sees, or None to leave it alone.
        workspaces: Folders the agent may work in.
    """

    save_dir: str
    app_data_dir: str
    home_dir: str | None
    workspaces: tuple[str, ...]


def resolve_folders(config: AgentConfig, root: Path, endpoint: Endpoint) -> HarnessFolders:
    """The folders to give the harness: the user's where set, else under ``root``.

    ``root`` is the backend's temporary folder. Folders are created if missing.
    For Vertex AI with Application Default Credentials and no ``home_dir``,
    HOME is left alone: the harness finds those credentials under the real
    home folder.
    """
    save_dir = Path(config.save_dir) if config.save_dir else root / "conversations"
    app_data_dir = Path(config.app_data_dir) if config.app_data_dir else root / "app_data"
    home: Path | None
    if config.home_dir:
        home = Path(config.home_dir)
    elif endpoint is Endpoint.VERTEX and config.api_key is None:
        home = None
    else:
        home = root / "home"
    workspaces = tuple(config.workspaces) or (str(root / "workspace"),)
    folders = [save_dir, app_data_dir, *(Path(w) for w in workspaces)]
    if home is not None:
        folders.append(home)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    return HarnessFolders(
        save_dir=str(save_dir.resolve()),
        app_data_dir=str(app_data_dir.resolve()),
        home_dir=str(home.resolve()) if home is not None else None,
        workspaces=tuple(str(Path(w).resolve()) for w in workspaces),
    )


_DB_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal")


def conversation_files(folders: HarnessFolders, conversation_id: str) -> list[Path]:
    """Every file and folder the harness keeps for one conversation.

    The SQLite database (with its write-ahead log) in ``save_dir`` and the
    transcripts under ``app_data_dir/brain/<id>``.
    """
    save = Path(folders.save_dir)
    files = [save / f"{conversation_id}{suffix}" for suffix in _DB_SUFFIXES]
    files.append(Path(folders.app_data_dir) / "brain" / conversation_id)
    return files


@functools.cache
def config_classes() -> tuple[type[Any], type[Any]]:
    """SDK config subclasses whose strategy starts the harness through our launcher."""
    sdk = load_sdk()
    return (
        _launching(sdk.LocalOpenAIAgentConfig, "OpenAICompatibleConfig"),
        _launching(sdk.LocalAgentConfig, "GeminiConfig"),
    )


def _launching(base: type[Any], name: str) -> type[Any]:
    """A subclass of the SDK config ``base`` whose strategy starts the harness through ours."""

    class Config(base):  # type: ignore[misc]
        def create_strategy(self, *, tool_runner: Any, hook_runner: Any) -> Any:
            strategy = super().create_strategy(tool_runner=tool_runner, hook_runner=hook_runner)
            install_launcher(strategy)
            _hide_unchecked_tools(strategy)
            return strategy

    Config.__name__ = Config.__qualname__ = name
    return Config


def _hide_unchecked_tools(strategy: Any) -> None:
    """Never let the harness offer the tools it runs without consulting the policies.

    ``run_command`` switches ``manage_task`` on (and ``schedule`` and
    subagents would too): the harness runs them with no pre-tool check, so
    the harness configuration the SDK builds has them switched off, for the
    agent and for every workflow agent it starts.
    """
    build = getattr(strategy, "_to_harness_side_tools_proto", None)
    if build is None:
        raise ConfigError(
            "this google-antigravity version cannot be configured safely: its harness tool "
            "configuration is not where agy_trio expects it"
        )

    # Subagents only as the agent's static SubagentConfigs, whose tools go
    # through its policies (see adapters.antigravity.capabilities).
    static_subagents = bool(getattr(strategy, "_subagents", None))

    def build_checked(*args: Any, **kwargs: Any) -> Any:
        tools = build(*args, **kwargs)
        tools.manage_task.enabled = False
        tools.schedule.enabled = False
        tools.subagents.enabled = static_subagents and tools.subagents.enabled
        return tools

    strategy._to_harness_side_tools_proto = build_checked


@attrs.frozen
class SdkAgentSpec:
    """Everything needed to build one SDK agent configuration.

    Attributes:
        config: The agy_trio agent configuration.
        endpoint: The endpoint it selects.
        folders: The harness's folders.
        conversation_id: The conversation to create or resume.
        resume: Resume ``conversation_id`` (True) or create it (False).
        tools: SDK tool callables (the runtime's tools, wrapped).
        authorize: The SDK ``ask_user`` handler consulted for built-in tools.
        hooks: SDK hook objects (the agent's hook points, answered in Trio).
        owner: The harness owner tag (see ``HARNESS_OWNER_ENV``).
        harness_path: The harness binary, found ahead of time (see
            :func:`~agy_trio.adapters.antigravity.launcher.sdk_facts`); None
            lets the SDK search for it on the asyncio loop.
        mcp_lease: The agent's MCP lease name (see
            :class:`~agy_trio.adapters.antigravity.mcp.McpLease`), held by
            the guard of each stdio MCP server; None for none.
    """

    config: AgentConfig
    endpoint: Endpoint
    folders: HarnessFolders
    conversation_id: str
    resume: bool
    tools: Sequence[Callable[..., Any]] = ()
    authorize: Callable[..., Any] | None = None
    hooks: Sequence[Any] = ()
    owner: str = ""
    harness_path: str | None = None
    mcp_lease: str | None = None


def sdk_policies(
    spec: SdkAgentSpec, builtins: Sequence[Any], mcp_servers: Sequence[Any] = ()
) -> list[Any]:
    """The SDK-level policies: custom tools pass (the runtime checks them), built-ins ask.

    Custom tools are checked by the runtime when they run (``call_tool``), so
    the SDK lets them through; each enabled built-in tool, and each tool of
    an MCP server (``server/*``), is put to the runtime's policies through
    ``authorize`` before the harness runs it; with a ``response_schema`` the
    harness's ``finish`` tool, through which the model hands over the
    structured answer, always passes; anything else is denied. The folders
    of the agent's ``workspace_only()`` rules go to the harness as well,
    which contains file tools itself.
    """
    policy = importlib.import_module("google.antigravity.hooks.policy")
    rules: list[Any] = [policy.allow(getattr(t, "__name__", "")) for t in spec.tools]
    if spec.config.response_schema is not None:
        rules.append(policy.allow(FINISH_TOOL))
    # workspace_only() is enforced by the harness too (file tools contained by path).
    contained = sorted(
        {folder for rule in spec.config.policies if rule.workspaces for folder in rule.workspaces}
    )
    if contained:
        rules.extend(policy.workspace_only(contained))
    if spec.authorize is not None:
        # The subagents' built-ins are put to the same policies as the agent's own.
        guarded = list(builtins)
        guarded.extend(b for b in subagent_builtins(spec.config) if b not in guarded)
        rules.extend(policy.ask_user(b.value, handler=spec.authorize) for b in guarded)
        rules.extend(sdk_mcp_policies(mcp_servers, spec.authorize))
    rules.append(policy.deny_all())
    return rules


def _sdk_budget(config: AgentConfig) -> Any:
    budget = config.budget
    if budget is None:
        return None
    types = load_sdk().types
    return types.BudgetConfig(
        max_model_calls=budget.max_model_calls,
        max_tool_calls=budget.max_tool_calls,
        max_input_tokens=budget.max_input_tokens,
        max_output_tokens=budget.max_output_tokens,
        max_total_tokens=budget.max_total_tokens,
        scope=types.BudgetScope(budget.scope.value),
    )


def _gemini_model(config: AgentConfig) -> Any:
    """The model to give a Gemini or Vertex config: its name, or a target with the options.

    With ``thinking_level``, ``service_tier`` or ``max_output_tokens`` set, the
    options ride on the model's endpoint (the SDK's ``GeminiModelOptions``).
    """
    if (
        config.thinking_level is None
        and config.service_tier is None
        and (config.max_output_tokens is None)
    ):
        return config.model
    sdk = load_sdk()
    models = importlib.import_module("google.antigravity.models")
    options = models.GeminiModelOptions(
        thinking_level=models.ThinkingLevel(config.thinking_level.value)
        if config.thinking_level is not None
        else None,
        service_tier=models.ServiceTier(config.service_tier.value)
        if config.service_tier is not None
        else None,
        max_output_tokens=config.max_output_tokens,
    )
    if config.vertex_project is not None:
        endpoint = models.VertexEndpoint(
            project=config.vertex_project,
            location=config.vertex_location,
            api_key=config.api_key,
            options=options,
        )
    else:
        endpoint = models.GeminiAPIEndpoint(api_key=config.api_key, options=options)
    return sdk.types.ModelTarget(
        name=config.model or models.DEFAULT_MODEL,
        types=[models.ModelType.TEXT],
        endpoint=endpoint,
    )


def sdk_agent_config(spec: SdkAgentSpec) -> Any:
    """Build the SDK agent configuration (``LocalOpenAIAgentConfig`` or ``LocalAgentConfig``).

    Raises:
        ConfigError: A setting is invalid for the SDK.
        AntigravityNotInstalled: The SDK is not installed.
    """
    sdk = load_sdk()
    config = spec.config
    check_tool_names(config)
    builtins = builtin_tool_names(config)
    options = capability_options(config)
    options.setdefault(
        "enable_subagents",
        sdk.BuiltinTools.INVOKE_SUBAGENT in builtins or sdk.BuiltinTools.RUN_WORKFLOW in builtins,
    )
    capabilities = sdk.CapabilitiesConfig(enabled_tools=builtins, **options)
    env = {HARNESS_OWNER_ENV: spec.owner}
    if spec.folders.home_dir is not None:
        env["HOME"] = spec.folders.home_dir
    if spec.harness_path is not None:
        # Spares the SDK's strategy its importlib.metadata search on the loop;
        # install_launcher takes it out of the harness's own environment.
        env[HARNESS_PATH_ENV] = spec.harness_path
    continuation = sdk.types.SessionContinuationMode
    mcp_servers = sdk_mcp_servers(config.mcp_servers, spec.mcp_lease)
    common: dict[str, Any] = {
        "system_instructions": config.system_instructions,
        "capabilities": capabilities,
        "tools": list(spec.tools),
        "hooks": list(spec.hooks),
        **sdk_config_options(config),
        "policies": sdk_policies(spec, builtins, mcp_servers),
        "mcp_servers": mcp_servers,
        "response_schema": config.response_schema.text
        if config.response_schema is not None
        else None,
        "budget_config": _sdk_budget(config),
        "workspaces": list(spec.folders.workspaces),
        "save_dir": spec.folders.save_dir,
        "app_data_dir": spec.folders.app_data_dir,
        "env": env,
        "conversation_id": spec.conversation_id,
        "session_continuation_mode": continuation.RESUME
        if spec.resume
        else continuation.CREATE_ONLY,
    }
    openai_config, gemini_config = config_classes()
    try:
        if spec.endpoint is Endpoint.OPENAI_COMPATIBLE:
            return openai_config(model=config.model, base_url=config.base_url, **common)
        if spec.endpoint is Endpoint.VERTEX:
            return gemini_config(
                model=_gemini_model(config),
                vertex=True,
                project=config.vertex_project,
                location=config.vertex_location,
                api_key=config.api_key,
                **common,
            )
        return gemini_config(
            model=_gemini_model(config), api_key=config.api_key, vertex=False, **common
        )
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise ConfigError(f"the SDK rejected the agent configuration: {exc}") from exc
