"""The command line of the benchmark suite (``python -m benchmarks``)."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

from benchmarks import BENCHMARKS
from benchmarks._common import BenchResult, environment, write_json
from benchmarks._report import chart, load_results, write_markdown
from benchmarks._rounds import Context

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results"
DEFAULT_MARKDOWN = HERE / "RESULTS.md"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run agy_trio's benchmarks; write JSON, charts and RESULTS.md.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and few rounds: the whole suite in under a minute (a smoke test)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only this comparison (repeatable, or comma-separated): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="directory for the JSON files, charts and RESULTS.md "
        "(default: benchmarks/results, and benchmarks/RESULTS.md)",
    )
    parser.add_argument("--list", action="store_true", help="list the comparisons and exit")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: redraw the charts and RESULTS.md from the JSON files in the output",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the selected comparisons; return the process exit status."""
    args = _parser().parse_args(argv)
    if args.list:
        for name in BENCHMARKS:
            module = importlib.import_module(f"benchmarks.{name}")
            print(f"{name:24} {module.TITLE}")
        return 0
    selected: list[str] = []
    for item in args.only or list(BENCHMARKS):
        for name in item.split(","):
            name = name.strip()
            if name not in BENCHMARKS:
                print(
                    f"unknown comparison {name!r}; choose from {', '.join(BENCHMARKS)}",
                    file=sys.stderr,
                )
                return 2
            if name not in selected:
                selected.append(name)
    output: Path = args.output if args.output is not None else DEFAULT_OUTPUT
    md_path = DEFAULT_MARKDOWN if args.output is None else output / "RESULTS.md"
    output.mkdir(parents=True, exist_ok=True)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.report_only:
        found = load_results(output, BENCHMARKS)
        for done in found:
            chart(done, output / f"{done.name}.png")
        write_markdown(found, md_path, output)
        log(f"redrew {len(found)} result(s): {output} and {md_path}")
        return 0
    ctx = Context(quick=args.quick, output=output, log=log)
    failed: list[str] = []
    started = time.perf_counter()
    for name in selected:
        module = importlib.import_module(f"benchmarks.{name}")
        log(f"== {name}: {module.TITLE}{' (quick)' if args.quick else ''}")
        env = environment()
        t0 = time.perf_counter()
        try:
            result: BenchResult = module.run(ctx)
        except Exception as exc:
            traceback.print_exc()
            failed.append(name)
            result = BenchResult.new(
                name,
                module.TITLE,
                module.DESCRIPTION,
                module.METRICS,
                module.METRICS[0].key,
                skipped=f"failed: {type(exc).__name__}: {exc}",
            )
        result.quick = args.quick
        result.environment = env
        result.duration_s = time.perf_counter() - t0
        write_json(result, output)
        chart(result, output / f"{name}.png")
        log(f"   done in {result.duration_s:.1f} s")
    write_markdown(load_results(output, BENCHMARKS), md_path, output)
    log(f"results: {output} and {md_path} ({time.perf_counter() - started:.1f} s)")
    if failed:
        log(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
