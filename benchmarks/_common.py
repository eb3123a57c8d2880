"""What every comparison's result holds: summaries, metrics, rows, targets, the machine."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

# One run of one contender: metric -> value.
Measure = dict[str, float]

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


def percentile_metrics(
    name: str, label: str, unit: str, points: Sequence[int] = (50, 95), digits: int = 1
) -> list[Metric]:
    """The metrics that :func:`percentiles` fills, one per point: ``label`` has a ``{p}``."""
    return [Metric(_key(name, p, unit), label.format(p=p), unit, digits=digits) for p in points]


def percentiles(
    name: str, values: Sequence[float], unit: str, points: Sequence[int] = (50, 95)
) -> Measure:
    """The percentiles of ``values`` (in seconds) at ``points``, in ``unit``.

    Keyed ``{name}_p{point}_{unit}`` (``us`` for ``µs``; no ``{name}_`` for ``""``), as
    :func:`percentile_metrics` names them.
    """
    scale = _UNIT_PER_SECOND[unit]
    return {_key(name, p, unit): percentile(values, p) * scale for p in points}


def _key(name: str, point: int, unit: str) -> str:
    return "_".join(part for part in (name, f"p{point}", unit.replace("µ", "u")) if part)


_UNIT_PER_SECOND = {"s": 1.0, "ms": 1e3, "us": 1e6, "µs": 1e6}


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

    @classmethod
    def new(
        cls,
        name: str,
        title: str,
        description: str,
        metrics: Sequence[Metric],
        chart_metric: str,
        **fields: Any,
    ) -> BenchResult:
        """A comparison's result, its rows still to come (``fields``: any other field)."""
        fields.setdefault("rows", [])
        return cls(name, title, description, list(metrics), chart_metric=chart_metric, **fields)

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


def summaries(
    values: Mapping[str, Sequence[float]], only: Iterable[str] | None = None
) -> dict[str, Summary]:
    """Each metric's values over the rounds, summarised (``only``: just these metrics)."""
    keys = values if only is None else only
    return {metric: Summary.of(values[metric]) for metric in keys}


def write_json(result: BenchResult, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{result.name}.json"
    path.write_text(json.dumps(result.to_json(), indent=1) + "\n")
    return path


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
