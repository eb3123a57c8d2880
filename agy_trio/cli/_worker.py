"""``agy-trio worker``: agents' turns served from Temporal on the real SDK."""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

import click
import trio

from agy_trio.cli._endpoint import Endpoint, choose_endpoint, open_for
from agy_trio.cli._running import CommandFailed, run_trio
from agy_trio.core.exception_groups import leaves
from agy_trio.core.settings import RuntimeConfig

__all__ = ["worker"]


@click.command()
@click.option(
    "--temporal", "target", required=True, metavar="HOST:PORT", help="The Temporal frontend."
)
@click.option("--namespace", default="default", show_default=True, help="Temporal namespace.")
@click.option(
    "--task-queue", default="agy-trio", show_default=True, help="The task queue to serve."
)
@click.option("--base-url", default=None, help="OpenAI-compatible endpoint URL.")
@click.option("--model", default=None, help="Model name for the endpoint.")
def worker(
    target: str, namespace: str, task_queue: str, base_url: str | None, model: str | None
) -> None:
    """Serve agents' turns from Temporal on the real SDK (see docs/scale-out.md).

    With no endpoint and no GEMINI_API_KEY it uses the local model server,
    offline, as `agy-trio run` does. SIGTERM or Ctrl-C leaves gracefully: held
    conversations go to other workers and running turns get time to finish;
    a second signal ends it at once.
    """
    try:
        from agy_trio.adapters.temporal.worker import WorkerOptions, claim_scratch_dir
    except ImportError as exc:
        raise CommandFailed(
            f"the worker needs the temporal extra: pip install 'agy-trio[temporal]' ({exc})"
        ) from None

    endpoint = choose_endpoint("antigravity", base_url, model)
    options = WorkerOptions(target=target, namespace=namespace, task_queue=task_queue)
    # The SDK's files go to a folder of this worker's own, which the next
    # worker on the machine removes if this one is killed before it can.
    scratch = claim_scratch_dir()
    tempfile.tempdir = str(scratch)
    leave = trio.Event()
    try:
        run_trio(_serve, endpoint, options, leave, stop=leave.set)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def _serve(endpoint: Endpoint, options: Any, leave: trio.Event) -> None:
    from agy_trio.adapters.temporal.worker import serve_worker

    config = RuntimeConfig(inter_agent_delay=0)
    async with open_for(endpoint, config) as (rt, agent_defaults):
        try:
            async with trio.open_nursery() as nursery:
                service = await nursery.start(
                    lambda task_status: serve_worker(
                        rt, agent_defaults, options, stop=leave, task_status=task_status
                    )
                )
                click.echo(
                    f"agy-trio worker {service.identity} ready: queue {options.task_queue!r} "
                    f"on {options.target} ({options.namespace}), {endpoint.describe()}",
                )
                await leave.wait()
                click.echo(f"agy-trio worker {service.identity} leaving")
        except BaseException as error:
            _raise_if_no_server(error, options.target)
            raise


def _raise_if_no_server(error: BaseException, target: str) -> None:
    found = leaves(error) if isinstance(error, BaseExceptionGroup) else [error]
    for leaf in found:
        if isinstance(leaf, RuntimeError) and str(leaf).startswith("Failed client connect"):
            raise CommandFailed(
                f"no Temporal server answers at {target}: start one "
                "(`temporal server start-dev`) or point --temporal at yours"
            ) from leaf
