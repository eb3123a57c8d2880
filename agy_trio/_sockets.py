"""The listening side of agy_trio's HTTP servers: a TCP socket bound before the server starts.

Also where such a server listens (:class:`ServerAddress`), as its clients
should be told.
"""

from __future__ import annotations

import socket

import attrs
import trio

__all__ = ["ServerAddress", "bound_socket"]

# A wildcard bind accepts loopback connections; a URL must name a real address.
_CONNECTABLE = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


@attrs.frozen
class ServerAddress:
    """Where a server listens: the value ``nursery.start(serve, ...)`` returns.

    Attributes:
        host: The host to connect to (a wildcard bind is reported as loopback).
        port: The TCP port, the real one when 0 was asked for.
    """

    host: str
    port: int

    @classmethod
    def connectable(cls, host: str, port: int) -> ServerAddress:
        """Where clients reach a server bound to ``host``:``port`` (a wildcard: loopback)."""
        return cls(_CONNECTABLE.get(host, host), port)

    @property
    def url(self) -> str:
        """The server's root URL, e.g. ``http://127.0.0.1:8000``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


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
