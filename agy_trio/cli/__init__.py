"""The ``agy-trio`` command line: run agents, chat, serve them, Temporal workers, benchmarks.

One module per command; every command runs its Trio program through
:func:`agy_trio.cli._running.run_trio`, which gives them all the same
behaviour on Ctrl-C, SIGTERM and SIGHUP (clean shut-down, exit status 130,
143, 129) and on failures (one line ``error: ...``, ``--debug`` for the
traceback).
"""

from __future__ import annotations

import sys

import click

from agy_trio.cli._chat import chat
from agy_trio.cli._logs import configure_logging
from agy_trio.cli._run import run
from agy_trio.cli._running import exit_interrupted
from agy_trio.cli._serve import serve_agents
from agy_trio.cli._tools import bench, serve_model_command
from agy_trio.cli._worker import worker

__all__ = ["cli", "main"]


@click.group()
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.option("--debug", is_flag=True, help="Show the traceback of a failure.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, debug: bool) -> None:
    """agy-trio: run asyncio-only AI agents from Trio."""
    ctx.call_on_close(configure_logging(verbose))


cli.add_command(run)
cli.add_command(chat)
cli.add_command(serve_agents)
cli.add_command(worker)
# The local model server's own command: one definition for `agy-trio serve-model`
# and `python -m agy_trio.testing.model_server`.
cli.add_command(serve_model_command)
cli.add_command(bench)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``agy-trio`` console script.

    Args:
        argv: The arguments, without the program name; by default ``sys.argv[1:]``.
    """
    try:
        code = cli.main(args=argv, prog_name="agy-trio", standalone_mode=False)
    except (KeyboardInterrupt, click.Abort):
        # Ctrl-C before (or after) a command's Trio program, which handles its own.
        exit_interrupted()
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
