"""open_runtime(): the runtime over a backend, choosing the default backend when none is given."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from agy_trio.core.backend import Backend
from agy_trio.core.config import RuntimeConfig
from agy_trio.core.errors import ConfigError
from agy_trio.core.runtime import Runtime, run_runtime

__all__ = ["open_runtime"]


def default_backend(config: RuntimeConfig) -> Backend:
    """The backend ``open_runtime`` uses when none is given: the scripted double."""
    from agy_trio.adapters.scripted import ScriptedBackend

    return ScriptedBackend(
        stream_high_water=config.stream_buffer_high_water,
        stream_batch_max=config.stream_batch_max,
        shutdown_timeout=config.shutdown_timeout,
    )


@asynccontextmanager
async def open_runtime(
    config: RuntimeConfig | None = None, *, backend: Backend | None = None
) -> AsyncIterator[Runtime]:
    """Open a runtime for the duration of an ``async with`` block.

    A supervising nursery owns the dispatch loop and every command task;
    leaving the block shuts everything down (see :meth:`Runtime.shutdown`).

    Args:
        config: Runtime settings; ``RuntimeConfig()`` when omitted.
        backend: Where agents live. Defaults to the scripted backend
            (:class:`agy_trio.adapters.scripted.ScriptedBackend`).

    Yields:
        The running :class:`Runtime`.

    Raises:
        ConfigError: ``config`` is not a RuntimeConfig.
        ChannelClosed: A backend host thread crashed (raised on exit).
        OperationTimeout: A backend host thread did not exit in time (raised on exit).

    Example:
        >>> async with agy_trio.open_runtime() as rt:  # doctest: +SKIP
        ...     agent = await rt.create_agent(agy_trio.AgentConfig(name="helper"))
        ...     print(await (await agent.chat("hello")).text())
    """
    if config is None:
        config = RuntimeConfig()
    elif not isinstance(config, RuntimeConfig):
        raise ConfigError(f"expected a RuntimeConfig, got {type(config).__name__}")
    if backend is None:
        backend = default_backend(config)
    async with run_runtime(config, backend) as runtime:
        yield runtime
