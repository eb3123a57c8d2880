"""``GET /metrics``: the runtime's statistics in the Prometheus text format.

Nothing is counted twice: a collector reads :meth:`Runtime.statistics` when
Prometheus scrapes, so the figures are the runtime's own. Each app has its own
registry, so several apps (or tests) in one process never share metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from agy_trio.core.runtime import RuntimeStatistics

__all__ = ["CONTENT_TYPE", "RuntimeCollector", "render_metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The media type of :func:`render_metrics`' output."""


_Family = type[GaugeMetricFamily] | type[CounterMetricFamily]

# The runtime's single-valued figures: the metric's kind, name and help, and
# how to read its value from a statistics snapshot.
_FIGURES: tuple[tuple[_Family, str, str, Callable[[RuntimeStatistics], float]], ...] = (
    (GaugeMetricFamily, "agy_trio_agents", "Live agents.", lambda s: s.agents),
    (
        GaugeMetricFamily,
        "agy_trio_active_turns",
        "Chat turns still producing.",
        lambda s: s.active_turns,
    ),
    (
        GaugeMetricFamily,
        "agy_trio_commands_in_flight",
        "Commands running now.",
        lambda s: s.in_flight,
    ),
    (
        GaugeMetricFamily,
        "agy_trio_commands_queued",
        "Commands waiting in the command channel.",
        lambda s: s.queued,
    ),
    (
        GaugeMetricFamily,
        "agy_trio_runtime_closed",
        "1 once the runtime has stopped taking commands.",
        lambda s: int(s.closed),
    ),
    (CounterMetricFamily, "agy_trio_turns", "Chat turns started.", lambda s: s.turns),
    (
        CounterMetricFamily,
        "agy_trio_quota_hits",
        "Quota errors (HTTP 429) seen.",
        lambda s: s.quota_hits,
    ),
    (
        CounterMetricFamily,
        "agy_trio_stream_events",
        "Stream events (text, thoughts, tool calls, ends) delivered to readers.",
        lambda s: s.stream_events,
    ),
)


class RuntimeCollector(Collector):
    """Prometheus metrics built from a runtime's statistics at scrape time.

    Args:
        statistics: Returns the runtime's current statistics.
        live_streams: Returns how many chat streams the server is serving now.
        disconnects: Returns how many streams ended because their client left.
    """

    def __init__(
        self,
        statistics: Callable[[], RuntimeStatistics],
        live_streams: Callable[[], int],
        disconnects: Callable[[], int],
    ) -> None:
        self._statistics = statistics
        self._live_streams = live_streams
        self._disconnects = disconnects

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family, from one statistics snapshot."""
        stats = self._statistics()
        yield InfoMetricFamily(
            "agy_trio_runtime", "The runtime's backend.", {"backend": stats.backend}
        )
        for family, name, documentation, read in _FIGURES:
            yield family(name, documentation, value=read(stats))
        commands = CounterMetricFamily(
            "agy_trio_commands",
            "Commands finished, by command and outcome.",
            labels=("command", "outcome"),
        )
        seconds = CounterMetricFamily(
            "agy_trio_command_seconds", "Wall time spent in commands.", labels=("command",)
        )
        slowest = GaugeMetricFamily(
            "agy_trio_command_max_seconds", "The slowest command so far.", labels=("command",)
        )
        for name, per in sorted(stats.commands.items()):
            commands.add_metric((name, "completed"), per.completed)
            commands.add_metric((name, "failed"), per.failed)
            seconds.add_metric((name,), per.total_seconds)
            slowest.add_metric((name,), per.max_seconds)
        yield commands
        yield seconds
        yield slowest
        yield GaugeMetricFamily(
            "agy_trio_serve_live_streams",
            "Chat streams being served now.",
            value=self._live_streams(),
        )
        yield CounterMetricFamily(
            "agy_trio_serve_disconnects",
            "Chat streams ended because their client went away (their turn then had its grace).",
            value=self._disconnects(),
        )


def registry_for(collector: RuntimeCollector) -> CollectorRegistry:
    """A registry of its own holding ``collector`` (no process-wide default metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render_metrics(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of ``registry``."""
    return generate_latest(registry)
