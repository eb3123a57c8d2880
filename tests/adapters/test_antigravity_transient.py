"""Which SDK failures are connection failures worth asking again, and how often."""

from __future__ import annotations

import pytest

from agy_trio.adapters.antigravity import ConnectionRetry
from agy_trio.adapters.antigravity.errors import sdk_error_types
from agy_trio.adapters.antigravity.transient import is_connection_failure
from agy_trio.errors import ConfigError

pytest.importorskip("google.antigravity")

URL = 'Post "http://127.0.0.1:41931/v1/chat/completions"'
# What the harness reported, word for word, for each kind of failure.
CONNECTION_FAILURES = [
    f"failed to send HTTP request: {URL}: dial tcp 127.0.0.1:41931: connect: connection refused",
    f"failed to send HTTP request: {URL}: read tcp 127.0.0.1:45226->127.0.0.1:48771: read: "
    "connection reset by peer",
    f"failed to send HTTP request: {URL}: readfrom tcp 127.0.0.1:38610->127.0.0.1:53769: "
    "write tcp 127.0.0.1:38610->127.0.0.1:53769: use of closed network connection",
    f"failed to send HTTP request: {URL}: EOF",
    "unexpected EOF: unexpected EOF",
]
OTHER_FAILURES = [
    "HTTP request failed with status 429: Too Many Requests",
    "HTTP request failed with status 503: connection reset while overloaded",
    "Harness process exited unexpectedly (WS close code 1006).",
    "maximum output tokens reached",
]


@pytest.mark.parametrize("message", CONNECTION_FAILURES)
def test_connection_failures_are_recognised(message: str) -> None:
    assert is_connection_failure(sdk_error_types().execution(message))


@pytest.mark.parametrize("message", OTHER_FAILURES)
def test_other_failures_are_not(message: str) -> None:
    assert not is_connection_failure(sdk_error_types().execution(message))


def test_only_the_sdks_execution_errors_count() -> None:
    assert not is_connection_failure(ConnectionRefusedError("connection refused"))
    assert not is_connection_failure(sdk_error_types().connection("connection reset"))


def test_the_delay_grows_is_jittered_and_bounded() -> None:
    policy = ConnectionRetry(retries=5, initial_backoff=0.25, multiplier=2, max_backoff=1)
    failure = sdk_error_types().execution(CONNECTION_FAILURES[0])
    delays = [policy.delay(n, failure, produced=False) for n in range(6)]
    assert delays[-1] is None  # the budget is spent
    for delay, nominal in zip(delays, [0.25, 0.5, 1, 1, 1], strict=False):
        assert delay is not None and nominal * 0.8 <= delay <= nominal * 1.2
    assert policy.delay(0, failure, produced=True) is None  # output was delivered
    assert policy.delay(0, sdk_error_types().execution(OTHER_FAILURES[0]), produced=False) is None
    assert ConnectionRetry(retries=0).delay(0, failure, produced=False) is None


@pytest.mark.parametrize(
    "changes",
    [{"retries": -1}, {"retries": True}, {"initial_backoff": 0}, {"max_backoff": -1.0}],
)
def test_bad_settings_are_config_errors(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        ConnectionRetry(**changes)  # type: ignore[arg-type]
