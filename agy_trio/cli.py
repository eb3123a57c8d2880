"""The ``agy-trio`` command line: run agents, chat, serve the local model, benchmark.

Every command runs its Trio program so that it always cleans up: Ctrl-C
(SIGINT), SIGTERM and SIGHUP cancel the program, which shuts its runtime down
(agents, harness processes, the backend's temporary folder with its
conversation databases) before the process exits with ``128 + signal``. A
second SIGTERM or SIGHUP during that clean-up kills the process at once.
SIGKILL cannot be caught: the harness processes still die with Python (the
kernel kills them, see :func:`agy_trio.adapters.antigravity.harness.pdeathsig_prefix`),
but the backend's temporary folder (``agy-trio-antigravity-*`` in the system's
temporary directory) is left behind.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import attrs
import click
import trio
from rich.console import Console
from rich.live import Live
from rich.table import Table

from agy_trio._open import open_runtime
from agy_trio.core.backend import Backend
from agy_trio.core.exception_groups import leaves
from agy_trio.core.runtime import Runtime
from agy_trio.core.settings import AgentConfig, RuntimeConfig
from agy_trio.errors import AgyError
from agy_trio.testing.command import serve_model_command

__all__ = ["main"]

_BACKENDS = ("auto", "scripted", "antigravity")


@attrs.define
class _Endpoint:
    """Where agents talk to: decided from options, environment and what is installed."""

    backend: str
    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    offline_server: bool = False

    def describe(self) -> str:
        if self.backend == "scripted":
            return "scripted backend (in-process, deterministic)"
        if self.offline_server:
            return f"real SDK -> local model server at {self.base_url} (offline default)"
        if self.base_url:
            return f"real SDK -> OpenAI-compatible endpoint {self.base_url}"
        return "real SDK -> Gemini API"


def _sdk_installed() -> bool:
    try:
        importlib.import_module("google.antigravity")
    except ImportError:
        return False
    return True


def _choose_endpoint(backend: str, base_url: str | None, model: str | None) -> _Endpoint:
    api_key = os.environ.get("GEMINI_API_KEY") or None
    if backend == "scripted":
        return _Endpoint("scripted")
    if backend == "auto" and not _sdk_installed():
        return _Endpoint("scripted")
    if base_url:
        return _Endpoint("antigravity", base_url=base_url, model=model or "local-model")
    if api_key:
        return _Endpoint("antigravity", model=model, api_key=api_key)
    return _Endpoint("antigravity", model=model or "local-model", offline_server=True)


@asynccontextmanager
async def _open_for(
    endpoint: _Endpoint, config: RuntimeConfig
) -> AsyncIterator[tuple[Runtime, AgentConfig]]:
    """Open a runtime (and the local model server when needed) for ``endpoint``."""
    if endpoint.backend == "scripted":
        from agy_trio.testing.scripted import ScriptedBackend

        async with open_runtime(config, backend=ScriptedBackend()) as rt:
            yield rt, AgentConfig()
        return
    from agy_trio.adapters.antigravity import AntigravityBackend
    from agy_trio.testing.model_server import open_model_server

    async with AsyncExitStack() as stack:
        if endpoint.offline_server:
            server = await stack.enter_async_context(open_model_server())
            endpoint.base_url = server.url
        backend: Backend = AntigravityBackend()
        agent_config = AgentConfig(
            model=endpoint.model, base_url=endpoint.base_url, api_key=endpoint.api_key
        )
        rt = await stack.enter_async_context(open_runtime(config, backend=backend))
        yield rt, agent_config


@click.group()
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """agy-trio: run asyncio-only AI agents from Trio."""
    if verbose:
        import logging

        logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO)


def _backend_option(fn: Any) -> Any:
    fn = click.option(
        "--backend",
        type=click.Choice(_BACKENDS),
        default="auto",
        show_default=True,
        help="auto: the real SDK when installed (offline against the local model server "
        "unless --base-url or GEMINI_API_KEY is given), else the scripted backend.",
    )(fn)
    fn = click.option("--base-url", default=None, help="OpenAI-compatible endpoint URL.")(fn)
    fn = click.option("--model", default=None, help="Model name for the endpoint.")(fn)
    return fn


@cli.command()
@_backend_option
@click.option("--agents", "n_agents", default=6, show_default=True, help="Agents at once.")
@click.option("--turns", default=2, show_default=True, help="Turns per agent.")
@click.option("--delay", default=0.0, show_default=True, help="inter_agent_delay (s).")
def run(
    backend: str, base_url: str | None, model: str | None, n_agents: int, turns: int, delay: float
) -> None:
    """Run several agents chatting concurrently, with a live progress view."""
    if n_agents < 1 or turns < 1:
        raise click.BadParameter("--agents and --turns must be >= 1")
    endpoint = _choose_endpoint(backend, base_url, model)
    console = Console()
    _run_trio(_run_agents, endpoint, n_agents, turns, delay, console)


def _leaves(error: BaseException) -> list[BaseException]:
    return leaves(error) if isinstance(error, BaseExceptionGroup) else [error]


# Signals that ask a command to stop: it cancels its work and cleans up.
_STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


async def _until_stopped(
    fn: Callable[..., Awaitable[object]], args: tuple[Any, ...], received: list[int]
) -> None:
    """Run ``fn(*args)``; a stop signal cancels it, so that everything it opened is closed."""
    with trio.open_signal_receiver(*_STOP_SIGNALS) as signals:
        work = trio.CancelScope()

        async def watch() -> None:
            async for signum in signals:
                received.append(signum)
                # Clean-up gets one chance: the same signal again ends the process.
                for stop in _STOP_SIGNALS:
                    signal.signal(stop, signal.SIG_DFL)
                work.cancel()
                return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            try:
                with work:
                    await fn(*args)
            finally:
                nursery.cancel_scope.cancel()


def _run_trio(fn: Any, *args: Any) -> None:
    """Run a Trio program for a command: errors as messages and exit codes, not tracebacks."""
    received: list[int] = []
    try:
        trio.run(_until_stopped, fn, args, received)
    except BaseException as error:
        # Nurseries wrap what their tasks raise in exception groups; a user
        # should see the agy_trio errors (or the interrupt) inside them.
        leaves = _leaves(error)
        if all(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
            click.echo("interrupted", err=True)
            sys.exit(130)
        if all(isinstance(leaf, AgyError) for leaf in leaves):
            for leaf in leaves:
                click.echo(f"error: {leaf}", err=True)
            sys.exit(1)
        raise
    if received:
        click.echo(f"stopped by {signal.Signals(received[0]).name}", err=True)
        sys.exit(128 + received[0])


@attrs.define
class _Progress:
    state: str = "starting"
    turns: int = 0
    chars: int = 0
    last: str = ""


def _table(progress: dict[str, _Progress], turns: int, started: float) -> Table:
    table = Table(title=f"agents ({time.monotonic() - started:.1f} s)")
    for column in ("agent", "state", "turns", "chars streamed", "last answer"):
        table.add_column(column)
    for name, p in progress.items():
        table.add_row(name, p.state, f"{p.turns}/{turns}", str(p.chars), p.last[-48:])
    return table


async def _run_agents(
    endpoint: _Endpoint, n_agents: int, turns: int, delay: float, console: Console
) -> None:
    config = RuntimeConfig(inter_agent_delay=delay)
    progress = {f"agent-{i + 1}": _Progress() for i in range(n_agents)}
    started = time.monotonic()
    async with _open_for(endpoint, config) as (rt, base_config):
        # Printed once the endpoint is up: the local model server's URL is known only now.
        console.print(
            f"[bold]agy-trio run[/]: {n_agents} agents x {turns} turns on {endpoint.describe()}"
        )
        with Live(_table(progress, turns, started), console=console, refresh_per_second=8) as live:

            async def one(name: str) -> None:
                p = progress[name]
                async with rt.open_agent(attrs.evolve(base_config, name=name)) as agent:
                    for turn in range(turns):
                        p.state = f"turn {turn + 1}"
                        response = await agent.chat(f"Hello from {name}, turn {turn + 1}")
                        p.last = ""
                        async for delta in response:
                            p.chars += len(delta)
                            p.last += delta
                            live.update(_table(progress, turns, started))
                        p.turns += 1
                    p.state = "done"
                live.update(_table(progress, turns, started))

            async with trio.open_nursery() as nursery:
                for name in progress:
                    nursery.start_soon(one, name)
        stats = rt.statistics()
    console.print()
    console.print(
        f"{n_agents} agents, {stats.completed} commands ok, {stats.failed} failed, "
        f"{time.monotonic() - started:.2f} s"
    )


@cli.command()
@_backend_option
@click.argument("prompt")
def chat(backend: str, base_url: str | None, model: str | None, prompt: str) -> None:
    """Send PROMPT to one agent and stream the answer."""
    endpoint = _choose_endpoint(backend, base_url, model)

    async def go() -> None:
        config = RuntimeConfig(inter_agent_delay=0)
        async with _open_for(endpoint, config) as (rt, cfg), rt.open_agent(cfg) as agent:
            response = await agent.chat(prompt)
            async for delta in response:
                click.echo(delta, nl=False)
            click.echo()

    _run_trio(go)


@cli.command("serve")
@_backend_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port; 0 picks one.")
@click.option(
    "--token",
    default=None,
    envvar="AGY_TRIO_TOKEN",
    help="Bearer token every /v1/* request must carry (or set AGY_TRIO_TOKEN); "
    "required to listen beyond loopback.",
)
def serve_agents(
    backend: str, base_url: str | None, model: str | None, host: str, port: int, token: str | None
) -> None:
    """Serve agents over HTTP: a JSON and SSE API, a web page and Prometheus metrics."""
    try:
        from agy_trio.serve import serve
    except ImportError as exc:
        raise click.ClickException(str(exc)) from None
    import functools
    import signal

    endpoint = _choose_endpoint(backend, base_url, model)

    async def go() -> None:
        config = RuntimeConfig(inter_agent_delay=0)
        # SIGINT and SIGTERM arrive as messages: the server then stops in
        # order (live streams told, agents shut down) instead of being torn down.
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with (
                _open_for(endpoint, config) as (rt, defaults),
                trio.open_nursery() as nursery,
            ):
                address = await nursery.start(
                    functools.partial(
                        serve, rt, host=host, port=port, token=token, defaults=defaults
                    )
                )
                click.echo(f"Serving on {address.url}")
                click.echo(f"Agents: {endpoint.describe()}")
                async for _ in signals:
                    break
                nursery.cancel_scope.cancel()
        click.echo("Server stopped.")

    _run_trio(go)


@cli.command()
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
    conversations go to other workers and running turns get time to finish.
    """
    try:
        from agy_trio.adapters.temporal.worker import (
            WorkerOptions,
            claim_scratch_dir,
            serve_worker,
        )
    except ImportError as exc:
        raise click.ClickException(
            f"the worker needs the temporal extra: pip install 'agy-trio[temporal]' ({exc})"
        ) from None
    import shutil
    import signal
    import tempfile

    endpoint = _choose_endpoint("antigravity", base_url, model)
    options = WorkerOptions(target=target, namespace=namespace, task_queue=task_queue)
    # The SDK's files go to a folder of this worker's own, which the next
    # worker on the machine removes if this one is killed before it can.
    scratch = claim_scratch_dir()
    tempfile.tempdir = str(scratch)

    async def go() -> None:
        config = RuntimeConfig(inter_agent_delay=0)
        stop = trio.Event()
        async with _open_for(endpoint, config) as (rt, agent_defaults), trio.open_nursery() as n:

            async def serve(task_status: trio.TaskStatus[Any]) -> None:
                await serve_worker(rt, agent_defaults, options, stop=stop, task_status=task_status)
                n.cancel_scope.cancel()  # done: stopped, or the Temporal worker ended

            service = await n.start(serve)
            click.echo(
                f"agy-trio worker {service.identity} ready: queue {task_queue!r} on {target} "
                f"({namespace}), {endpoint.describe()}",
            )
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    if stop.is_set():  # a second signal: stop now
                        n.cancel_scope.cancel()
                        break
                    click.echo(f"agy-trio worker {service.identity} leaving")
                    stop.set()

    try:
        _run_trio(go)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@cli.command("serve-model")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True)
@click.option("--log", "log_file", default=None, help="Append request bodies to this JSONL file.")
def serve_model(host: str, port: int, log_file: str | None) -> None:
    """Serve the local OpenAI-compatible model (for offline runs of the real SDK)."""
    from agy_trio.testing import model_server

    argv = ["--host", host, "--port", str(port)]
    if log_file:
        argv += ["--log", log_file]
    model_server.main(argv)


# The local model server's own command: one definition for `agy-trio serve-model`
# and `python -m agy_trio.testing.model_server`.
cli.add_command(serve_model_command)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def bench(ctx: click.Context) -> None:
    """Run the benchmark suite (same options as ``python -m benchmarks``)."""
    try:
        module = importlib.import_module("benchmarks.__main__")
    except ImportError:
        raise click.ClickException(
            "the benchmarks live in the source tree: run this from the project root"
        ) from None
    module.main(list(ctx.args))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``agy-trio`` console script."""
    cli.main(args=argv, prog_name="agy-trio")
