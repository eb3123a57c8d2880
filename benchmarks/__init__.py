"""agy_trio's benchmark suite: ``python -m benchmarks [--quick] [--only NAME] [--output DIR]``.

One module per comparison (``round_trip``, ``round_trip_concurrent``,
``streaming``, ``scale``, ``cancel_latency``, ``real_sdk``, ``hibernate``, ``serve``, ``soak``,
``temporal``, ``primitives``, ``a2a_hosting``, ``protocols``); each runs all of
its contenders in one process, interleaved over several rounds, and returns a
:class:`benchmarks._common.BenchResult`. The runner writes one JSON file and one
chart per comparison and regenerates ``RESULTS.md`` from every result file
present. See ``docs/performance.md``.
"""

BENCHMARKS = (
    "round_trip",
    "round_trip_concurrent",
    "streaming",
    "scale",
    "cancel_latency",
    "real_sdk",
    "hibernate",
    "serve",
    "soak",
    "temporal",
    "primitives",
    "a2a_hosting",
    "protocols",
)

__all__ = ["BENCHMARKS"]
