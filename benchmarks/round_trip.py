"""Sequential round trip: one caller at a time crosses to asyncio and back."""

from __future__ import annotations

import functools

from benchmarks._common import BenchResult, Target, fmt
from benchmarks._crossing import CONTENDERS, METRICS
from benchmarks._rounds import Context, compare

NAME = "round_trip"
TITLE = "Round trip, one caller"
DESCRIPTION = (
    "One Trio task awaits the smallest possible piece of asyncio work, over and over: "
    "for agy_trio, `agent.is_idle()` on the scripted backend through the public API "
    "(a runtime command that runs a coroutine on the asyncio host and returns its answer); "
    "for every other contender, the same coroutine reached its own way. Wall and CPU time "
    "(all threads of the process) per call."
)
CROSS_THREAD = ("raw", "anyio_portal", "naive")


def runtime_cost(result: BenchResult) -> tuple[float, float, float] | None:
    """The runtime's own CPU per command, measured without threads (NullBackend rows).

    Returns (runtime over a bare checkpoint, of which the command value and the
    session protocol, of which the runtime proper), in µs; None if rows are missing.
    """
    m = functools.partial(result.median, metric="cpu_us")
    null, session, bare = m("null_runtime"), m("null_session"), m("bare")
    if null is None or session is None or bare is None:
        return None
    return null - bare, session - bare, null - session


def one_cpu(result: BenchResult) -> str:
    """The thread host against the raw primitive with both threads on one CPU, if measured."""
    m = functools.partial(result.median, metric="wall_us")
    agy, raw = m("agy_thread_1cpu"), m("raw_1cpu")
    if agy is None or raw is None:
        return ""
    return (
        f"With the process on one CPU, where no wake-up crosses CPUs and the rounds agree: "
        f"{fmt(agy)} vs {fmt(raw)} µs = {agy / raw:.2f}x. "
    )


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
    cost = runtime_cost(result)
    if cost is not None:
        total, protocol, runtime = cost
        text += (
            f". Measured without threads (NullBackend, low noise), the runtime's own cost is "
            f"{fmt(total)} µs of CPU per command over a bare checkpoint: {fmt(protocol)} µs "
            f"for the command value and the session protocol, {fmt(runtime)} µs for the "
            "channel, the dispatch loop, the time limit and the statistics"
        )
    return text + "."


def run(ctx: Context) -> BenchResult:
    rounds, per_caller, warmup = ctx.pick(3, 9), ctx.pick(300, 3000), ctx.pick(50, 300)
    params = {"rounds": rounds, "calls per round": per_caller, "warm-up calls": warmup}
    result = BenchResult.new(NAME, TITLE, DESCRIPTION, METRICS, "wall_us", params=params)
    result.rows = compare(ctx, CONTENDERS, (1, per_caller, warmup), rounds, label=NAME)
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
    cost = runtime_cost(result)
    if cost is not None:
        total, protocol, runtime = cost
        out.append(
            Target(
                "the runtime's own cost per command: at most 10 µs of CPU (no threads)",
                total <= 10,
                f"{fmt(total)} µs: runtime over NullBackend "
                f"{fmt(result.median('null_runtime', 'cpu_us'))} µs minus a bare checkpoint "
                f"{fmt(result.median('bare', 'cpu_us'))} µs ({fmt(protocol)} µs the command "
                f"value and session protocol, {fmt(runtime)} µs the channel, dispatch loop, "
                "time limit and statistics)",
            )
        )
    if agy is None or raw is None:
        return out
    ratio = agy / raw
    out.append(
        Target(
            "thread host within 1.2x of the raw primitive",
            ratio <= 1.2,
            f"{fmt(agy)} vs {fmt(raw)} µs = {ratio:.2f}x. "
            + one_cpu(result)
            + ("" if ratio <= 1.2 else decomposition(result)),
        )
    )
    others = {k: m(k) for k in CROSS_THREAD if k != "raw" and m(k) is not None}
    slower = [CONTENDERS[k].label for k, v in others.items() if v is not None and v <= agy]
    out.append(
        Target(
            "thread host faster than every other contender that crosses threads",
            not slower,
            ", ".join(f"{CONTENDERS[k].label} {fmt(v)} µs" for k, v in others.items())
            + ("" if not slower else f"; not faster than: {', '.join(slower)}"),
        )
    )
    if tas is not None and guest is not None:
        out.append(
            Target(
                "guest mode faster than trio-asyncio",
                guest < tas,
                f"guest mode {fmt(guest)} µs vs trio-asyncio {fmt(tas)} µs "
                f"({guest / tas:.2f}x); thread host {fmt(agy)} µs"
                + (
                    ""
                    if agy < tas
                    else ". The thread host pays two cross-thread wake-ups per call "
                    "(self-pipe write to the asyncio thread, wake-up socket write back, each "
                    "with a GIL hand-off); trio-asyncio and guest mode stay on one thread."
                ),
            )
        )
    return out
