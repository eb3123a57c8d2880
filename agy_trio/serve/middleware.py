"""What every ASGI middleware of the server shares: some requests are its business, the rest pass.

Each guard (:mod:`agy_trio.serve.security`), the access log and the trace
context look at the requests of one kind (plain HTTP, or HTTP and websockets)
and hand everything else (lifespan events above all) straight to the app.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["RequestMiddleware"]


class RequestMiddleware(abc.ABC):
    """An ASGI middleware that handles the requests :meth:`applies` to and passes the rest on.

    Args:
        app: The ASGI application to wrap.
    """

    scope_types: ClassVar[frozenset[str]] = frozenset({"http"})
    """The ASGI scope types handled; a subclass widens or narrows them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def applies(self, scope: Scope) -> bool:
        """Whether ``scope`` is this middleware's business (by default: its type is handled)."""
        return scope["type"] in self.scope_types

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve ``scope``: through :meth:`handle` if it applies, else straight through the app."""
        if self.applies(scope):
            await self.handle(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    @abc.abstractmethod
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a request this middleware applies to (usually through ``self.app``)."""
