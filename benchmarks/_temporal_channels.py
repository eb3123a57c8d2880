"""How a running activity's progress can reach a client through Temporal: three channels.

A synthetic turn (an activity producing timestamped deltas at a steady pace)
is streamed to a client three ways, and we record how far behind the client
is and what each way leaves in the workflow's history:

* ``heartbeat``: the activity heartbeats what it has shown so far; the client
  polls the workflow's description (pending activities carry their last
  heartbeat details). What :mod:`agy_trio.adapters.temporal` uses.
* ``signal+query``: the activity signals batches to the workflow; the client
  polls a query.
* ``signal+update``: the activity signals batches; the client long-polls an
  update that answers once there is something new.

The workflow module is re-imported by Temporal's sandbox: no side effects here.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

MODES = ("heartbeat", "signal+query", "signal+update")


@workflow.defn(name="agy_trio.bench.ChannelProbe")
class ChannelProbe:
    """Runs the producing activity and keeps what it signals."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.done = False

    @workflow.run
    async def run(self, spec: list[Any]) -> None:
        await workflow.execute_activity(
            "agy_trio.bench.produce",
            spec,
            start_to_close_timeout=timedelta(seconds=120),
            heartbeat_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        self.done = True
        await workflow.wait_condition(workflow.all_handlers_finished)

    @workflow.signal
    def delta(self, text: str) -> None:
        self.pieces.append(text)

    @workflow.query
    def since(self, offset: int) -> list[str]:
        return self.pieces[offset:]

    @workflow.update
    async def more(self, offset: int) -> list[str]:
        await workflow.wait_condition(lambda: len(self.pieces) > offset or self.done)
        return self.pieces[offset:]


@activity.defn(name="agy_trio.bench.produce")
async def produce(spec: list[Any]) -> None:
    """Produce ``count`` deltas ``gap`` seconds apart through channel ``mode``."""
    mode, count, gap, batch = str(spec[0]), int(spec[1]), float(spec[2]), float(spec[3])
    info = activity.info()
    handle = activity.client().get_workflow_handle(info.workflow_id)
    shown = ""
    pending: list[str] = []
    last = time.monotonic()
    for index in range(count):
        await asyncio.sleep(gap)
        piece = f"{index}|{time.time():.6f};"
        if mode == "heartbeat":
            shown += piece
            activity.heartbeat(shown)
            continue
        pending.append(piece)
        if time.monotonic() - last >= batch:
            await handle.signal("delta", "".join(pending))
            pending.clear()
            last = time.monotonic()
    if pending:
        await handle.signal("delta", "".join(pending))


def _lags(text: str, seen: int, now: float) -> tuple[list[float], int]:
    items = [item for item in text.split(";") if item]
    lags = [now - float(item.split("|")[1]) for item in items[seen:]]
    return lags, max(seen, len(items))


async def probe(
    client: Any, task_queue: str, mode: str, count: int, gap: float, poll: float, batch: float
) -> dict[str, float]:
    """Stream one synthetic turn through ``mode``; lag percentiles and history cost."""
    handle = await client.start_workflow(
        ChannelProbe.run,
        [mode, count, gap, batch],
        id=f"agy-trio-bench-channel-{uuid.uuid4().hex}",
        task_queue=task_queue,
    )
    lags: list[float] = []
    seen = 0
    offset = 0
    while True:
        if mode == "heartbeat":
            description = await handle.describe()
            for pending in description.raw_description.pending_activities:
                if pending.heartbeat_details.payloads:
                    [text] = await client.data_converter.decode(pending.heartbeat_details.payloads)
                    new, seen = _lags(str(text), seen, time.time())
                    lags += new
            if description.status is not None and description.status.name != "RUNNING":
                break
            await asyncio.sleep(poll)
        else:
            if mode == "signal+query":
                pieces = await handle.query(ChannelProbe.since, offset)
            else:
                pieces = await handle.execute_update(ChannelProbe.more, offset)
            now = time.time()
            for piece in pieces:
                new, _ = _lags(piece, 0, now)
                lags += new
            offset += len(pieces)
            if offset and seen_all(lags, count):
                break
            if mode == "signal+query":
                await asyncio.sleep(poll)
    await handle.result()
    history = await handle.fetch_history()
    size = sum(event.ByteSize() for event in history.events)
    lags.sort()
    return {
        "lag_p50_ms": statistics.median(lags) * 1e3 if lags else float("nan"),
        "lag_p95_ms": lags[int(0.95 * (len(lags) - 1))] * 1e3 if lags else float("nan"),
        "received": float(len(lags)),
        "history_events": float(len(history.events)),
        "history_kib": size / 1024,
    }


def seen_all(lags: list[float], count: int) -> bool:
    return len(lags) >= count
