"""Fixtures of the adapter tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agy_trio.adapters.aio_host import AioHost
from tests.adapters.hosts import HOST_RUNNERS, HostRunner, thread_host


@pytest.fixture
async def host() -> AsyncIterator[AioHost]:
    """A started thread host named ``test-host``; after the test its thread must be gone."""
    async with thread_host() as started:
        yield started


@pytest.fixture(params=sorted(HOST_RUNNERS))
def on_host(request: pytest.FixtureRequest) -> HostRunner:
    """Runs a test's body on each kind of host in turn."""
    return HOST_RUNNERS[request.param]
