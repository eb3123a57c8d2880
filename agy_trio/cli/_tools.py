"""``agy-trio serve-model`` and ``agy-trio bench``: the local model server and the benchmarks."""

from __future__ import annotations

import importlib

import click

from agy_trio.cli._running import CommandFailed
from agy_trio.testing.command import serve_model_command

__all__ = ["bench", "serve_model_command"]


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def bench(ctx: click.Context) -> None:
    """Run the benchmark suite (same options as ``python -m benchmarks``)."""
    try:
        module = importlib.import_module("benchmarks.__main__")
    except ImportError:
        raise CommandFailed(
            "the benchmarks live in the source tree: run this from the project root"
        ) from None
    module.main(list(ctx.args))
