"""open_runtime(): the runtime over a backend, choosing the default backend when none is given."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from agy_trio.core.backend import Backend
from agy_trio.core.runtime import Runtime
from agy_trio.core.settings import RuntimeConfig
from agy_trio.core.supervisor import open_runtime_on
from agy_trio.errors import ConfigError

__all__ = ["default_backend", "open_runtime"]


def default_backend() -> Backend:
    """The backend ``open_runtime`` uses when none is given: the real SDK.

    Raises:
        ConfigError: The SDK is not installed (the message names the pip extra).
    """
    try:
        from agy_trio.adapters.antigravity import AntigravityBackend
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ConfigError(
            "open_runtime() with no backend runs the real google-antigravity SDK, which is "
            "not installed: pip install 'agy-trio[antigravity]' (or pass "
            "backend=agy_trio.testing.scripted.ScriptedBackend() for the scripted double)"
        ) from exc
    return AntigravityBackend()


@asynccontextmanager
async def open_runtime(
    config: RuntimeConfig | None = None, *, backend: Backend | None = None
) -> AsyncIterator[Runtime]:
    """Open a runtime for the duration of an ``async with`` block.

    A supervising nursery owns the dispatch loop and every command task;
    leaving the block shuts everything down (see :meth:`Runtime.aclose`).

    Args:
        config: Runtime settings; ``RuntimeConfig()`` when omitted.
        backend: Where agents live. Defaults to the real SDK
            (:class:`agy_trio.adapters.antigravity.AntigravityBackend`) when
            ``agy-trio[antigravity]`` is installed; pass
            ``agy_trio.testing.scripted.ScriptedBackend()`` for the
            deterministic double.

    Yields:
        The running :class:`Runtime`.

    Raises:
        ConfigError: ``config`` is not a RuntimeConfig, or no backend was given
            and the SDK is not installed.
        ChannelClosed: A backend host thread crashed (raised on exit).
        OperationTimeout: A backend host thread did not exit in time (raised on exit).
    """
    if config is not None and not isinstance(config, RuntimeConfig):
        raise ConfigError(f"expected a RuntimeConfig, got {type(config).__name__}")
    if backend is None:
        backend = default_backend()
    async with open_runtime_on(config, backend) as runtime:
        yield runtime
