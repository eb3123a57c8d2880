"""What every comparison shares: summaries, the environment, results, interleaved rounds."""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------------------- summaries


@dataclass
class Summary:
    """Median and spread of one metric over the rounds (or samples) of one contender."""

    median: float
    q1: float
    q3: float
    min: float
    max: float
    n: int
    samples: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, values: Iterable[float], *, keep: bool = True) -> Summary:
        data = sorted(float(v) for v in values)
        if not data:
            raise ValueError("no samples")
        if len(data) == 1:
            q1 = q3 = data[0]
        else:
            q1, _, q3 = statistics.quantiles(data, n=4, method="inclusive")
        return cls(
            median=statistics.median(data),
            q1=q1,
            q3=q3,
            min=data[0],
            max=data[-1],
            n=len(data),
            samples=[round(v, 6) for v in data] if keep else [],
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Summary:
        return cls(
            **{k: data[k] for k in ("median", "q1", "q3", "min", "max", "n")},
            samples=list(data.get("samples", [])),
        )


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values``, by linear interpolation."""
    data = sorted(values)
    if not data:
        raise ValueError("no samples")
    k = (len(data) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


# ---------------------------------------------------------------------------- results


@dataclass
class Row:
    """One contender of a comparison.

    ``kind`` is ``"agy"`` (agy_trio itself), ``"baseline"`` (another way of
    doing the same work) or ``"prototype"`` (an experiment, not part of agy_trio).
    """

    key: str
    label: str
    kind: str
    metrics: dict[str, Summary]
    note: str = ""
    group: str = ""


@dataclass
class Target:
    """A goal the project sets itself, and whether this run met it."""

    goal: str
    met: bool | None
    detail: str


@dataclass
class Metric:
    """How a metric is named and shown."""

    key: str
    label: str
    unit: str
    lower_is_better: bool = True
    digits: int = 1


@dataclass
class BenchResult:
    """Everything one comparison produced; serialised to ``<name>.json``."""

    name: str
    title: str
    description: str
    metrics: list[Metric]
    rows: list[Row]
    chart_metric: str
    params: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    quick: bool = False
    environment: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    skipped: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self, key: str, group: str = "") -> Row | None:
        for row in self.rows:
            if row.key == key and (not group or row.group == group):
                return row
        return None

    def median(self, key: str, metric: str, group: str = "") -> float | None:
        row = self.row(key, group)
        if row is None or metric not in row.metrics:
            return None
        return row.metrics[metric].median

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BenchResult:
        rows = [
            Row(
                key=r["key"],
                label=r["label"],
                kind=r["kind"],
                metrics={k: Summary.from_json(v) for k, v in r["metrics"].items()},
                note=r.get("note", ""),
                group=r.get("group", ""),
            )
            for r in data["rows"]
        ]
        return cls(
            name=data["name"],
            title=data["title"],
            description=data["description"],
            metrics=[Metric(**m) for m in data["metrics"]],
            rows=rows,
            chart_metric=data["chart_metric"],
            params=dict(data.get("params", {})),
            targets=[Target(**t) for t in data.get("targets", [])],
            notes=list(data.get("notes", [])),
            quick=bool(data.get("quick", False)),
            environment=dict(data.get("environment", {})),
            duration_s=float(data.get("duration_s", 0.0)),
            skipped=data.get("skipped"),
            extra=dict(data.get("extra", {})),
        )


def write_json(result: BenchResult, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{result.name}.json"
    path.write_text(json.dumps(result.to_json(), indent=1) + "\n")
    return path


# ---------------------------------------------------------------------------- the run


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


class Timer:
    """Wall time (perf_counter) and CPU time of the whole process (every thread)."""

    def __enter__(self) -> Timer:
        self.wall0 = time.perf_counter()
        self.cpu0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0


# ---------------------------------------------------------------------------- the machine


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Python, library versions, OS and CPU, and the date, for the record."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    try:
        import psutil

        memory_gib = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        memory_gib = None
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "trio": _version("trio"),
        "trio_asyncio": _version("trio-asyncio") or _version("trio_asyncio"),
        "anyio": _version("anyio"),
        "agy_trio": _version("agy-trio"),
        "google_antigravity": _version("google-antigravity"),
        "os": f"{platform.system()} {platform.release()}",
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": memory_gib,
        "load_average": load,
        "executable": sys.executable,
    }


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"
