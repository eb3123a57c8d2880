"""The quota workflow: the backoff of one API key (or endpoint), shared by every worker.

A worker that sees HTTP 429 signals it (starting it if needed); every worker
asks it, at most every half second, before a turn calls the model. It ends by
itself once there has been nothing to hold for a while.

Like every workflow module, this one is imported again inside Temporal's
sandbox: no side effects at import time.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from agy_trio.adapters.temporal.messages import QUOTA_WORKFLOW, QuotaHit, QuotaStatus

__all__ = ["QuotaWorkflow"]

_QUOTA_IDLE = 600.0  # a quota workflow with nothing to hold for this long ends


@workflow.defn(name=QUOTA_WORKFLOW)
class QuotaWorkflow:
    """The quota backoff of one API key, shared by every worker."""

    @workflow.init
    def __init__(self, status: QuotaStatus) -> None:
        self._status = status
        self._changed = False

    @workflow.run
    async def run(self, status: QuotaStatus) -> QuotaStatus:
        """Hold the backoff; end once there has been nothing to hold for a while."""
        del status
        while True:
            idle = max(self._status.resume_at - workflow.now().timestamp(), 0.0) + _QUOTA_IDLE
            try:
                await workflow.wait_condition(lambda: self._changed, timeout=idle)
            except TimeoutError:
                await workflow.wait_condition(workflow.all_handlers_finished)
                return self._status
            self._changed = False
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._status)

    @workflow.signal
    def record_hit(self, hit: QuotaHit) -> None:
        """A worker saw HTTP 429: nobody calls the model for ``retry_after`` seconds."""
        status = self._status
        resume_at = workflow.now().timestamp() + max(hit.retry_after, 0.0)
        status.resume_at = max(status.resume_at, resume_at)
        status.hits += 1
        status.last_hit_by = hit.worker
        self._changed = True

    @workflow.query
    def status(self) -> QuotaStatus:
        """The backoff now."""
        return self._status
