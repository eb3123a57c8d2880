"""How a comparison runs its contenders: the run's options, interleaved rounds, rows.

Every comparison runs all of its contenders in one process (or one helper
process each), interleaved over several rounds, and summarises each metric
over the rounds into one row per contender.
"""

from __future__ import annotations

import functools
import gc
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from benchmarks._common import Measure, Metric, Row, summaries


@dataclass
class Context:
    """Options of one ``python -m benchmarks`` run."""

    quick: bool
    output: Path
    log: Callable[[str], None] = print

    def pick(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full


def interleave(
    ctx: Context,
    contenders: Sequence[tuple[str, Callable[[], Mapping[str, float]]]],
    rounds: int,
    *,
    label: str = "",
) -> dict[str, dict[str, list[float]]]:
    """Run every contender once per round, in a rotating order; collect each metric.

    Rotating the order spreads slow drifts of the machine (other load, thermal
    state) evenly over the contenders instead of penalising whichever runs last.
    """
    collected: dict[str, dict[str, list[float]]] = {key: {} for key, _ in contenders}
    n = len(contenders)
    for r in range(rounds):
        order = [contenders[(r + i) % n] for i in range(n)]
        for key, fn in order:
            gc.collect()
            values = fn()
            for metric, value in values.items():
                collected[key].setdefault(metric, []).append(value)
        ctx.log(f"  {label} round {r + 1}/{rounds} done")
    return collected


class Contender(NamedTuple):
    """One way of doing a comparison's work: its row's label and kind, what measures it, a note.

    ``run`` is called with the comparison's arguments and returns one round's figures
    (metric -> value), or what the comparison makes them from.
    """

    label: str
    kind: str
    run: Callable[..., Any]
    note: str = ""


def rows_of(
    data: Mapping[str, Mapping[str, Sequence[float]]],
    contenders: Mapping[str, Contender],
    group: str = "",
    *,
    note: str = "",
    only: Iterable[str] | None = None,
) -> list[Row]:
    """One row per contender from what :func:`interleave` collected (``note``: added to each)."""
    return [
        Row(key, c.label, c.kind, summaries(data[key], only), c.note + note, group)
        for key, c in contenders.items()
    ]


def run_rounds(
    ctx: Context,
    contenders: Mapping[str, Contender],
    args: Sequence[Any],
    rounds: int,
    *,
    label: str,
) -> dict[str, dict[str, list[float]]]:
    """Interleave the contenders, each called with ``args``, over ``rounds``: what each measured."""
    runs = [(key, functools.partial(c.run, *args)) for key, c in contenders.items()]
    return interleave(ctx, runs, rounds, label=label)


def compare(
    ctx: Context,
    contenders: Mapping[str, Contender],
    args: Sequence[Any],
    rounds: int,
    *,
    label: str,
    group: str = "",
    note: str = "",
) -> list[Row]:
    """Interleave the contenders, each called with ``args``, over ``rounds``; one row each."""
    data = run_rounds(ctx, contenders, args, rounds, label=label)
    return rows_of(data, contenders, group, note=note)


class Timer:
    """Wall time (perf_counter) and CPU time of the whole process (every thread)."""

    def __enter__(self) -> Timer:
        self.wall0 = time.perf_counter()
        self.cpu0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0

    def figures(self, per: int = 1, unit: str = "µs") -> Measure:
        """Wall and CPU time in ``unit`` over ``per``, keyed as :func:`timer_metrics` names them."""
        scale, key = _SCALE[unit], unit.replace("µ", "u")
        return {f"wall_{key}": self.wall / per * scale, f"cpu_{key}": self.cpu / per * scale}


_SCALE = {"s": 1.0, "µs": 1e6}


def timer_metrics(per: str = "", unit: str = "µs", digits: int = 1) -> list[Metric]:
    """The metrics of :meth:`Timer.figures`: wall and CPU time (``per``: a call, an item...)."""
    each, key = f" per {per}" if per else "", unit.replace("µ", "u")
    return [
        Metric(f"wall_{key}", f"wall time{each}", unit, digits=digits),
        Metric(f"cpu_{key}", f"CPU time{each}", unit, digits=digits),
    ]
