"""W3C trace context from incoming requests: a request's ``traceparent`` parents its spans.

With OpenTelemetry installed (extra ``agy-trio[otel]``) and the runtime
instrumented (:func:`agy_trio.tracing.instrument`), the spans of the commands a
request issues become children of the caller's trace. Without OpenTelemetry
this middleware is not installed at all.
"""

from __future__ import annotations

from typing import Any

from starlette.types import Receive, Scope, Send

from agy_trio.serve.middleware import RequestMiddleware

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate
except ImportError:  # pragma: no cover - depends on the installed extras
    available = False
else:
    available = True

__all__ = ["TraceContext", "available"]


class TraceContext(RequestMiddleware):
    """ASGI middleware: make the request's trace context current while it is served."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve ``scope`` with the context extracted from its headers attached."""
        carrier: dict[str, Any] = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
        }
        token = otel_context.attach(propagate.extract(carrier))
        try:
            await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)
