"""The runtime's settings: :class:`RuntimeConfig`, and the chat timeout's default.

A frozen attrs class that validates on construction and raises
:class:`~agy_trio.errors.ConfigError` naming the offending field; the chat
timeout it starts from is read from the environment
(:func:`default_chat_timeout`). Also importable from
:mod:`agy_trio.core.settings`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import attrs

from agy_trio.core.validation import (
    as_seconds,
    attrs_validator,
    is_number,
    non_negative_number,
    positive_int,
    positive_number,
)
from agy_trio.errors import ConfigError

__all__ = [
    "CHAT_TIMEOUT_ENV",
    "CHAT_TIMEOUT_ENV_ALIAS",
    "DEFAULT_CHAT_TIMEOUT",
    "OPERATION_TIMEOUT_MARGIN",
    "REMOVED_RUNTIME_FIELDS",
    "RuntimeConfig",
    "default_chat_timeout",
]

logger = logging.getLogger("agy_trio.config")

CHAT_TIMEOUT_ENV = "AGY_CHAT_TIMEOUT_SECS"
"""Environment variable that sets the default chat timeout, in seconds."""

CHAT_TIMEOUT_ENV_ALIAS = "AGI_CHAT_TIMEOUT_SECS"
"""The variable's earlier name, still read when :data:`CHAT_TIMEOUT_ENV` is unset."""

DEFAULT_CHAT_TIMEOUT = 120.0
"""Chat timeout, in seconds, when neither the config nor the environment sets one."""

OPERATION_TIMEOUT_MARGIN = 120.0
"""How much longer than the chat timeout the default operation timeout is, in seconds."""

REMOVED_RUNTIME_FIELDS: Mapping[str, str] = {
    "stream_batch_max": (
        "it belongs to the backend now: ScriptedBackend(stream_batch_max=...) "
        "or AntigravityBackend(stream_batch_max=...)"
    ),
    "stream_buffer_high_water": (
        "it belongs to the backend now, as stream_high_water: "
        "ScriptedBackend(stream_high_water=...) or AntigravityBackend(stream_high_water=...)"
    ),
    "host_threads": "it belongs to the backend now: AntigravityBackend(host_threads=...)",
    "command_dispatch": "the runtime has a single command path; delete this setting",
}
"""Settings :class:`RuntimeConfig` no longer has, and where each went.

Reading a config file that still holds one raises a ConfigError with this text.
"""


def default_chat_timeout() -> float:
    """The chat timeout to use when none is configured, read from the environment now.

    Returns:
        The value of ``AGY_CHAT_TIMEOUT_SECS`` (or, when that is unset, of its
        earlier name ``AGI_CHAT_TIMEOUT_SECS``) in seconds when it is a positive
        finite number; otherwise (unset, or invalid, which logs a warning on the
        ``agy_trio.config`` logger) :data:`DEFAULT_CHAT_TIMEOUT`.
    """
    name = CHAT_TIMEOUT_ENV if CHAT_TIMEOUT_ENV in os.environ else CHAT_TIMEOUT_ENV_ALIAS
    raw = os.environ.get(name)
    if raw is None:
        return DEFAULT_CHAT_TIMEOUT
    try:
        return positive_number(float(raw.strip()), name)
    except ValueError:  # float() failed, or ConfigError (a ValueError) from the check
        logger.warning(
            "Invalid %s=%r (expected a positive number of seconds), using the default %g s",
            name,
            raw,
            DEFAULT_CHAT_TIMEOUT,
        )
        return DEFAULT_CHAT_TIMEOUT


_positive = attrs_validator(positive_number)
_non_negative = attrs_validator(non_negative_number)
_count = attrs_validator(positive_int)


def _derived_operation_timeout(config: RuntimeConfig) -> float:
    # An invalid chat_timeout is passed through so its own validator reports it.
    chat = config.chat_timeout
    return chat + OPERATION_TIMEOUT_MARGIN if is_number(chat) else chat


def _check_operation_timeout(
    instance: RuntimeConfig, attribute: attrs.Attribute[Any], value: float
) -> None:
    positive_number(value, attribute.name)
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


@attrs.frozen
class RuntimeConfig:
    """How a runtime behaves: capacities, timeouts and pacing.

    All durations are float seconds. Knobs of a particular backend (host
    threads, stream buffering) are arguments of that backend, for example
    ``AntigravityBackend(host_threads=...)``; :data:`REMOVED_RUNTIME_FIELDS`
    lists the settings that moved.

    Attributes:
        channel_capacity: Commands that may wait in the command channel.
        chat_timeout: Time limit of one chat turn. When not given, read from
            ``AGY_CHAT_TIMEOUT_SECS`` at construction (default 120).
        operation_timeout: Safety-net limit of every command; defaults to
            ``chat_timeout + 120`` and may not be shorter than ``chat_timeout``.
        shutdown_timeout: How long shutdown waits for in-flight work; must be
            greater than 0 (with no time at all, every shutdown would time out).
        inter_agent_delay: Spacing between successive chat starts (0 disables).
        handler_timeout: Time limit of each policy handler and hook.
        log_level: A :mod:`logging` level name for the runtime's loggers, or
            None to leave logging alone.
    """

    channel_capacity: int = attrs.field(default=64, validator=_count)
    chat_timeout: float = attrs.field(
        factory=default_chat_timeout, converter=as_seconds, validator=_positive
    )
    operation_timeout: float = attrs.field(
        default=attrs.Factory(_derived_operation_timeout, takes_self=True),
        converter=as_seconds,
        validator=_check_operation_timeout,
    )
    shutdown_timeout: float = attrs.field(default=10.0, converter=as_seconds, validator=_positive)
    inter_agent_delay: float = attrs.field(
        default=0.5, converter=as_seconds, validator=_non_negative
    )
    handler_timeout: float = attrs.field(default=30.0, converter=as_seconds, validator=_positive)
    log_level: str | None = attrs.field(default=None, converter=_upper, validator=_check_log_level)

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
