"""``agy-trio worker`` with the hosting turned around, for the benchmark's comparison.

``agy-trio worker`` runs Trio as the main loop and the Temporal worker on an
asyncio host thread. This variant runs asyncio as the main loop, with Trio as
its guest (:func:`agy_trio.adapters.guest.run_trio_guest`) and the Temporal
worker on that same loop and thread (:class:`~agy_trio.adapters.guest.GuestHost`);
everything else is the same code.

Usage: ``python -m benchmarks._temporal_worker TARGET TASK_QUEUE BASE_URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

import trio

from agy_trio import AgentConfig, RuntimeConfig, open_runtime
from agy_trio.adapters.antigravity import AntigravityBackend
from agy_trio.adapters.guest import GuestHost, run_trio_guest
from agy_trio.adapters.temporal.worker import WorkerOptions, serve_worker


async def trio_main(target: str, task_queue: str, base_url: str) -> None:
    options = WorkerOptions(target=target, task_queue=task_queue)
    defaults = AgentConfig(model="local", base_url=base_url)
    config = RuntimeConfig(inter_agent_delay=0)
    async with (
        open_runtime(config, backend=AntigravityBackend()) as rt,
        trio.open_nursery() as nursery,
    ):

        async def serve(task_status: trio.TaskStatus[object]) -> None:
            await serve_worker(rt, defaults, options, host=GuestHost(), task_status=task_status)

        service = await nursery.start(serve)
        print(f"agy-trio worker {service.identity} ready: guest mode", flush=True)  # type: ignore[attr-defined]


async def main(argv: list[str]) -> None:
    target, task_queue, base_url = argv
    task = asyncio.ensure_future(run_trio_guest(trio_main, target, task_queue, base_url))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
