"""Every real-SDK end-to-end test runs offline and leaves no harness process behind."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _offline_and_no_harness_left(offline: None, no_harness_left: None) -> None:
    """Both checks for every test of the folder (the fixtures are in ``tests/conftest.py``)."""
