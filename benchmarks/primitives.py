"""The runtime's hand-built scheduling primitives against the Trio primitives they imitate.

Two primitives on every command's path are written by hand on
``trio.lowlevel.wait_task_rescheduled`` rather than taken from Trio:

- the dispatch loop parks on a count of queued commands, woken by each
  submitter, instead of ``await MemoryReceiveChannel.receive()``;
- a command's reply is a one-shot parked task, rescheduled with the outcome,
  instead of a ``trio.Event`` plus a result slot.

Each row is a small model of one choice, run the same way: callers send an
item through a memory channel to one loop task that answers it, and wait for
the answer. Only the primitive named in the row differs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import outcome
import trio
import trio.lowlevel

from benchmarks._common import BenchResult, Measure, Target, fmt
from benchmarks._crossing import trio_measure
from benchmarks._rounds import Contender, Context, compare, timer_metrics
from benchmarks._runtime import beside

NAME = "primitives"
TITLE = "Hand-built scheduling primitives vs the Trio primitives they imitate"
DESCRIPTION = (
    "Callers send an item through a Trio memory channel to one loop task that answers it, "
    "and wait for the answer; CPU and wall time per item, for 1 caller and for 100 at "
    "once. Rows differ only in how the loop waits for the next item (a hand-kept count "
    "and a parked task, as agy_trio's dispatch loop, or `receive()`) and how a caller "
    "waits for its answer (a parked task rescheduled with the outcome, as agy_trio's "
    "Command, or a `trio.Event`)."
)
METRICS = timer_metrics("item")


class _ParkedReply:
    """A one-shot reply the way Command keeps it: the waiter parks, the answer reschedules it."""

    __slots__ = ("result", "waiter")

    def __init__(self) -> None:
        self.result: outcome.Outcome[Any] | None = None
        self.waiter: trio.lowlevel.Task | None = None

    def answer(self, value: Any) -> None:
        result = outcome.Value(value)
        if self.waiter is None:
            self.result = result
        else:
            trio.lowlevel.reschedule(self.waiter, result)

    async def wait(self) -> Any:
        if self.result is not None:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return self.result.unwrap()
        self.waiter = trio.lowlevel.current_task()
        return await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)


class _EventReply:
    """The same reply on Trio's own primitive."""

    __slots__ = ("event", "value")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.value: Any = None

    def answer(self, value: Any) -> None:
        self.value = value
        self.event.set()

    async def wait(self) -> Any:
        await self.event.wait()
        return self.value


class _Model:
    """A channel, a loop task answering each item, and callers awaiting their answers."""

    def __init__(self, *, parked_loop: bool, reply: Callable[[], Any]) -> None:
        self.send, self.receive = trio.open_memory_channel[Any](1000)
        self.parked_loop = parked_loop
        self.reply = reply
        self.queued = 0
        self.loop_task: trio.lowlevel.Task | None = None

    async def call(self) -> Any:
        reply = self.reply()
        self.send.send_nowait(reply)
        if self.parked_loop:
            self.queued += 1
            task = self.loop_task
            if task is not None:
                self.loop_task = None
                trio.lowlevel.reschedule(task)
        return await reply.wait()

    async def serve(self) -> None:
        if self.parked_loop:
            await self._serve_parked()
        else:
            await self._serve_receive()

    async def _serve_parked(self) -> None:
        receive_nowait = self.receive.receive_nowait
        task = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self.loop_task = None
            return trio.lowlevel.Abort.SUCCEEDED

        while True:
            if not self.queued:
                self.loop_task = task
                await trio.lowlevel.wait_task_rescheduled(abort)
                continue
            while self.queued:
                self.queued -= 1
                receive_nowait().answer(None)

    async def _serve_receive(self) -> None:
        receive, receive_nowait = self.receive.receive, self.receive.receive_nowait
        while True:
            (await receive()).answer(None)
            while True:
                try:
                    item = receive_nowait()
                except trio.WouldBlock:
                    break
                item.answer(None)


def _measure(
    parked_loop: bool, reply: Callable[[], Any], callers: int, per_caller: int, warmup: int
) -> Measure:
    async def main() -> Measure:
        model = _Model(parked_loop=parked_loop, reply=reply)

        async def calls() -> Measure:
            return await trio_measure(lambda _i: model.call(), callers, per_caller, warmup)

        return await beside(model.serve, calls)

    return trio.run(main)


# Each called with (callers, calls per caller, warm-up calls).
CONTENDERS: dict[str, Contender] = {
    "agy": Contender(
        "agy_trio's choice: parked loop, parked reply",
        "agy",
        functools.partial(_measure, True, _ParkedReply),
        "the dispatch loop parks on a hand-kept count; the caller parks until its answer",
    ),
    "receive": Contender(
        "loop on receive(), parked reply",
        "baseline",
        functools.partial(_measure, False, _ParkedReply),
        "the dispatch loop awaits MemoryReceiveChannel.receive()",
    ),
    "event": Contender(
        "parked loop, trio.Event reply",
        "baseline",
        functools.partial(_measure, True, _EventReply),
        "the caller waits on a trio.Event and reads a result slot",
    ),
}
GROUPS = {1: "1 caller", 100: "100 callers at once"}


def run(ctx: Context) -> BenchResult:
    rounds = ctx.pick(3, 9)
    sizes = {1: (ctx.pick(500, 5000), 200), 100: (ctx.pick(10, 100), 5)}
    params = {"rounds": rounds, "calls per caller (1 / 100 callers)": str(sizes)}
    result = BenchResult.new(NAME, TITLE, DESCRIPTION, METRICS, "cpu_us", params=params)
    for callers, (per_caller, warmup) in sizes.items():
        keyed = {f"{key}_{callers}": contender for key, contender in CONTENDERS.items()}
        args = (callers, per_caller, warmup)
        label, group = f"{NAME} {callers}", GROUPS[callers]
        result.rows += compare(ctx, keyed, args, rounds, label=label, group=group)
    result.targets = targets(result)
    return result


def targets(result: BenchResult) -> list[Target]:
    """A hand-built primitive is kept only while it costs no more than Trio's own (within 5%)."""
    m = functools.partial(result.median, metric="cpu_us")
    out: list[Target] = []
    for callers, group in GROUPS.items():
        agy = m(f"agy_{callers}")
        for key in ("receive", "event"):
            other = m(f"{key}_{callers}")
            if agy is None or other is None:
                continue
            out.append(
                Target(
                    f"{group}: agy_trio's primitives within 5% of {CONTENDERS[key].label}, "
                    "or cheaper",
                    agy <= other * 1.05,
                    f"{fmt(agy)} vs {fmt(other)} µs of CPU per item",
                )
            )
    return out
