"""Reading and writing :class:`RuntimeConfig` and :class:`AgentConfig`: one cattrs converter.

The module's :data:`converter` writes both classes to plain data and reads them
back; :func:`to_json` / :func:`from_json` and :func:`to_toml` / :func:`from_toml`
round-trip them without loss, secrets aside.

On disk, durations are float seconds, enums are their values, tuples are lists,
and a field that is None is left out (TOML has no null). Tools, policy
handlers and hooks are written as their import paths
(``"package.module:qualname"``) and imported again when read, so they must be
module-level names; a lambda or local function cannot be written.

Secrets (``AgentConfig.api_key``) are left out when writing unless the caller
passes ``include_secrets=True``, so a written config can be shared or logged.
Reading a file that holds one restores it.

Every reader raises :class:`~agy_trio.errors.ConfigError` for any input it
cannot use, including input nested too deeply to parse and settings
:class:`RuntimeConfig` no longer has (see
:data:`~agy_trio.core.settings.REMOVED_RUNTIME_FIELDS`).
"""

from __future__ import annotations

import functools
import json
import reprlib
import tomllib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
import tomli_w
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from agy_trio.core.budget import Budget
from agy_trio.core.capabilities import (
    CompactionConfig,
    InlineSkill,
    RunCommandConfig,
    SubagentConfig,
)
from agy_trio.core.hooks import Hooks
from agy_trio.core.mcp import McpHttpServer, McpServer, McpStdioServer, mcp_server_of
from agy_trio.core.policy import PolicyRule
from agy_trio.core.settings import REMOVED_RUNTIME_FIELDS, SECRET, AgentConfig, RuntimeConfig
from agy_trio.core.structured import ResponseSchema
from agy_trio.core.tools import Tool, import_path_of, resolve_import_path, resolve_tool
from agy_trio.core.validation import is_number
from agy_trio.errors import ConfigError, StructuredOutputError

__all__ = [
    "converter",
    "from_json",
    "from_toml",
    "read_structured_output",
    "structure",
    "to_json",
    "to_toml",
    "unstructure",
]

_T = TypeVar("_T")

_TOO_DEEP = "nested too deeply"

_SHORT = reprlib.Repr()
_SHORT.maxlevel = 3
_SHORT.maxstring = _SHORT.maxother = 80


def _short(value: object) -> str:
    # Values quoted in errors come from files and may be huge or deeply nested.
    return _SHORT.repr(value)


converter = cattrs.Converter(forbid_extra_keys=True, unstruct_collection_overrides={tuple: list})
"""The one converter for agy_trio's configuration classes."""


def _callable_from_path(value: Any, _type: Any = None) -> Callable[..., Any]:
    if callable(value):
        return value  # type: ignore[no-any-return]
    if not isinstance(value, str):
        raise ConfigError(f"expected an import path 'package.module:qualname', got {_short(value)}")
    found = resolve_import_path(value)
    if not callable(found):
        raise ConfigError(f"{_short(value)} is not callable")
    return found  # type: ignore[no-any-return]


def _optional_callable_from_path(value: Any, _type: Any = None) -> Callable[..., Any] | None:
    return None if value is None else _callable_from_path(value)


def _optional_path_of(value: object) -> str | None:
    return None if value is None else import_path_of(value)


def _callables_from_paths(value: Any, _type: Any = None) -> tuple[Callable[..., Any], ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(f"expected a list of import paths, got {_short(value)}")
    return tuple(_callable_from_path(item) for item in value)


def _paths_of(value: Iterable[object]) -> list[str]:
    return [import_path_of(item) for item in value]


def _tool_from_path(value: Any, _type: Any = None) -> Tool:
    if isinstance(value, Tool):
        return value
    if not isinstance(value, str):
        raise ConfigError(
            f"expected a tool's import path 'package.module:qualname', got {_short(value)}"
        )
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
        raise ConfigError(f"expected a string, got {_short(value)}")
    return value


def _structure_int(value: Any, _type: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"expected an integer, got {_short(value)}")
    return value


def _structure_float(value: Any, _type: Any) -> float:
    if not is_number(value):
        raise ConfigError(f"expected a number, got {_short(value)}")
    return float(value)


def _structure_bool(value: Any, _type: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"expected true or false, got {_short(value)}")
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
    PolicyRule, make_dict_structure_fn(PolicyRule, converter, handler=_handler, when=_handler)
)
_RULE_DEFAULTS = {
    field.name: field.default for field in attrs.fields(PolicyRule) if field.default is not None
}


