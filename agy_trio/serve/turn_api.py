"""The native API's turn endpoints: re-attaching to a turn's events, and answering approvals.

* ``GET /v1/turns/{turn_id}/events`` with ``Last-Event-ID: N`` (or ``?after=N``):
  the turn's events after event ``N``, then live (see
  :mod:`agy_trio.serve.turn_log`).
* ``GET /v1/approvals``: the tool calls waiting for a yes or no, each
  ``{"id", "agent", "tool", "arguments", "reason"}``.
* ``POST /v1/approvals/{id}`` with ``{"approved": bool, "reason": str}``: the
  answer (404 ``ApprovalNotFound`` for an unknown or answered id).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agy_trio.errors import ConfigError
from agy_trio.serve.stream import ChatStream

if TYPE_CHECKING:
    from agy_trio.serve.state import ServiceState

__all__ = ["TurnEndpoints"]


class TurnEndpoints:
    """The turn and approval endpoints over the app's shared state.

    Args:
        service: The app's shared state (turn logs, approvals, live streams).
    """

    def __init__(self, service: ServiceState) -> None:
        self._service = service

    def routes(self) -> list[Route]:
        """The endpoints' routes."""
        return [
            Route("/v1/turns/{turn_id}/events", self.turn_events, methods=["GET"]),
            Route("/v1/approvals", self.list_approvals, methods=["GET"]),
            Route("/v1/approvals/{approval_id}", self.answer_approval, methods=["POST"]),
        ]

    async def turn_events(self, request: Request) -> Response:
        """``GET /v1/turns/{turn_id}/events``: replay after ``Last-Event-ID``, then follow."""
        self._service._check_open()
        turn_log = self._service.turn_logs.get(request.path_params["turn_id"])
        raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
        try:
            after = int(raw.strip())
        except ValueError:
            raise ConfigError(
                f"must be an event id (an integer), got {raw[:40]!r}", field="last-event-id"
            ) from None
        if after < 0:
            raise ConfigError("must not be negative", field="last-event-id")
        await trio.lowlevel.checkpoint()
        return ChatStream(turn_log.attach(after), self._service.streams, self._service.redact)

    async def list_approvals(self, request: Request) -> Response:
        """``GET /v1/approvals``: the tool calls waiting for a yes or no."""
        self._service._check_open()
        await trio.lowlevel.checkpoint()
        return JSONResponse([approval.as_json() for approval in self._service.approvals.pending()])

    async def answer_approval(self, request: Request) -> Response:
        """``POST /v1/approvals/{id}`` with ``{"approved": bool, "reason": str}``."""
        self._service._check_open()
        body = await self._service._json_object(request, empty_ok=False)
        for name in sorted(body):
            if name not in ("approved", "reason"):
                raise ConfigError("unknown field; the body is {'approved', 'reason'}", field=name)
        if "approved" not in body:
            raise ConfigError("is required: true or false", field="approved")
        approval = self._service.approvals.answer(
            request.path_params["approval_id"], body["approved"], body.get("reason", "")
        )
        return JSONResponse(
            {"id": approval.id, "approved": approval.approved, "reason": approval.answer_reason}
        )
