"""Sequential round trip: one caller at a time crosses to asyncio and back."""

from __future__ import annotations

import functools

from benchmarks._common import BenchResult, Context, Metric, Row, Summary, Target, fmt, interleave
from benchmarks._crossing import CONTENDERS

NAME = "round_trip"
TITLE = "Round trip, one caller"
DESCRIPTION = (
    "One Trio task awaits the smallest possible piece of asyncio work, over and over: "
    "for agy_trio, `agent.is_idle()` on the scripted backend through the public API "
    "(a runtime command that runs a coroutine on the asyncio host and returns its answer); "
    "for every other contender, the same coroutine reached its own way. Wall and CPU time "
    "(all threads of the process) per call."
)
METRICS = [
    Metric("wall_us", "wall time per call", "µs"),
    Metric("cpu_us", "CPU time per call", "µs"),
]
CROSS_THREAD = ("raw", "anyio_portal", "naive")


def rows_from(
    data: dict[str, dict[str, list[float]]], keys: list[str], group: str = ""
) -> list[Row]:
    rows = []
    for key in keys:
        label, kind, _, note = CONTENDERS[key]
        metrics = {m: Summary.of(v) for m, v in data[key].items()}
        rows.append(Row(key, label, kind, metrics, note, group))
    return rows


def decomposition(result: BenchResult) -> str:
    """Where the thread host's time goes, from the experiment rows."""
    m = functools.partial(result.median, metric="wall_us")
    full, session, host, raw = m("agy_thread"), m("agy_session"), m("aiohost"), m("raw")
    if None in (full, session, host, raw):
        return ""
    assert full is not None and session is not None and host is not None and raw is not None
    text = (
        f"Of {fmt(full)} µs: raw crossing {fmt(raw)}, AioHost.run's own work "
        f"{fmt(host - raw)}, scripted session {fmt(session - host)}, runtime command layer "
        f"{fmt(full - session)}"
    )
    text += (
        ". These differences between thread-crossing rows are only indicative: each row's "
        "rounds spread by tens of µs on this machine"
    )
    null, null_direct, null_no_scope = m("null_runtime"), m("null_direct"), m("null_no_scope")
    if None not in (null, null_direct, null_no_scope):
        assert null is not None and null_direct is not None and null_no_scope is not None
        text += (
            f". Measured without threads (null backend, low noise), the runtime's command layer "
            f"costs {fmt(null - null_direct)} µs per command, of which the per-command wrapper "
            f"(cancel scope, time limit, statistics) {fmt(null - null_no_scope)} µs"
        )
    return text + "."


def run(ctx: Context) -> BenchResult:
    rounds = ctx.pick(3, 9)
    per_caller = ctx.pick(300, 3000)
    warmup = ctx.pick(50, 300)
    keys = list(CONTENDERS)
    contenders = [
        (key, functools.partial(CONTENDERS[key][2], 1, per_caller, warmup)) for key in keys
    ]
    data = interleave(ctx, contenders, rounds, label=NAME)
    result = BenchResult(
        name=NAME,
        title=TITLE,
        description=DESCRIPTION,
        metrics=METRICS,
        rows=rows_from(data, keys),
        chart_metric="wall_us",
        params={"rounds": rounds, "calls per round": per_caller, "warm-up calls": warmup},
    )
    result.targets = targets(result)
    result.notes = [
        "Experiment rows (orange in the chart) are not part of agy_trio: they split the "
        "thread host's cost into its layers, or try a variant of the host.",
        decomposition(result),
    ]
    return result


def targets(result: BenchResult) -> list[Target]:
    m = functools.partial(result.median, metric="wall_us")
    agy, raw, guest, tas = m("agy_thread"), m("raw"), m("agy_guest"), m("trio_asyncio")
    out: list[Target] = []
    if agy is None or raw is None:
        return out
    ratio = agy / raw
    cause = decomposition(result)
    out.append(
        Target(
            "thread host within 1.2x of the raw primitive",
            ratio <= 1.2,
            f"{fmt(agy)} vs {fmt(raw)} µs = {ratio:.2f}x. " + ("" if ratio <= 1.2 else cause),
        )
    )
    others = {k: m(k) for k in CROSS_THREAD if k != "raw" and m(k) is not None}
    slower = [CONTENDERS[k][0] for k, v in others.items() if v is not None and v <= agy]
    out.append(
        Target(
            "thread host faster than every other contender that crosses threads",
            not slower,
            ", ".join(f"{CONTENDERS[k][0]} {fmt(v)} µs" for k, v in others.items())
            + ("" if not slower else f"; not faster than: {', '.join(slower)}"),
        )
    )
    if tas is not None:
        best = min(v for v in (agy, guest) if v is not None)
        out.append(
            Target(
                "stretch: faster than trio-asyncio (the faster of the two hosts)",
                best < tas,
                f"trio-asyncio {fmt(tas)} µs; thread host {fmt(agy)} µs"
                + (f", guest mode {fmt(guest)} µs" if guest is not None else "")
                + (
                    ""
                    if agy < tas
                    else ". The thread host pays two cross-thread wake-ups per call "
                    "(self-pipe write to the asyncio thread, wake-up socket write back, each "
                    "with a GIL hand-off); trio-asyncio runs asyncio inside Trio on one thread."
                ),
            )
        )
    return out
