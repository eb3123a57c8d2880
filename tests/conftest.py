"""Shared test settings."""

from __future__ import annotations

import hypothesis

# Timing belongs to benchmarks/, not to tests: on a shared 2-core machine an
# example can be slow for reasons that have nothing to do with the code.
hypothesis.settings.register_profile(
    "agy_trio",
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
hypothesis.settings.load_profile("agy_trio")
