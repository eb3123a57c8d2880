"""The listening side of agy_trio's HTTP servers: a TCP socket bound before the server starts."""

from __future__ import annotations

import socket

import trio

__all__ = ["bound_socket"]


async def bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port``, not yet listening; a checkpoint.

    Binding before the server starts makes a busy port a plain OSError, tells
    the real port when 0 was asked, and leaves no socket behind on failure.

    Args:
        host: The address to bind.
        port: The TCP port; 0 picks a free one.

    Raises:
        OSError: The address could not be resolved or bound.
    """
    family, kind, proto, _, address = (
        await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    )[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except BaseException:
        listener.close()
        raise
    return listener
