"""Configuration: :class:`RuntimeConfig`, :class:`AgentConfig` and the one converter.

Both classes are frozen attrs classes that validate on construction and raise
:class:`~agy_trio.core.errors.ConfigError` naming the offending field. The
module's :data:`converter` writes them to plain data and reads them back; the
:func:`to_json` / :func:`from_json` and :func:`to_toml` / :func:`from_toml`
helpers round-trip them without loss.

On disk, durations are float seconds, enums are their values, tuples are lists,
and a field that is None is left out (TOML has no null). Tools, policy
handlers and hooks are written as their import paths
(``"package.module:qualname"``) and imported again when read, so they must be
module-level names; a lambda or local function cannot be written.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tomllib
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
import tomli_w
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from agy_trio.core.errors import ConfigError
from agy_trio.core.hooks import Hooks
from agy_trio.core.policy import Decision, PolicyRule, PolicySet
from agy_trio.core.tools import Tool, import_path_of, resolve_import_path, resolve_tool, tool

__all__ = [
    "CHAT_TIMEOUT_ENV",
    "DEFAULT_CHAT_TIMEOUT",
    "OPERATION_TIMEOUT_MARGIN",
    "AgentConfig",
    "RuntimeConfig",
    "converter",
    "default_chat_timeout",
    "from_json",
    "from_toml",
    "structure",
    "to_json",
    "to_toml",
    "unstructure",
]

logger = logging.getLogger("agy_trio.config")

CHAT_TIMEOUT_ENV = "AGI_CHAT_TIMEOUT_SECS"
"""Environment variable that sets the default chat timeout, in seconds."""

DEFAULT_CHAT_TIMEOUT = 120.0
"""Chat timeout, in seconds, when neither the config nor the environment sets one."""

OPERATION_TIMEOUT_MARGIN = 120.0
"""How much longer than the chat timeout the default operation timeout is, in seconds."""

_T = TypeVar("_T")


def default_chat_timeout() -> float:
    """The chat timeout to use when none is configured, read from the environment now.

    Returns:
        The value of ``AGI_CHAT_TIMEOUT_SECS`` in seconds when it is a positive
        finite number; otherwise (unset, or invalid, which logs a warning on the
        ``agy_trio.config`` logger) :data:`DEFAULT_CHAT_TIMEOUT`.
    """
    raw = os.environ.get(CHAT_TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_CHAT_TIMEOUT
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        logger.warning(
            "Invalid %s=%r (expected a positive number of seconds), using the default %g s",
            CHAT_TIMEOUT_ENV,
            raw,
            DEFAULT_CHAT_TIMEOUT,
        )
        return DEFAULT_CHAT_TIMEOUT
    return value


# --------------------------------------------------------------------------
# Converters and validators shared by both classes
# --------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_seconds(value: float) -> float:
    # Normalise ints to float so `10` and `10.0` are the same config; anything
    # else is left alone for the validator to reject with the field's name.
    return float(value) if _is_number(value) else value


def _as_optional_seconds(value: float | None) -> float | None:
    return None if value is None else _as_seconds(value)


def _check_seconds(value: object, name: str, *, zero_ok: bool) -> None:
    valid = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > 0 or (zero_ok and value == 0))
    )
    if not valid:
        kind = "non-negative" if zero_ok else "positive"
        raise ConfigError(f"must be a finite {kind} number of seconds, got {value!r}", field=name)


def _positive_seconds(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _check_seconds(value, attribute.name, zero_ok=False)


def _optional_positive_seconds(
    _instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if value is not None:
        _check_seconds(value, attribute.name, zero_ok=False)


def _non_negative_seconds(
    _instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    _check_seconds(value, attribute.name, zero_ok=True)


def _positive_int(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"must be a positive integer, got {value!r}", field=attribute.name)


def _optional_text(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(
            f"must be a non-empty string or None, got {value!r}", field=attribute.name
        )


def _optional_str(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"must be a string or None, got {value!r}", field=attribute.name)


# --------------------------------------------------------------------------
# RuntimeConfig
# --------------------------------------------------------------------------


def _derived_operation_timeout(config: RuntimeConfig) -> float:
    # An invalid chat_timeout is passed through so its own validator reports it.
    chat = config.chat_timeout
    return chat + OPERATION_TIMEOUT_MARGIN if _is_number(chat) else chat


def _check_operation_timeout(
    instance: RuntimeConfig, attribute: attrs.Attribute[Any], value: float
) -> None:
    _check_seconds(value, attribute.name, zero_ok=False)
    # Validators run in field order, so chat_timeout is already known to be valid.
    if value < instance.chat_timeout:
        raise ConfigError(
            f"must be at least chat_timeout ({instance.chat_timeout:g} s), got {value!r}",
            field=attribute.name,
        )


_LOG_LEVELS = frozenset(logging.getLevelNamesMapping())


def _upper(value: str | None) -> str | None:
    return value.upper() if isinstance(value, str) else value


def _check_log_level(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and value not in _LOG_LEVELS:
        raise ConfigError(
            f"must be one of {sorted(_LOG_LEVELS)} or None, got {value!r}", field=attribute.name
        )


_DISPATCH_MODES = ("caller", "task")


def _check_dispatch(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in _DISPATCH_MODES:
        raise ConfigError(f"must be one of {_DISPATCH_MODES}, got {value!r}", field=attribute.name)


@attrs.frozen
class RuntimeConfig:
    """How a runtime behaves: capacities, timeouts, pacing and streaming limits.

    All durations are float seconds.

    Attributes:
        channel_capacity: Commands that may wait in the command channel.
        chat_timeout: Time limit of one chat turn. When not given, read from
            ``AGI_CHAT_TIMEOUT_SECS`` at construction (default 120).
        operation_timeout: Safety-net limit of every command; defaults to
            ``chat_timeout + 120`` and may not be shorter than ``chat_timeout``.
        shutdown_timeout: How long shutdown waits for in-flight work.
        inter_agent_delay: Spacing between successive chat starts (0 disables).
        handler_timeout: Time limit of each policy handler and hook.
        stream_batch_max: Most events sent across the thread boundary in one batch.
        stream_buffer_high_water: Buffered events at which the producer pauses
            (backpressure).
        host_threads: Size of the asyncio host pool, for backends that use several.
        log_level: A :mod:`logging` level name for the runtime's loggers, or
            None to leave logging alone.
        command_dispatch: ``"caller"`` (default): a command runs in the task
            that awaits it, inside a cancel scope the runtime owns.
            ``"task"``: commands travel over the bounded command channel to a
            dispatch loop that runs each as its own task. Both behave the same;
            ``"caller"`` saves two scheduler rounds per command.
    """

    channel_capacity: int = attrs.field(default=64, validator=_positive_int)
    chat_timeout: float = attrs.field(
        factory=default_chat_timeout, converter=_as_seconds, validator=_positive_seconds
    )
    operation_timeout: float = attrs.field(
        default=attrs.Factory(_derived_operation_timeout, takes_self=True),
        converter=_as_seconds,
        validator=_check_operation_timeout,
    )
    shutdown_timeout: float = attrs.field(
        default=10.0, converter=_as_seconds, validator=_non_negative_seconds
    )
    inter_agent_delay: float = attrs.field(
        default=0.5, converter=_as_seconds, validator=_non_negative_seconds
    )
    handler_timeout: float = attrs.field(
        default=30.0, converter=_as_seconds, validator=_positive_seconds
    )
    stream_batch_max: int = attrs.field(default=256, validator=_positive_int)
    stream_buffer_high_water: int = attrs.field(default=1024, validator=_positive_int)
    host_threads: int = attrs.field(default=2, validator=_positive_int)
    log_level: str | None = attrs.field(default=None, converter=_upper, validator=_check_log_level)
    command_dispatch: str = attrs.field(default="caller", validator=_check_dispatch)

    def replace(self, **changes: Any) -> RuntimeConfig:
        """A copy with ``changes`` applied.

        When ``chat_timeout`` changes and ``operation_timeout`` is not given and
        was the derived default, the new config derives it again from the new
        ``chat_timeout`` (plain :func:`attrs.evolve` would keep the old value).

        Raises:
            ConfigError: A changed value is invalid.
        """
        current = attrs.asdict(self, recurse=False)
        derived = self.operation_timeout == self.chat_timeout + OPERATION_TIMEOUT_MARGIN
        if "chat_timeout" in changes and "operation_timeout" not in changes and derived:
            del current["operation_timeout"]
        return RuntimeConfig(**{**current, **changes})


# --------------------------------------------------------------------------
# AgentConfig
# --------------------------------------------------------------------------


def _as_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    # A lone string (or non-iterable) is left for the validator to reject by
    # field name; tuple("abc") would silently become ("a", "b", "c").
    if isinstance(value, str) or not isinstance(value, Iterable):
        return value  # type: ignore[return-value]
    return tuple(value)


def _as_tools(value: Iterable[Tool | Callable[..., Any]]) -> tuple[Tool, ...]:
    items = _as_tuple(value)
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
    items = _as_tuple(value)
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


def _as_metadata(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value) if isinstance(value, Mapping) else value


def _check_sequence_of(
    kind: type, label: str
) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, tuple):
            raise ConfigError(f"must be a list of {label}, got {value!r}", field=attribute.name)
        for item in value:
            if not isinstance(item, kind) or (kind is str and not item):
                raise ConfigError(
                    f"must be a list of {label}, got item {item!r}", field=attribute.name
                )

    return check


def _check_tools(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _check_sequence_of(Tool, "tools")(instance, attribute, value)
    names = [item.name for item in value]  # type: ignore[attr-defined]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(
            f"tool names must be unique, repeated: {duplicates}", field=attribute.name
        )


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


def _check_hooks(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Hooks):
        raise ConfigError(f"must be a Hooks object, got {value!r}", field=attribute.name)


def _check_metadata(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, dict) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    ):
        raise ConfigError(f"must map strings to strings, got {value!r}", field=attribute.name)


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
        vertex_project: The Google Cloud project, to use Vertex AI.
        vertex_location: The Vertex AI region (needs ``vertex_project``).
        system_instructions: Extra instructions for the model.
        tools: Custom tools; plain functions are wrapped with ``@tool``. Names
            must be unique.
        policies: Rules deciding which tools may run.
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
    """

    name: str | None = attrs.field(default=None, validator=_optional_text)
    model: str | None = attrs.field(default=None, validator=_optional_text)
    base_url: str | None = attrs.field(default=None, validator=_check_base_url)
    api_key: str | None = attrs.field(default=None, validator=_optional_text, repr=_redact)
    vertex_project: str | None = attrs.field(default=None, validator=_optional_text)
    vertex_location: str | None = attrs.field(default=None, validator=_optional_text)
    system_instructions: str | None = attrs.field(default=None, validator=_optional_str)
    tools: tuple[Tool, ...] = attrs.field(default=(), converter=_as_tools, validator=_check_tools)
    policies: tuple[PolicyRule, ...] = attrs.field(
        default=(),
        converter=_as_tuple,
        validator=_check_sequence_of(PolicyRule, "PolicyRule objects"),
    )
    hooks: Hooks = attrs.field(factory=Hooks, validator=_check_hooks)
    builtin_tools: tuple[str, ...] = attrs.field(
        default=(), converter=_as_tuple, validator=_check_sequence_of(str, "tool names")
    )
    workspaces: tuple[str, ...] = attrs.field(
        default=(), converter=_as_paths, validator=_check_sequence_of(str, "folders")
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
        default=None, converter=_as_optional_seconds, validator=_optional_positive_seconds
    )
    default_policy: Decision = attrs.field(
        default=Decision.ALLOW, converter=_as_decision, validator=_check_default_policy
    )
    metadata: dict[str, str] = attrs.field(
        factory=dict, converter=_as_metadata, validator=_check_metadata, hash=False
    )

    def __attrs_post_init__(self) -> None:
        if self.vertex_location is not None and self.vertex_project is None:
            raise ConfigError("vertex_location needs vertex_project", field="vertex_project")

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


