"""Importing the google-antigravity SDK on first use, with install advice when it is missing.

Nothing in this package imports the SDK at import time: the backend imports it
when it is constructed (:func:`load_sdk`), and the modules that read its types
do so through :func:`load_sdk` when they run.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import AsyncIterator
from typing import Any

from agy_trio.adapters.antigravity.sdk_logging import route_sdk_logging
from agy_trio.errors import ConfigError

__all__ = ["INSTALL_HINT", "AntigravityNotInstalled", "last_stop_reason", "load_sdk"]

INSTALL_HINT = "pip install 'agy-trio[antigravity]'"
"""How to install the SDK this backend drives."""


class AntigravityNotInstalled(ConfigError, ImportError):
    """The google-antigravity SDK is not installed."""


@functools.cache
def _sdk_module() -> Any:
    return importlib.import_module("google.antigravity")


def _load() -> Any:
    sdk = _sdk_module()
    # Its modules are imported as they are first used: route each one's logging.
    route_sdk_logging()
    return sdk


def load_sdk() -> Any:
    """Import the SDK (``google.antigravity``) on first use.

    Raises:
        AntigravityNotInstalled: It is not installed; the message says how to install it.
    """
    try:
        return _load()
    except ImportError as exc:
        raise AntigravityNotInstalled(
            f"the google-antigravity SDK is not installed ({exc}); install it with: {INSTALL_HINT}"
        ) from exc


async def _no_chunks() -> AsyncIterator[Any]:
    return
    yield  # an async generator that yields nothing


def last_stop_reason(conversation: Any) -> Any:
    """The SDK's ``StopReason`` of ``conversation``'s last turn.

    Read through the SDK's public ``ChatResponse.stop_reason`` (a response
    built over the conversation, never iterated): the conversation itself
    keeps it only under a private name.
    """
    return load_sdk().types.ChatResponse(_no_chunks(), conversation).stop_reason
