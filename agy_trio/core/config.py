"""Configuration, under its historical import path: the classes and their serialisation.

The classes live in :mod:`agy_trio.core.settings` and reading and writing them
in :mod:`agy_trio.core.serialization`; this module gathers both, so
``from agy_trio.core.config import AgentConfig, to_json`` keeps working.
"""

from agy_trio.core.serialization import (
    converter,
    from_json,
    from_toml,
    structure,
    to_json,
    to_toml,
    unstructure,
)
from agy_trio.core.settings import (
    CHAT_TIMEOUT_ENV,
    DEFAULT_CHAT_TIMEOUT,
    OPERATION_TIMEOUT_MARGIN,
    REMOVED_RUNTIME_FIELDS,
    SECRET,
    AgentConfig,
    RuntimeConfig,
    default_chat_timeout,
)

__all__ = [
    "CHAT_TIMEOUT_ENV",
    "DEFAULT_CHAT_TIMEOUT",
    "OPERATION_TIMEOUT_MARGIN",
    "REMOVED_RUNTIME_FIELDS",
    "SECRET",
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
