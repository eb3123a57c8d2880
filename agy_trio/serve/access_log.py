"""One log line per HTTP request, written when its response has ended.

``serve(access_log=True)`` wraps the app in :class:`AccessLog`. A line reads
``CLIENT "METHOD PATH HTTP/VERSION" STATUS BYTES SECONDSs``: a chat stream's
line comes when the stream ends, with the bytes of all its events; a request
whose client left before any answer shows status ``-``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import Receive, Scope, Send

from agy_trio.serve.middleware import RequestMiddleware

__all__ = ["ACCESS_LOGGER", "AccessLog"]

ACCESS_LOGGER = "agy_trio.serve.access"
"""The logger of the access log: one INFO line per request."""

log = logging.getLogger(ACCESS_LOGGER)


class AccessLog(RequestMiddleware):
    """ASGI middleware: logs each HTTP request on :data:`ACCESS_LOGGER` once it ends.

    Args:
        app: The ASGI application to wrap.
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request through the app, counting what goes out."""
        started = time.perf_counter()
        status: int | None = None
        sent = 0

        async def counting_send(message: Any) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            client = scope.get("client") or ("-", 0)
            path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
            log.info(
                '%s:%s "%s %s HTTP/%s" %s %d %.3fs',
                client[0],
                client[1],
                scope["method"],
                path,
                scope.get("http_version", "1.1"),
                status if status is not None else "-",
                sent,
                time.perf_counter() - started,
            )
