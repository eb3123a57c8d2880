"""How the native API answers a failure: a status for each agy_trio error, one JSON shape.

Every answer is ``{"error": {"type", "message", ...}}`` (see
:func:`~agy_trio.serve.wire.error_body`), with secrets masked: an agy_trio
error gets the status its kind calls for, an HTTP error of Starlette's (404,
405, ...) its own status, and anything else 500, its details kept for the log.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agy_trio import errors
from agy_trio.serve.wire import Redactor, error_body

__all__ = ["HTTP_ERROR_TYPES", "STATUS_OF_ERROR", "ErrorAnswers", "status_of"]

log = logging.getLogger("agy_trio.serve")

# The first kind that matches decides: a subclass stands before its base.
STATUS_OF_ERROR: tuple[tuple[type[errors.AgyError], int], ...] = (
    (errors.AgentNotFound, 404),
    (errors.TurnNotFound, 404),
    (errors.ApprovalNotFound, 404),
    (errors.ContentTooLarge, 413),
    (errors.ConfigError, 422),
    (errors.RuntimeClosed, 503),
    (errors.QuotaExceeded, 429),
    (errors.OperationTimeout, 504),
    (errors.PolicyDenied, 403),
    (errors.BackendError, 502),
)
"""The HTTP status of each kind of agy_trio error (the first kind that matches decides)."""

HTTP_ERROR_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "ContentTooLarge",
}
"""The error ``type`` of Starlette's own HTTP errors, by status (others: ``HTTPError``)."""


def status_of(error: errors.AgyError) -> int:
    """The HTTP status answering ``error`` (500 for a kind without one of its own)."""
    for kind, status in STATUS_OF_ERROR:
        if isinstance(error, kind):
            return status
    return 500


ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


class ErrorAnswers:
    """The app's exception handlers, which mask secrets with ``redact``.

    Args:
        redact: The server's redactor.
    """

    def __init__(self, redact: Redactor) -> None:
        self.redact = redact

    def handlers(self) -> dict[type[Exception], ExceptionHandler]:
        """Starlette's ``exception_handlers``: agy_trio's errors, HTTP errors, anything else."""
        return {
            errors.AgyError: self.on_agy_error,
            HTTPException: self.on_http_error,
            Exception: self.on_unexpected,
        }

    async def on_agy_error(self, request: Request, exc: Exception) -> Response:
        """An agy_trio error: its status (see :func:`status_of`), ``retry-after`` for quota."""
        assert isinstance(exc, errors.AgyError)
        await trio.lowlevel.checkpoint()
        headers = {}
        if isinstance(exc, errors.QuotaExceeded) and exc.retry_after is not None:
            headers["retry-after"] = str(max(1, round(exc.retry_after)))
        return JSONResponse(error_body(exc, self.redact), status_of(exc), headers)

    async def on_http_error(self, request: Request, exc: Exception) -> Response:
        """Starlette's HTTP errors (404, 405, ...), in the API's one error shape."""
        assert isinstance(exc, HTTPException)
        await trio.lowlevel.checkpoint()
        kind = HTTP_ERROR_TYPES.get(exc.status_code, "HTTPError")
        return JSONResponse(
            {"error": {"type": kind, "message": self.redact(str(exc.detail))}},
            exc.status_code,
            dict(exc.headers or {}),
        )

    async def on_unexpected(self, request: Request, exc: Exception) -> Response:
        """Any other exception: 500, ``internal server error``."""
        # The details go to the log, never to the client (they may hold secrets).
        await trio.lowlevel.checkpoint()
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(error_body(exc, self.redact), 500)
