"""The agy_trio error hierarchy (public re-export of :mod:`agy_trio.core.errors`)."""

from agy_trio.core.errors import (
    AgentNotFound,
    AgyError,
    BackendError,
    ChannelClosed,
    ConfigError,
    ContentTooLarge,
    EndpointUnreachable,
    MaxTokensReached,
    OperationTimeout,
    PolicyDenied,
    QuotaExceeded,
    RuntimeClosed,
    SafetyBlocked,
    ToolArgumentError,
    ToolNotFound,
    WrongThread,
)

__all__ = [
    "AgentNotFound",
    "AgyError",
    "BackendError",
    "ChannelClosed",
    "ConfigError",
    "ContentTooLarge",
    "EndpointUnreachable",
    "MaxTokensReached",
    "OperationTimeout",
    "PolicyDenied",
    "QuotaExceeded",
    "RuntimeClosed",
    "SafetyBlocked",
    "ToolArgumentError",
    "ToolNotFound",
    "WrongThread",
]
