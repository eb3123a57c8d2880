"""Serving a test server's ASGI app on hypercorn's Trio worker, bound before it starts.

The model server and the MCP test server both run this way: the socket is
bound here rather than in hypercorn, so a busy port is a plain OSError before
anything starts, the real port is known when 0 was asked, and no socket is
left behind when binding fails.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from agy_trio._sockets import ServerAddress, bound_socket

__all__ = ["serve_asgi"]


async def serve_asgi(
    app: Any,
    host: str,
    port: int,
    config: Config,
    *,
    shutdown_trigger: Callable[..., Awaitable[Any]],
    acceptors: int = 1,
    task_status: trio.TaskStatus[ServerAddress] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until ``shutdown_trigger`` returns; start it with ``nursery.start``.

    Args:
        app: The ASGI 3 application (Starlette's and hypercorn's type hints
            describe the same protocol with incompatible TypedDicts).
        host: The address to listen on.
        port: The TCP port; 0 picks a free one (see the started value).
        config: hypercorn's settings; its ``backlog`` is the listening
            socket's, its ``bind`` is set here.
        shutdown_trigger: Awaited by hypercorn; when it returns, hypercorn
            stops accepting and ends its connections gracefully.
        acceptors: Accept loops on the socket (each one a duplicate of it):
            Trio's ``serve_listeners`` takes one connection per loop and
            scheduler round, which a crowd of clients connecting at once
            outpaces.
        task_status: Given by ``nursery.start``, which then returns the
            :class:`~agy_trio._sockets.ServerAddress` clients should use.

    Raises:
        OSError: The address could not be bound.
    """
    with await bound_socket(host, port) as listener:
        listener.listen(config.backlog)
        address = ServerAddress.connectable(*listener.getsockname()[:2])
        # hypercorn adopts (and trio closes) each duplicate of the descriptor;
        # the original stays ours and is closed when this block ends.
        config.bind = [f"fd://{os.dup(listener.fileno())}" for _ in range(acceptors)]
        async with trio.open_nursery() as nursery:
            await nursery.start(
                functools.partial(
                    serve, app, config, shutdown_trigger=shutdown_trigger, mode="asgi"
                )
            )
            task_status.started(address)
