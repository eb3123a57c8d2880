"""The Antigravity backend's start-up work, done in worker threads so no host loop stalls on it.

:func:`prepare` does, once per backend, what the SDK would otherwise do on a
host loop when the first agents start; :func:`start_host` starts one asyncio
host with a default executor whose threads already run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib

import trio

from agy_trio.adapters.aio_host import AioHost
from agy_trio.adapters.antigravity.config import config_classes
from agy_trio.adapters.antigravity.harness import HarnessRegistry, host_executor, pdeathsig_prefix
from agy_trio.adapters.antigravity.harness_spec import SdkFacts, sdk_facts
from agy_trio.adapters.antigravity.process_view import skip_empty_stderr_readers
from agy_trio.adapters.antigravity.sdk_logging import route_sdk_logging

__all__ = ["prepare", "start_host"]


def prepare(registry: HarnessRegistry) -> tuple[tuple[str, ...], SdkFacts]:
    """The one-time work that would otherwise stall the host loops (blocking).

    Probing setpriv, building the SDK config classes (~90 ms, first agent
    only), the SDK's importlib.metadata look-ups (every agent), starting the
    worker threads (the first agents) and the SDK's stderr reader thread
    (every conversation; see :func:`skip_empty_stderr_readers`).

    Returns:
        The command prefix that ties a harness's life to ours, and the facts
        of the installed SDK.
    """
    config_classes()
    importlib.import_module("google.antigravity.connections.local.local_openai_connection")
    importlib.import_module("google.antigravity.tools.tool_runner")
    route_sdk_logging()
    registry.prestart()
    skip_empty_stderr_readers()
    return pdeathsig_prefix(), sdk_facts()


async def start_host(host: AioHost, nursery: trio.Nursery) -> None:
    """Start ``host`` in ``nursery`` and give its loop a default executor already running."""
    await host.start(nursery)
    executor = await trio.to_thread.run_sync(host_executor, host.name)
    await host.run(_adopt_executor, executor)


async def _adopt_executor(executor: concurrent.futures.ThreadPoolExecutor) -> None:
    # The loop shuts it down with itself (AioHost closes its default executor).
    asyncio.get_running_loop().set_default_executor(executor)
