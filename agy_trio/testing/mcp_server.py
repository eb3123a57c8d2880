"""A small MCP server for tests, written with the ``mcp`` package's :class:`MCPServer`.

It serves three tools over stdio (``python -m agy_trio.testing.mcp_server``,
the form a harness launches) or over streamable HTTP (:func:`open_mcp_http_server`,
on hypercorn's Trio worker, or ``--http PORT`` from the command line):

* ``lookup(key)``: the value stored under ``key`` in a fixed table
  (:data:`TABLE`), so a test can tell an answer that came from the tool;
* ``add(a, b)``: the sum of two integers;
* ``slow_echo(text, seconds)``: ``text``, after ``seconds``.

Every call is appended as one JSON line (``{"tool", "arguments", "pid"}``) to
the file named by ``--calls`` (or the ``calls_path`` argument), so a test can
check that a call it denied never reached the server. ``--pid-file`` writes
the server's process id at start-up, so a test can check that the process is
gone afterwards; ``--fail-start`` makes the stdio server exit at once and
``--hang-start`` makes it never answer, to test start-up failures;
``--linger SECONDS`` keeps the process alive that long after its client has
gone, like a server that does not notice its closed stdin;
``--helper-pid-file`` starts a helper process beside the server (as ``npx``
or ``uv`` do) and writes its process id.

Needs the ``mcp`` package (the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import trio

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

__all__ = ["TABLE", "McpHttpEndpoint", "build_server", "main", "open_mcp_http_server"]

TABLE = {"alpha": "first-letter-7731", "omega": "last-letter-0042", "pi": "3.14159-circle"}
"""What ``lookup`` answers: values no model would guess."""


def build_server(name: str = "agytest", calls_path: Path | None = None) -> MCPServer:
    """The MCP server with its three tools.

    Args:
        name: The server's name, as it introduces itself.
        calls_path: Where each call is recorded as a JSON line; None records nothing.
    """
    from mcp.server.mcpserver import MCPServer

    server: MCPServer = MCPServer(name)

    def record(tool: str, arguments: dict[str, object]) -> None:
        if calls_path is not None:
            line = json.dumps({"tool": tool, "arguments": arguments, "pid": os.getpid()})
            with calls_path.open("a", encoding="utf-8") as file:
                file.write(line + "\n")

    @server.tool()
    def lookup(key: str) -> str:
        """Look up the value stored under a key (alpha, omega or pi)."""
        record("lookup", {"key": key})
        return TABLE.get(key, f"no value for {key!r}")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        record("add", {"a": a, "b": b})
        return a + b

    @server.tool()
    async def slow_echo(text: str, seconds: float) -> str:
        """Return the text after waiting the given number of seconds."""
        record("slow_echo", {"text": text, "seconds": seconds})
        import anyio

        await anyio.sleep(seconds)
        return text

    return server


@attrs.frozen
class McpHttpEndpoint:
    """A running streamable-HTTP MCP server (see :func:`open_mcp_http_server`).

    Attributes:
        url: The MCP endpoint, ``http://127.0.0.1:PORT/mcp``.
        port: The TCP port it listens on.
    """

    url: str
    port: int


@asynccontextmanager
async def open_mcp_http_server(
    name: str = "agytest", calls_path: Path | None = None
) -> AsyncIterator[McpHttpEndpoint]:
    """Serve :func:`build_server` over streamable HTTP on 127.0.0.1, in this Trio run.

    Runs on hypercorn's Trio worker (the ``mcp`` package is written for anyio);
    the server stops when the block exits.

    Args:
        name: The server's name.
        calls_path: As :func:`build_server`.

    Yields:
        Where it listens.
    """
    from hypercorn.config import Config

    from agy_trio.testing.hosting import serve_asgi

    app = build_server(name, calls_path).streamable_http_app()
    config = Config.from_mapping(graceful_timeout=1.0)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(
            functools.partial(
                serve_asgi, app, "127.0.0.1", 0, config, shutdown_trigger=trio.sleep_forever
            )
        )
        try:
            yield McpHttpEndpoint(url=f"{address.url}/mcp", port=address.port)
        finally:
            # Streams still open (the harness's GET stream) would hold a
            # graceful stop; the server is a test fixture, so cut them.
            nursery.cancel_scope.cancel()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the server from the command line: stdio by default, ``--http PORT`` for HTTP."""
    parser = argparse.ArgumentParser(prog="python -m agy_trio.testing.mcp_server")
    parser.add_argument("--name", default="agytest")
    parser.add_argument("--calls", type=Path, default=None)
    parser.add_argument("--pid-file", type=Path, default=None)
    parser.add_argument("--http", type=int, default=None, metavar="PORT")
    parser.add_argument("--fail-start", action="store_true")
    parser.add_argument("--hang-start", action="store_true")
    parser.add_argument("--linger", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--helper-pid-file", type=Path, default=None)
    options = parser.parse_args(argv)
    if options.pid_file is not None:
        options.pid_file.write_text(str(os.getpid()), encoding="utf-8")
    if options.fail_start:
        print("agytest MCP server: failing at start-up on purpose", file=sys.stderr)
        raise SystemExit(3)
    if options.hang_start:
        while True:  # never reads stdin: the client's initialize is never answered
            time.sleep(3600)
    if options.helper_pid_file is not None:
        # A helper process of the server's own (as npx or uv start one), which
        # knows nothing of MCP and would live on if nobody ended it.
        helper = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(3600)"], stdin=subprocess.DEVNULL
        )
        options.helper_pid_file.write_text(str(helper.pid), encoding="utf-8")
    server = build_server(options.name, options.calls)
    if options.http is not None:
        import anyio

        anyio.run(lambda: server.run_streamable_http_async(port=options.http), backend="trio")
    else:
        server.run("stdio")
    # A server that stays on after its client has gone (stdin closed), as
    # some do: only something outside it can end it in time.
    time.sleep(options.linger)


if __name__ == "__main__":
    main()
