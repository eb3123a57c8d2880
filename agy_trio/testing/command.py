"""The model server's command line, ``agy-trio serve-model``.

``agy-trio serve-model`` and ``python -m agy_trio.testing.model_server`` both
run the one click command defined here: ``agy_trio.cli`` adds it to the
``agy-trio`` group, and :func:`main` runs it on its own. The server is imported
only when the command runs, so that listing the ``agy-trio`` commands stays
quick.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click
import trio

if TYPE_CHECKING:
    from agy_trio.testing.app import ModelServer

__all__ = ["main", "serve_model_command"]


@click.command(name="serve-model")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="TCP port; 0 picks one.")
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Append every chat request to this JSON Lines file.",
)
def serve_model_command(host: str, port: int, log_path: Path | None) -> None:
    """Serve the local OpenAI-compatible model.

    It runs until Ctrl-C and lets the real SDK run offline; faults are
    injected with POST /control/faults.
    """
    try:
        trio.run(_serve_until_signalled, host, port, log_path)
    except OSError as error:
        raise click.ClickException(f"cannot listen on {host}:{port}: {error}") from error
    click.echo("Model server stopped.")


async def _serve_until_signalled(host: str, port: int, log_path: Path | None) -> None:
    from agy_trio.testing.app import open_model_server

    # SIGINT and SIGTERM are received as messages rather than as
    # KeyboardInterrupt, which could otherwise surface anywhere (for example
    # wrapped in an exception group by a nursery) and turn a clean stop into
    # a traceback.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_model_server(host=host, port=port, log_path=log_path) as server:
            _announce(server)
            async for _ in signals:
                break


def _announce(server: ModelServer) -> None:
    click.echo(f"Model server listening on {server.url} (Ctrl-C to stop)")
    click.echo(f"Inject faults with POST {server.root_url}/control/faults")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the model server command line (``python -m agy_trio.testing.model_server``).

    Args:
        argv: The arguments, without the program name; by default ``sys.argv[1:]``.
    """
    serve_model_command.main(
        args=list(argv) if argv is not None else None,
        prog_name="python -m agy_trio.testing.model_server",
    )
