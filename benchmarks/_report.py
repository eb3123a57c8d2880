"""Turning result files into RESULTS.md and charts."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._common import BenchResult, Row, fmt

DASH = "\u2013"
KIND_LABEL = {"agy": "agy_trio", "baseline": "baseline", "prototype": "experiment"}
KIND_COLOR = {"agy": "#1f77b4", "baseline": "#8c8c8c", "prototype": "#ff7f0e"}


def load_results(directory: Path, order: Sequence[str]) -> list[BenchResult]:
    """The results found in ``directory``, in the suite's order."""
    found: list[BenchResult] = []
    for name in order:
        path = directory / f"{name}.json"
        if path.exists():
            found.append(BenchResult.from_json(json.loads(path.read_text())))
    return found


# ---------------------------------------------------------------------------- charts


def pyplot() -> Any:
    """matplotlib's pyplot, drawing to files only (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> Path:
    """Lay ``fig`` out, write it to ``path`` (a PNG) and let it go; the path."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def chart(result: BenchResult, path: Path) -> Path | None:
    """A horizontal bar chart of the chart metric: median, IQR whiskers, min/max ticks."""
    if result.skipped or not result.rows:
        return None
    plt = pyplot()
    groups: list[str] = []
    for row in result.rows:
        if row.group not in groups:
            groups.append(row.group)
    heights = [sum(1 for r in result.rows if r.group == g) for g in groups]
    fig, axes = plt.subplots(
        len(groups),
        1,
        figsize=(9, 1.0 + 0.42 * sum(heights) + 0.5 * len(groups)),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    for ax, group in zip(axes[:, 0], groups, strict=True):
        in_group = [r for r in result.rows if r.group == group]
        # The comparison's chart metric, or (for a group that lacks it) the group's first one.
        key = result.chart_metric
        if not any(key in r.metrics for r in in_group):
            key = next(iter(in_group[0].metrics))
        metric = next(m for m in result.metrics if m.key == key)
        rows = [r for r in in_group if metric.key in r.metrics]
        rows = rows[::-1]
        y = list(range(len(rows)))
        med = [r.metrics[metric.key].median for r in rows]
        lo = [r.metrics[metric.key].median - r.metrics[metric.key].q1 for r in rows]
        hi = [r.metrics[metric.key].q3 - r.metrics[metric.key].median for r in rows]
        colors = [KIND_COLOR.get(r.kind, "#8c8c8c") for r in rows]
        ax.barh(y, med, xerr=[lo, hi], color=colors, capsize=3, height=0.6)
        ax.scatter([r.metrics[metric.key].min for r in rows], y, marker="|", color="black", s=60)
        ax.scatter([r.metrics[metric.key].max for r in rows], y, marker="|", color="black", s=60)
        ax.set_yticks(y, [r.label for r in rows], fontsize=8)
        values = [v for r in rows for v in (r.metrics[metric.key].min, r.metrics[metric.key].max)]
        positive = [v for v in values if v > 0]
        if positive and max(positive) / min(positive) > 30:
            ax.set_xscale("log")
        for yi, row in zip(y, rows, strict=True):
            s = row.metrics[metric.key]
            ax.annotate(
                fmt(s.median, metric.digits),
                (max(s.max, s.q3), yi),
                xytext=(6, -3),
                textcoords="offset points",
                fontsize=7,
                fontweight="bold",
            )
        ax.margins(x=0.12)
        title = f"{result.title}" + (f": {group}" if group else "")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(
            f"{metric.label} ({metric.unit}); bars: median, whiskers: IQR, ticks: min/max",
            fontsize=8,
        )
        ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, path)


# ---------------------------------------------------------------------------- Markdown


def _metric_cells(row: Row, result: BenchResult) -> list[str]:
    cells: list[str] = []
    for metric in result.metrics:
        s = row.metrics.get(metric.key)
        if s is None:
            cells += ["", ""]
            continue
        d = metric.digits
        cells.append(f"**{fmt(s.median, d)}**")
        cells.append(f"{fmt(s.q1, d)}{DASH}{fmt(s.q3, d)} ({fmt(s.min, d)}{DASH}{fmt(s.max, d)})")
    return cells


