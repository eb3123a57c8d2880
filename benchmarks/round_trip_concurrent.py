"""Round trip with 64 concurrent callers: the per-call cost once crossings overlap."""

from __future__ import annotations

import functools

from benchmarks._common import BenchResult, Target, fmt
from benchmarks._crossing import CONTENDERS, METRICS
from benchmarks._rounds import Context, compare

NAME = "round_trip_concurrent"
TITLE = "Round trip, 64 concurrent callers"
DESCRIPTION = (
    "64 Trio tasks (for agy_trio: one agent each) call at the same time, each many times "
    "in a row; the cost per call is the total time divided by the number of calls. "
    "Contenders that go through `trio.to_thread` are capped by Trio's default limit of 40 "
    "worker threads, which is part of what that approach costs."
)
CALLERS = 64


def run(ctx: Context) -> BenchResult:
    rounds, per_caller, warmup = ctx.pick(3, 7), ctx.pick(8, 60), ctx.pick(2, 5)
    params = {"callers": CALLERS, "calls per caller per round": per_caller, "rounds": rounds}
    result = BenchResult.new(NAME, TITLE, DESCRIPTION, METRICS, "wall_us", params=params)
    result.rows = compare(ctx, CONTENDERS, (CALLERS, per_caller, warmup), rounds, label=NAME)
    result.targets = targets(result)
    result.notes = ["Experiment rows (orange in the chart) are not part of agy_trio."]
    return result


def targets(result: BenchResult) -> list[Target]:
    m = functools.partial(result.median, metric="wall_us")
    agy, tas, guest = m("agy_thread"), m("trio_asyncio"), m("agy_guest")
    session, host, raw = m("agy_session"), m("aiohost"), m("raw")
    out: list[Target] = []
    if agy is not None and raw is not None:
        ratio = agy / raw
        detail = f"thread host {fmt(agy)} µs vs raw primitive {fmt(raw)} µs = {ratio:.2f}x"
        agy1, raw1 = m("agy_thread_1cpu"), m("raw_1cpu")
        if agy1 is not None and raw1 is not None:
            detail += f"; with the process on one CPU {fmt(agy1)} vs {fmt(raw1)} µs"
        if ratio > 1.1 and None not in (session, host):
            assert session is not None and host is not None
            detail += (
                f". Split: AioHost.run alone {fmt(host)}, scripted session {fmt(session)} µs "
                "per call; the rest is the runtime's CPU per command on the Trio thread "
                "(see the NullBackend rows), made dearer by the GIL hand-offs with the busy "
                "host thread."
            )
        out.append(
            Target(
                "64 concurrent callers: thread host within 1.1x of the raw primitive",
                ratio <= 1.1,
                detail,
            )
        )
    if agy is None or tas is None:
        return out
    out.append(
        Target(
            "64 concurrent callers: at most half of trio-asyncio's per-call cost (thread host)",
            agy <= tas / 2,
            f"thread host {fmt(agy)} µs vs trio-asyncio {fmt(tas)} µs per call = {agy / tas:.2f}x",
        )
    )
    if guest is not None:
        out.append(
            Target(
                "64 concurrent callers: at most half of trio-asyncio's per-call cost (guest mode)",
                guest <= tas / 2,
                f"guest mode {fmt(guest)} µs vs trio-asyncio {fmt(tas)} µs per call "
                f"= {guest / tas:.2f}x",
            )
        )
        out.append(
            Target(
                "64 concurrent callers: guest mode faster than trio-asyncio",
                guest < tas,
                f"guest mode {fmt(guest)} µs vs trio-asyncio {fmt(tas)} µs per call",
            )
        )
    return out