# --------------------------------------------------------------------------
# The converter
# --------------------------------------------------------------------------

converter = cattrs.Converter(forbid_extra_keys=True, unstruct_collection_overrides={tuple: list})
"""The one converter for agy_trio's configuration classes."""


def _callable_from_path(value: Any, _type: Any = None) -> Callable[..., Any]:
    if callable(value):
        return value  # type: ignore[no-any-return]
    if not isinstance(value, str):
        raise ConfigError(f"expected an import path 'package.module:qualname', got {value!r}")
    found = resolve_import_path(value)
    if not callable(found):
        raise ConfigError(f"{value!r} is not callable")
    return found  # type: ignore[no-any-return]


def _optional_callable_from_path(value: Any, _type: Any = None) -> Callable[..., Any] | None:
    return None if value is None else _callable_from_path(value)


def _optional_path_of(value: object) -> str | None:
    return None if value is None else import_path_of(value)


def _callables_from_paths(value: Any, _type: Any = None) -> tuple[Callable[..., Any], ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(f"expected a list of import paths, got {value!r}")
    return tuple(_callable_from_path(item) for item in value)


def _paths_of(value: Iterable[object]) -> list[str]:
    return [import_path_of(item) for item in value]


def _tool_from_path(value: Any, _type: Any = None) -> Tool:
    if isinstance(value, Tool):
        return value
    if not isinstance(value, str):
        raise ConfigError(f"expected a tool's import path 'package.module:qualname', got {value!r}")
    return resolve_tool(value)


def _tool_path(value: Tool) -> str:
    return value.import_path


def _without_none(hook: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    # TOML has no null, so None is written by leaving the key out; every
    # optional field defaults to None, so reading it back restores None.
    def unstructure_without_none(obj: Any) -> dict[str, Any]:
        return {key: value for key, value in hook(obj).items() if value is not None}

    return unstructure_without_none


def _structure_str(value: Any, _type: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"expected a string, got {value!r}")
    return value


def _structure_int(value: Any, _type: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"expected an integer, got {value!r}")
    return value


def _structure_float(value: Any, _type: Any) -> float:
    if not _is_number(value):
        raise ConfigError(f"expected a number, got {value!r}")
    return float(value)


def _structure_bool(value: Any, _type: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"expected true or false, got {value!r}")
    return value


# cattrs' defaults call str(), int(), float() and bool() on whatever they get,
# which would read a list as the string "['x']" or "false" as True.
converter.register_structure_hook(str, _structure_str)
converter.register_structure_hook(int, _structure_int)
converter.register_structure_hook(float, _structure_float)
converter.register_structure_hook(bool, _structure_bool)
converter.register_structure_hook(Tool, _tool_from_path)
converter.register_unstructure_hook(Tool, _tool_path)

_handler = override(struct_hook=_optional_callable_from_path, unstruct_hook=_optional_path_of)
converter.register_structure_hook(
    PolicyRule, make_dict_structure_fn(PolicyRule, converter, handler=_handler)
)
converter.register_unstructure_hook(
    PolicyRule, _without_none(make_dict_unstructure_fn(PolicyRule, converter, handler=_handler))
)

_hook_list = override(struct_hook=_callables_from_paths, unstruct_hook=_paths_of)
converter.register_structure_hook(
    Hooks,
    make_dict_structure_fn(
        Hooks,
        converter,
        on_turn_start=_hook_list,
        on_turn_end=_hook_list,
        before_tool=_hook_list,
        after_tool=_hook_list,
    ),
)
converter.register_unstructure_hook(
    Hooks,
    make_dict_unstructure_fn(
        Hooks,
        converter,
        on_turn_start=_hook_list,
        on_turn_end=_hook_list,
        before_tool=_hook_list,
        after_tool=_hook_list,
    ),
)

for _cls in (RuntimeConfig, AgentConfig):
    converter.register_structure_hook(_cls, make_dict_structure_fn(_cls, converter))
    converter.register_unstructure_hook(
        _cls, _without_none(make_dict_unstructure_fn(_cls, converter))
    )


def unstructure(config: RuntimeConfig | AgentConfig) -> dict[str, Any]:
    """``config`` as plain data (dicts, lists, strings, numbers), ready for JSON or TOML.

    Raises:
        ConfigError: A tool, handler or hook cannot be written as an import path.
    """
    try:
        data: dict[str, Any] = converter.unstructure(config)
    except ConfigError as exc:
        where = _unserializable_field(config) if isinstance(config, AgentConfig) else None
        if exc.field is None and where is not None:
            raise ConfigError(str(exc), field=where) from exc
        raise
    return data


def _unserializable_field(config: AgentConfig) -> str | None:
    """Which tool, handler or hook of ``config`` has no import path (for the error)."""

    def fails(write: Callable[[Any], object], item: object) -> bool:
        try:
            write(item)
        except ConfigError:
            return True
        return False

    for index, item in enumerate(config.tools):
        if fails(_tool_path, item):
            return f"tools[{index}]"
    for index, rule in enumerate(config.policies):
        if fails(_optional_path_of, rule.handler):
            return f"policies[{index}].handler"
    for kind in attrs.fields(Hooks):
        for index, hook in enumerate(getattr(config.hooks, kind.name)):
            if fails(import_path_of, hook):
                return f"hooks.{kind.name}[{index}]"
    return None


def structure(data: Any, cls: type[_T]) -> _T:
    """Build a ``cls`` (e.g. :class:`RuntimeConfig`) from plain data.

    Raises:
        ConfigError: The data is invalid; ``field`` is the path to the first
            problem (e.g. ``policies[1].handler``).
    """
    try:
        return converter.structure(data, cls)
    except ConfigError:
        raise
    except cattrs.BaseValidationError as exc:
        raise _config_error(exc) from exc
    except Exception as exc:
        raise ConfigError(f"cannot read {cls.__name__}: {exc}") from exc


def _config_error(exc: cattrs.BaseValidationError) -> ConfigError:
    """Flatten cattrs' tree of errors into one ConfigError that names the first path."""
    leaves: list[BaseException] = []

    def describe(leaf: BaseException, type_: Any) -> str:
        leaves.append(leaf)
        if isinstance(leaf, ConfigError):
            return str(leaf)
        return cattrs.v.format_exception(leaf, type_)

    messages = cattrs.transform_error(exc, format_exception=describe)
    # transform_error formats each leaf once, in order: "description @ $.path".
    first_message, _, first_path = messages[0].rpartition(" @ ")
    field = first_path.removeprefix("$").removeprefix(".")
    first = leaves[0] if leaves else None
    below: str | None = None
    if isinstance(first, ConfigError) and first.field:
        # The leaf came from a class's own validation; its field sits below the path.
        first_message = first_message.removeprefix(f"{first.field}: ")
        below = first.field
    elif isinstance(first, cattrs.ForbiddenExtraKeysError):
        below = sorted(first.extra_fields)[0]
    if below:
        field = f"{field}.{below}" if field else below
    rest = [message.replace(" @ $.", " @ ").replace(" @ $", "") for message in messages[1:]]
    return ConfigError("; ".join([first_message, *rest]), field=field or None)


def to_json(config: RuntimeConfig | AgentConfig, *, indent: int | None = 2) -> str:
    """Write ``config`` as JSON.

    Raises:
        ConfigError: A tool, handler or hook cannot be written as an import path.
    """
    return json.dumps(unstructure(config), indent=indent, allow_nan=False)


def from_json(text: str | bytes, cls: type[_T]) -> _T:
    """Read a ``cls`` from JSON written by :func:`to_json` (or by hand).

    Raises:
        ConfigError: The text is not valid JSON or not a valid ``cls``.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"not valid JSON: {exc}") from exc
    return structure(data, cls)


def to_toml(config: RuntimeConfig | AgentConfig) -> str:
    """Write ``config`` as TOML.

    Raises:
        ConfigError: A tool, handler or hook cannot be written as an import path.
    """
    return tomli_w.dumps(unstructure(config))


def from_toml(text: str | bytes, cls: type[_T]) -> _T:
    """Read a ``cls`` from TOML written by :func:`to_toml` (or by hand).

    Raises:
        ConfigError: The text is not valid TOML or not a valid ``cls``.
    """
    try:
        data = tomllib.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}") from exc
    return structure(data, cls)