def _rule_without_defaults(
    hook: Callable[[Any], dict[str, Any]],
) -> Callable[[Any], dict[str, Any]]:
    # A rule is written with only what it sets (name, reason, auto... are rare).
    def unstructure_rule(rule: Any) -> dict[str, Any]:
        return {
            key: value
            for key, value in hook(rule).items()
            if (value is not None and (key not in _RULE_DEFAULTS or value != _RULE_DEFAULTS[key]))
            or key in ("decision", "tool")
        }

    return unstructure_rule


converter.register_unstructure_hook(
    PolicyRule,
    _rule_without_defaults(
        make_dict_unstructure_fn(PolicyRule, converter, handler=_handler, when=_handler)
    ),
)

# TOML has no null: the capability classes, nested in AgentConfig, leave None out too.
for _capability in (SubagentConfig, RunCommandConfig, CompactionConfig, InlineSkill):
    converter.register_unstructure_hook(
        _capability, _without_none(make_dict_unstructure_fn(_capability, converter))
    )

# Every field of Hooks is a list of callables, written as import paths.
_hook_list = override(struct_hook=_callables_from_paths, unstruct_hook=_paths_of)
# (Any: mypy would match a dict of overrides against the named options too.)
_hook_lists: dict[str, Any] = {field.name: _hook_list for field in attrs.fields(Hooks)}
converter.register_structure_hook(Hooks, make_dict_structure_fn(Hooks, converter, **_hook_lists))
converter.register_unstructure_hook(
    Hooks, make_dict_unstructure_fn(Hooks, converter, **_hook_lists)
)


def _response_schema(value: Any, _type: Any = None) -> ResponseSchema:
    return ResponseSchema.of(value)


converter.register_structure_hook(ResponseSchema, _response_schema)
converter.register_unstructure_hook(ResponseSchema, lambda schema: schema.to_data())

# Budgets and MCP servers are written without their unset (None) fields, and
# each MCP server with its "type" ("stdio" or "http", the SDK's names), which
# says which class to read it back as.
converter.register_structure_hook(Budget, make_dict_structure_fn(Budget, converter))
converter.register_unstructure_hook(
    Budget, _without_none(make_dict_unstructure_fn(Budget, converter))
)
for _server_class in (McpStdioServer, McpHttpServer):
    converter.register_unstructure_hook(
        _server_class,
        functools.partial(
            lambda hook, server: {"type": server.type, **hook(server)},
            _without_none(make_dict_unstructure_fn(_server_class, converter)),
        ),
    )


def _mcp_server(value: Any, _type: Any = None) -> McpServer:
    server = mcp_server_of(value)
    if not isinstance(server, McpStdioServer | McpHttpServer):
        raise ConfigError(f"expected an MCP server object, got {_short(value)}")
    return server


converter.register_structure_hook(McpServer, _mcp_server)


def _secret_fields(cls: type[Any]) -> frozenset[str]:
    return frozenset(field.name for field in attrs.fields(cls) if field.metadata.get(SECRET))


def _without_secrets(
    hook: Callable[[Any], dict[str, Any]], secrets: frozenset[str]
) -> Callable[[Any], dict[str, Any]]:
    def unstructure_without_secrets(obj: Any) -> dict[str, Any]:
        return {key: value for key, value in hook(obj).items() if key not in secrets}

    return unstructure_without_secrets


# The registered hooks leave secrets out, so nothing written through the
# converter holds one by accident; unstructure(include_secrets=True) uses the
# complete hook built from the same converter.
_WITH_SECRETS: dict[type[Any], Callable[[Any], dict[str, Any]]] = {}
for _cls in (RuntimeConfig, AgentConfig):
    converter.register_structure_hook(_cls, make_dict_structure_fn(_cls, converter))
    _WITH_SECRETS[_cls] = _without_none(make_dict_unstructure_fn(_cls, converter))
    converter.register_unstructure_hook(
        _cls, _without_secrets(_WITH_SECRETS[_cls], _secret_fields(_cls))
    )


def unstructure(
    config: RuntimeConfig | AgentConfig, *, include_secrets: bool = False
) -> dict[str, Any]:
    """``config`` as plain data (dicts, lists, strings, numbers), ready for JSON or TOML.

    Args:
        config: The configuration to write.
        include_secrets: Also write secrets (``AgentConfig.api_key``); by
            default they are left out.

    Raises:
        ConfigError: A tool, handler or hook cannot be written as an import path.
    """
    try:
        if include_secrets:
            write = next(hook for cls, hook in _WITH_SECRETS.items() if isinstance(config, cls))
            data = write(config)
        else:
            data = converter.unstructure(config)
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
        if fails(_optional_path_of, rule.when):
            return f"policies[{index}].when"
    for kind in attrs.fields(Hooks):
        for index, hook in enumerate(getattr(config.hooks, kind.name)):
            if fails(import_path_of, hook):
                return f"hooks.{kind.name}[{index}]"
    return None


