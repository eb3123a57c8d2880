"""Approvals: ``ask_user`` rules without a handler, answered by the person behind the server.

While a server runs, it is its runtime's :data:`~agy_trio.policy.Approver`. A
tool call held by a handler-less ``ask_user`` rule then parks here as a
:class:`PendingApproval` until a client answers it: ``POST
/v1/approvals/{id}``, the page's Approve / Deny buttons, an AG-UI run that
resumes the interrupt, or an A2A message on the ``input-required`` task. An
approval nobody answers within ``approval_timeout`` seconds is denied; so is
one whose turn ends first.

When the call belongs to a turn the server runs, its log records it:
:class:`~agy_trio.serve.turn_log.ToolStarted` (the call, announced before it
runs) and :class:`~agy_trio.serve.turn_log.ApprovalAsked`, later
:class:`~agy_trio.serve.turn_log.ApprovalAnswered`; the turn counts as parked
meanwhile, so the reattach grace never cancels it.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import trio

from agy_trio.core.events import json_safe
from agy_trio.core.policy_types import ToolRequest
from agy_trio.errors import ApprovalNotFound, ConfigError
from agy_trio.serve.turn_log import ApprovalAnswered, ApprovalAsked, new_id
from agy_trio.serve.turns import ServedTurn, TurnRunner

__all__ = ["DEFAULT_APPROVAL_TIMEOUT", "Approvals", "PendingApproval"]

log = logging.getLogger("agy_trio.serve")

DEFAULT_APPROVAL_TIMEOUT = 300.0
"""Seconds an approval waits for an answer before it is denied (``--approval-timeout``)."""


@attrs.define(eq=False)
class PendingApproval:
    """A tool call waiting for a person's yes or no.

    Attributes:
        id: The approval's id (``approval-...``), as clients name it.
        agent_id: The agent whose tool call it is.
        tool: The tool's name.
        arguments: Its arguments (JSON-safe).
        reason: Why the rule asks (its ``reason``, or which rule holds the call).
        call_id: The tool call's id in the turn's log (and AG-UI's ``toolCallId``).
        turn_id: The served turn it belongs to, if the server runs that turn.
        approved: The answer, once given (None before).
        answer_reason: The reason given with the answer (or why it was denied).
    """

    id: str
    agent_id: str
    tool: str
    arguments: Any
    reason: str
    call_id: str
    turn_id: str | None = None
    approved: bool | None = None
    answer_reason: str = ""
    answered: trio.Event = attrs.field(factory=trio.Event, repr=False)

    def as_json(self) -> dict[str, Any]:
        """``{"id", "agent", "tool", "arguments", "reason"}``, as ``GET /v1/approvals`` lists it."""
        return {
            "id": self.id,
            "agent": self.agent_id,
            "tool": self.tool,
            "arguments": self.arguments,
            "reason": self.reason,
        }


class Approvals:
    """The approvals a server holds, and the approver it installs in its runtime.

    Args:
        turns: The server's turns (to record approvals in their logs).
        timeout: Seconds an approval waits before it is denied.
    """

    def __init__(self, turns: TurnRunner, *, timeout: float = DEFAULT_APPROVAL_TIMEOUT) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigError("must be a positive number of seconds", field="approval_timeout")
        self.timeout = float(timeout)
        self._turns = turns
        self._pending: dict[str, PendingApproval] = {}
        turns.on_turn_end.append(self._turn_ended)

    def pending(self) -> list[PendingApproval]:
        """The approvals waiting now, oldest first."""
        return list(self._pending.values())

    def get(self, approval_id: str) -> PendingApproval:
        """The waiting approval ``approval_id``.

        Raises:
            ApprovalNotFound: No such approval waits (unknown, or answered already).
        """
        try:
            return self._pending[approval_id]
        except KeyError:
            raise ApprovalNotFound(
                f"no pending approval {approval_id!r} (unknown, or answered already)"
            ) from None

    def answer(self, approval_id: str, approved: bool, reason: str = "") -> PendingApproval:
        """Answer ``approval_id``: the tool runs if ``approved``, else the model is refused.

        Raises:
            ApprovalNotFound: No such approval waits (unknown, or answered already).
            ConfigError: ``approved`` is not a bool or ``reason`` not a string.
        """
        if not isinstance(approved, bool):
            raise ConfigError("must be true or false", field="approved")
        if not isinstance(reason, str):
            raise ConfigError("must be a string", field="reason")
        approval = self.get(approval_id)
        self._settle(approval, approved, reason)
        return approval

    def _settle(self, approval: PendingApproval, approved: bool, reason: str) -> None:
        # Once: the first answer wins, and the approval leaves the list at once.
        if self._pending.pop(approval.id, None) is None:
            return
        approval.approved = approved
        approval.answer_reason = reason
        approval.answered.set()

    def _turn_ended(self, turn: ServedTurn) -> None:
        for approval in self.pending():
            if approval.turn_id == turn.log.turn_id:
                self._settle(approval, False, "the turn ended before an answer")

    async def ask(self, request: ToolRequest) -> bool:
        """The runtime's approver: park the call until it is answered; True to let it run."""
        turn = self._turns.current(request.agent_id)
        if turn is not None and turn.log.finished:
            turn = None
        arguments = json_safe(dict(request.arguments))
        reason = request.reason or f"policy {request.policy or request.tool!r} asks first"
        call_id = (
            turn.announce_tool(request.tool, request.arguments)
            if turn is not None
            else new_id("call")
        )
        approval = PendingApproval(
            new_id("approval"),
            request.agent_id,
            request.tool,
            arguments,
            reason,
            call_id,
            turn.log.turn_id if turn is not None else None,
        )
        self._pending[approval.id] = approval
        if turn is not None:
            turn.log.record(
                ApprovalAsked(
                    approval.id, call_id, request.agent_id, request.tool, arguments, reason
                )
            )
            turn.log.park()
        log.info("tool %r of %s waits for approval %s", request.tool, request.agent_id, approval.id)
        try:
            with trio.move_on_after(self.timeout):
                await approval.answered.wait()
            if approval.approved is None:
                self._settle(approval, False, f"nobody answered within {self.timeout:g} s")
        finally:
            # Cancelled (the turn stopped): the call is not approved.
            self._settle(approval, False, "the turn ended before an answer")
            if turn is not None:
                turn.log.unpark()
                if not turn.log.finished:
                    turn.log.record(
                        ApprovalAnswered(
                            approval.id, bool(approval.approved), approval.answer_reason
                        )
                    )
        return bool(approval.approved)
