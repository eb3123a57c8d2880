"""Round trip with 64 concurrent callers: the per-call cost once crossings overlap."""

from __future__ import annotations

import functools

from benchmarks._common import BenchResult, Context, Target, fmt, interleave
from benchmarks._crossing import CONTENDERS
from benchmarks.round_trip import METRICS, rows_from

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
    rounds = ctx.pick(3, 7)
    per_caller = ctx.pick(8, 60)
    warmup = ctx.pick(2, 5)
    keys = list(CONTENDERS)
    contenders = [
        (key, functools.partial(CONTENDERS[key][2], CALLERS, per_caller, warmup)) for key in keys
    ]
    data = interleave(ctx, contenders, rounds, label=NAME)
    result = BenchResult(
        name=NAME,
        title=TITLE,
        description=DESCRIPTION,
        metrics=METRICS,
        rows=rows_from(data, keys),
        chart_metric="wall_us",
        params={
            "callers": CALLERS,
            "calls per caller per round": per_caller,
            "rounds": rounds,
        },
    )
    result.targets = targets(result)
    result.notes = [
        "Experiment rows (orange in the chart) are not part of agy_trio.",
    ]
    return result


def targets(result: BenchResult) -> list[Target]:
    m = functools.partial(result.median, metric="wall_us")
    agy, tas, guest = m("agy_thread"), m("trio_asyncio"), m("agy_guest")
    session, host, raw = m("agy_session"), m("aiohost"), m("raw")
    if agy is None or tas is None:
        return []
    ok = agy <= tas / 2
    detail = f"thread host {fmt(agy)} µs vs trio-asyncio {fmt(tas)} µs per call = {agy / tas:.2f}x"
    if guest is not None:
        detail += f"; guest mode {fmt(guest)} µs ({guest / tas:.2f}x)"
    if not ok and None not in (session, host, raw):
        assert session is not None and host is not None and raw is not None
        detail += (
            f". Split: raw crossing {fmt(raw)}, AioHost.run on top {fmt(host - raw)}, "
            f"scripted session {fmt(session - host)}, runtime command layer {fmt(agy - session)} "
            "µs per call: under concurrency the crossings batch up, and what remains is "
            "CPU spent on the Trio thread per command, made dearer by the GIL hand-offs "
            "with the busy host thread."
        )
        no_scope = m("proto_no_scope")
        if no_scope is not None:
            detail += (
                " Without the per-command wrapper (cancel scope, time limit, statistics) the "
                f"thread host measures {fmt(no_scope)} µs."
            )
    out = [
        Target(
            "64 concurrent callers: at most half of trio-asyncio's per-call cost (thread host)",
            ok,
            detail,
        )
    ]
    if guest is not None:
        out.append(
            Target(
                "64 concurrent callers: at most half of trio-asyncio's per-call cost (guest mode)",
                guest <= tas / 2,
                f"guest mode {fmt(guest)} µs vs trio-asyncio {fmt(tas)} µs per call "
                f"= {guest / tas:.2f}x",
            )
        )
    return out
