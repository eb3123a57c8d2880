"""open_runtime_on(): the nurseries that own a runtime, from its start to its last thread joined.

The service nursery holds the backend (host threads, pools); inside it, the
work nursery holds the runtime's dispatch loop, its watchdog and every command
and turn task. Leaving the block shuts the runtime down, then closes the
backend and joins its threads, and gives the caller back the exception its own
code raised rather than an exception group around it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import trio

from agy_trio.core.backend import Backend
from agy_trio.core.exception_groups import raise_unwrapped
from agy_trio.core.gc_freeze import freeze_startup_objects
from agy_trio.core.runtime import Runtime
from agy_trio.core.settings import RuntimeConfig
from agy_trio.errors import ConfigError

__all__ = ["open_runtime_on"]

log = logging.getLogger("agy_trio.runtime")


def _validate(config: RuntimeConfig | None) -> RuntimeConfig:
    if config is None:
        return RuntimeConfig()
    if not isinstance(config, RuntimeConfig):
        raise ConfigError(f"expected a RuntimeConfig, got {type(config).__name__}")
    return config


async def _serve(service: Callable[[], Awaitable[None]], scopes: list[trio.CancelScope]) -> None:
    """Run one of the runtime's own services until the runtime cancels its scope."""
    with trio.CancelScope(shield=True) as scope:
        scopes.append(scope)
        await service()


@asynccontextmanager
async def open_runtime_on(config: RuntimeConfig | None, backend: Backend) -> AsyncIterator[Runtime]:
    """Run a :class:`Runtime` over ``backend`` for the duration of the block.

    This is the backend-agnostic core of :func:`agy_trio.open_runtime`. An
    exception raised by the block comes out as itself, not wrapped in an
    exception group by the runtime's nurseries.

    Raises:
        ChannelClosed: A backend host thread crashed (raised on exit).
        OperationTimeout: A backend host thread did not exit in time (raised on exit).
    """
    config = _validate(config)
    if config.log_level is not None:
        logging.getLogger("agy_trio").setLevel(config.log_level)
    body_error: BaseException | None = None
    shutdown_error: BaseException | None = None
    try:
        async with trio.open_nursery() as service_nursery:
            await backend.start(service_nursery)
            # What exists now lives as long as the process (see gc_freeze).
            freeze_startup_objects()
            try:
                async with trio.open_nursery() as work_nursery:
                    runtime = Runtime._create(config, backend, work_nursery)
                    # Shielded: cancelling the scope around the block must not
                    # stop the runtime serving the block's own way out (an
                    # agent's `async with` shutting it down) before it closes.
                    services: list[trio.CancelScope] = []
                    for service in runtime._services():
                        work_nursery.start_soon(_serve, service, services)
                    try:
                        yield runtime
                    except BaseException as exc:
                        body_error = exc
                        raise
                    finally:
                        with trio.CancelScope(shield=True):
                            await runtime.aclose()
                        for scope in services:
                            scope.cancel()
                        work_nursery.cancel_scope.cancel()
            finally:
                with trio.CancelScope(shield=True):
                    try:
                        await backend.aclose()
                    except Exception as exc:
                        shutdown_error = exc
                        log.error("backend did not close cleanly: %r", exc)
                service_nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if body_error is not None:
            raise_unwrapped(group, body_error)
        raise
    if shutdown_error is not None:
        raise shutdown_error
