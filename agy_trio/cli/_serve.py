"""``agy-trio serve``: agents over HTTP, a web page and Prometheus metrics."""

from __future__ import annotations

import errno
import functools
import logging
import sys

import attrs
import click
import trio

from agy_trio.cli._endpoint import Endpoint, backend_options, choose_endpoint, open_for
from agy_trio.cli._running import CommandFailed, run_trio
from agy_trio.core.exception_groups import leaves
from agy_trio.core.settings import RuntimeConfig
from agy_trio.errors import ConfigError

__all__ = ["serve_agents"]


@click.command("serve")
@backend_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port; 0 picks one.")
@click.option(
    "--token",
    default=None,
    envvar="AGY_TRIO_TOKEN",
    help="Bearer token every /v1/* request must carry (or set AGY_TRIO_TOKEN); "
    "required to listen beyond loopback.",
)
@click.option("--access-log", is_flag=True, help="Print one line per request on stdout.")
@click.option(
    "--config",
    "profile_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="TOML file of the served profile: its name, and the AgentConfig of new agents "
    "(tools by import path, policies...).",
)
@click.option(
    "--approval-timeout",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a tool call held by an ask_user rule waits for an answer, then is denied.",
)
@click.option(
    "--reattach-grace",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds a turn goes on after its last reader left (0: cancel it at once).",
)
def serve_agents(
    backend: str,
    base_url: str | None,
    model: str | None,
    host: str,
    port: int,
    token: str | None,
    access_log: bool,
    profile_path: str | None,
    approval_timeout: float,
    reattach_grace: float,
) -> None:
    """Serve agents over HTTP: a JSON and SSE API, a web page and Prometheus metrics.

    Ctrl-C or SIGTERM stops it in order: live streams are told, the agents
    are shut down, then the process exits with status 130 or 143.
    """
    if access_log:
        _print_access_log()
    options = _ServeOptions(
        host, port, token, access_log, profile_path, approval_timeout, reattach_grace
    )
    run_trio(_serve, choose_endpoint(backend, base_url, model), options)


@attrs.frozen
class _ServeOptions:
    host: str
    port: int
    token: str | None
    access_log: bool
    profile_path: str | None
    approval_timeout: float
    reattach_grace: float


def _print_access_log() -> None:
    """The access log's lines, as they are, on stdout (whatever ``-v`` says)."""
    from agy_trio.serve.access_log import ACCESS_LOGGER

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access = logging.getLogger(ACCESS_LOGGER)
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    click.get_current_context().call_on_close(lambda: access.removeHandler(handler))


async def _serve(endpoint: Endpoint, options: _ServeOptions) -> None:
    # Imported here: listing the commands stays quick, and a missing extra is
    # one line with the pip command (see _running).
    from agy_trio.serve import ServedProfile, load_profile, serve

    host, port = options.host, options.port

    config = RuntimeConfig(inter_agent_delay=0)
    # A stop signal cancels this (see _running): serve() then stops in order.
    async with open_for(endpoint, config) as (rt, defaults), trio.open_nursery() as nursery:
        profile = ServedProfile(config=defaults)
        if options.profile_path is not None:
            try:
                # The file's fields go over the endpoint the command line chose.
                profile = load_profile(options.profile_path, base=defaults)
            except ConfigError as error:
                where = f" ({error.field})" if error.field else ""
                raise CommandFailed(
                    f"the profile {options.profile_path}{where}: {error}"
                ) from error
        try:
            address = await nursery.start(
                functools.partial(
                    serve,
                    rt,
                    host=host,
                    port=port,
                    token=options.token,
                    profile=profile,
                    access_log=options.access_log,
                    approval_timeout=options.approval_timeout,
                    reattach_grace=options.reattach_grace,
                )
            )
        except BaseException as error:
            _raise_if_address_taken(error, host, port)
            raise
        click.echo(f"Serving on {address.url}")
        click.echo(f"Agents: {endpoint.describe()}")


def _raise_if_address_taken(error: BaseException, host: str, port: int) -> None:
    found = leaves(error) if isinstance(error, BaseExceptionGroup) else [error]
    for leaf in found:
        if isinstance(leaf, OSError) and leaf.errno == errno.EADDRINUSE:
            raise CommandFailed(
                f"port {port} on {host} is taken by another program: "
                "pick another with --port (--port 0 picks a free one)"
            ) from leaf
        if isinstance(leaf, OSError) and leaf.errno in (errno.EADDRNOTAVAIL, errno.EACCES):
            raise CommandFailed(
                f"cannot listen on {host}:{port} ({leaf.strerror}): choose another --host or --port"
            ) from leaf
