"""Quota backoff per API key, and what the registry reveals about the keys."""

from __future__ import annotations

import hashlib
import re

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from agy_trio import QuotaRegistry
from agy_trio.core.quota import key_fingerprint


async def test_registry_is_per_key_and_cleared_only_by_success(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0  # no threads here: jump as soon as Trio idles
    registry = QuotaRegistry()
    state = registry.state_for("k")
    assert registry.state_for("k") is state and registry.state_for("other") is not state
    state.record_hit(10)
    assert state.backing_off and not registry.state_for("other").backing_off
    start = trio.current_time()
    await state.wait()
    assert trio.current_time() - start == pytest.approx(10)
    state.record_hit(None)  # no Retry-After: the default backoff
    assert state.statistics().backoff_remaining == pytest.approx(state.default_backoff)
    state.record_hit(1)  # a shorter Retry-After does not shorten the backoff in force
    assert state.statistics().backoff_remaining == pytest.approx(state.default_backoff)
    state.record_success()
    assert not state.backing_off and state.statistics().hits == 3


async def test_wait_without_backoff_is_a_checkpoint() -> None:
    state = QuotaRegistry().state_for("k")
    with trio.testing.assert_checkpoints():
        await state.wait()


def test_keys_are_fingerprints_never_the_keys() -> None:
    secret = "AIzaSy-this-is-a-secret"
    registry = QuotaRegistry()
    registry.state_for(secret)
    registry.state_for("")
    keys = registry.keys()
    assert secret not in keys
    assert not any(secret in key for key in keys)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    assert keys == [f"sha256:{digest[:12]}", ""]


@given(st.text(min_size=1), st.text(min_size=1))
def test_fingerprints_are_stable_and_tell_keys_apart(a: str, b: str) -> None:
    assert re.fullmatch(r"sha256:[0-9a-f]{12}", key_fingerprint(a))
    assert key_fingerprint(a) == key_fingerprint(a)
    if a != b:
        assert key_fingerprint(a) != key_fingerprint(b)