def structure(data: Any, cls: type[_T]) -> _T:
    """Build a ``cls`` (e.g. :class:`RuntimeConfig`) from plain data.

    Raises:
        ConfigError: The data is invalid; ``field`` is the path to the first
            problem (e.g. ``policies[1].handler``). A setting
            :class:`RuntimeConfig` no longer has is named with where it went.
    """
    if isinstance(cls, type) and issubclass(cls, RuntimeConfig) and isinstance(data, Mapping):
        _refuse_removed_fields(data)
    try:
        try:
            return converter.structure(data, cls)
        except cattrs.BaseValidationError as exc:
            raise _config_error(exc) from exc
    except ConfigError:
        raise
    except RecursionError as exc:
        raise ConfigError(f"cannot read {cls.__name__}: {_TOO_DEEP}") from exc
    except Exception as exc:
        raise ConfigError(f"cannot read {cls.__name__}: {exc}") from exc


def _refuse_removed_fields(data: Mapping[Any, Any]) -> None:
    for name, where in REMOVED_RUNTIME_FIELDS.items():
        if name in data:
            raise ConfigError(f"no longer a RuntimeConfig setting; {where}", field=name)


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


def to_json(
    config: RuntimeConfig | AgentConfig,
    *,
    indent: int | None = 2,
    include_secrets: bool = False,
) -> str:
    """Write ``config`` as JSON.

    Args:
        config: The configuration to write.
        indent: Passed to :func:`json.dumps`; None writes one line.
        include_secrets: As :func:`unstructure`.

    Raises:
        ConfigError: As :func:`unstructure`.
    """
    data = unstructure(config, include_secrets=include_secrets)
    return json.dumps(data, indent=indent, allow_nan=False)


def from_json(text: str | bytes, cls: type[_T]) -> _T:
    """Read a ``cls`` from JSON written by :func:`to_json` (or by hand).

    Raises:
        ConfigError: The text is not valid JSON, is nested too deeply, or is
            not a valid ``cls``.
    """
    try:
        data = json.loads(text)
    except RecursionError as exc:
        raise ConfigError(f"not valid JSON: {_TOO_DEEP}") from exc
    except ValueError as exc:
        raise ConfigError(f"not valid JSON: {exc}") from exc
    return structure(data, cls)


def to_toml(config: RuntimeConfig | AgentConfig, *, include_secrets: bool = False) -> str:
    """Write ``config`` as TOML: the data of :func:`unstructure`, which takes the same arguments.

    Raises:
        ConfigError: As :func:`unstructure`.
    """
    return tomli_w.dumps(unstructure(config, include_secrets=include_secrets))


def from_toml(text: str | bytes, cls: type[_T]) -> _T:
    """Read a ``cls`` from TOML written by :func:`to_toml` (or by hand).

    Raises:
        ConfigError: The text is not valid TOML, is nested too deeply, or is
            not a valid ``cls``.
    """
    try:
        data = tomllib.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except RecursionError as exc:
        raise ConfigError(f"not valid TOML: {_TOO_DEEP}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}") from exc
    return structure(data, cls)


def read_structured_output(schema: ResponseSchema, value: Any) -> Any:
    """The model's structured answer (parsed JSON) as the agent's ``response_schema`` asks.

    Args:
        schema: The agent's response schema.
        value: The answer, parsed from the JSON the model sent.

    Returns:
        An instance of ``schema.target`` (built with :data:`converter` for an
        attrs class, with ``model_validate`` for a pydantic model), or
        ``value`` itself when the schema names no class.

    Raises:
        StructuredOutputError: The class refused the answer (its validators,
            converters or types); the error keeps the answer.
    """
    target = schema.target
    if target is None:
        return value
    try:
        if attrs.has(target):
            return converter.structure(value, target)
        return target.model_validate(value)  # type: ignore[attr-defined]
    except Exception as exc:
        raise StructuredOutputError(
            _refusal(exc), raw_json=json.dumps(value), value=value, target=target
        ) from exc


def _refusal(exc: BaseException) -> str:
    """One line saying why a class refused an answer, from cattrs' nested errors too."""
    if isinstance(exc, cattrs.BaseValidationError):
        messages = cattrs.transform_error(exc, format_exception=_leaf_message)
        return "; ".join(messages) or str(exc)
    return str(exc) or type(exc).__name__


def _leaf_message(leaf: BaseException, kind: Any) -> str:
    return str(leaf) or cattrs.v.format_exception(leaf, kind)