def section(result: BenchResult, md_dir: Path, chart_path: Path | None) -> str:
    lines = [f"## `{result.name}`: {result.title}", ""]
    env = result.environment
    lines.append(
        f"*Run {env.get('date', '?')}{' (quick mode)' if result.quick else ''}, "
        f"{fmt(result.duration_s)} s; load average at start {env.get('load_average')}.*"
    )
    lines += ["", result.description, ""]
    if result.params:
        params = ", ".join(f"{k} = {v}" for k, v in result.params.items())
        lines += [f"Parameters: {params}.", ""]
    if result.skipped:
        lines += [f"**Not run:** {result.skipped}", ""]
    if result.rows:
        head = ["Contender", "Kind"]
        for metric in result.metrics:
            head += [f"{metric.label} ({metric.unit}), median", f"IQR (min{DASH}max)"]
        head.append("Note")
        groups: list[str] = []
        for row in result.rows:
            if row.group not in groups:
                groups.append(row.group)
        for group in groups:
            if group:
                lines += [f"**{group}**", ""]
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "---|" * len(head))
            for row in result.rows:
                if row.group != group:
                    continue
                cells = [row.label, KIND_LABEL.get(row.kind, row.kind), *_metric_cells(row, result)]
                cells.append(row.note)
                lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
            lines.append("")
    if result.targets:
        lines += [
            "**Targets**",
            "",
            "| Goal | Met | Measured, and the cause of any gap |",
            "|---|---|---|",
        ]
        for t in result.targets:
            met = "yes" if t.met else ("no" if t.met is not None else "not measured")
            lines.append(f"| {t.goal} | {met} | {t.detail} |")
        lines.append("")
    if chart_path is not None and chart_path.exists():
        rel = os.path.relpath(chart_path, md_dir)
        lines += [f"![{result.title}]({rel})", ""]
    for note in result.notes:
        lines.append(f"- {note}")
    if result.notes:
        lines.append("")
    return "\n".join(lines)


def write_markdown(results: Sequence[BenchResult], md_path: Path, chart_dir: Path) -> Path:
    md_dir = md_path.parent
    md_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# agy_trio benchmark results", ""]
    lines.append(
        "Produced by `python -m benchmarks` (see `docs/performance.md` for what each "
        "comparison measures and how to read it). Every comparison runs all its contenders "
        "in one process, interleaved over several rounds; tables give the median and the "
        "interquartile range (IQR) over rounds, with the extremes in brackets."
    )
    lines.append("")
    if results:
        newest = max(results, key=lambda r: r.environment.get("date", ""))
        env = newest.environment
        lines += [
            "| Machine | |",
            "|---|---|",
            f"| Date | {env.get('date')} |",
            f"| Python | {env.get('python')} |",
            f"| Trio / trio-asyncio / anyio | {env.get('trio')} / {env.get('trio_asyncio')} / "
            f"{env.get('anyio')} |",
            f"| agy_trio / google-antigravity | {env.get('agy_trio')} / "
            f"{env.get('google_antigravity')} |",
            f"| OS | {env.get('os')} |",
            f"| CPU | {env.get('cpu')}, {env.get('cpus')} logical CPUs, "
            f"{env.get('memory_gib')} GiB RAM |",
            "",
        ]
        summary = [(r.name, t) for r in results for t in r.targets]
        if summary:
            lines += ["## Targets at a glance", "", "| Comparison | Goal | Met |", "|---|---|---|"]
            for name, t in summary:
                met = "yes" if t.met else ("no" if t.met is not None else "not measured")
                lines.append(f"| `{name}` | {t.goal} | {met} |")
            lines.append("")
    for result in results:
        lines.append(section(result, md_dir, chart_dir / f"{result.name}.png"))
    md_path.write_text("\n".join(lines).rstrip() + "\n")
    return md_path
