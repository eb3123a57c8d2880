"""Which failures count as an unreachable endpoint, and how a RetryPolicy treats them."""

from __future__ import annotations

import pytest
from google.antigravity.types import AntigravityExecutionError

from agy_trio.adapters.antigravity import AntigravityBackend, RetryPolicy
from agy_trio.adapters.antigravity.errors import classify_error, unreachable_cause
from agy_trio.errors import BackendError, ConfigError, EndpointUnreachable, QuotaExceeded

REFUSED = (
    'failed to send HTTP request: Post "http://127.0.0.1:9/v1/chat/completions": '
    "dial tcp 127.0.0.1:9: connect: connection refused"
)
NO_HOST = (
    "Encountered retryable error from model provider: There was a network issue connecting "
    'to the server, please try again. ("doRequest: error sending request: Post '
    '\\"https://generativelanguage.googleapis.com/v1beta/models/m:streamGenerateContent\\": '
    'dial tcp: lookup generativelanguage.googleapis.com on 10.0.0.53:53: no such host")'
)


@pytest.mark.parametrize(
    ("message", "cause"),
    [
        (REFUSED, "connection refused"),
        (NO_HOST, "no such host"),
        ("proxyconnect tcp: dial tcp 127.0.0.1:1: connect: connection refused", "proxyconnect"),
    ],
)
def test_connection_failures_are_recognised(message: str, cause: str) -> None:
    found = unreachable_cause(message)
    assert found is not None and cause in found
    assert "network issue" not in found  # the harness's own sentence is dropped
    error = classify_error(AntigravityExecutionError(message))
    assert isinstance(error, EndpointUnreachable)
    assert cause in str(error)


@pytest.mark.parametrize(
    "message",
    [
        "HTTP request failed with status 503: overloaded",
        "HTTP request failed with status 429: slow down",
        "unexpected EOF",
        "the harness process exited",
    ],
)
def test_other_failures_are_not_unreachable(message: str) -> None:
    assert unreachable_cause(message) is None
    assert not isinstance(classify_error(AntigravityExecutionError(message)), EndpointUnreachable)


def test_retry_policy_retries_unreachable_unless_told_not_to() -> None:
    error = EndpointUnreachable("the model endpoint is unreachable: no such host")
    assert error.status is None
    assert RetryPolicy(initial_backoff=0.5).delay(0, error) == 0.5
    assert RetryPolicy(attempts=2).delay(1, error) is None  # no attempt left
    assert RetryPolicy(unreachable=False).delay(0, error) is None
    assert RetryPolicy().delay(0, BackendError("bad request", status=400)) is None
    assert RetryPolicy().delay(0, QuotaExceeded("slow down", retry_after=1.0)) == 1.0
    with pytest.raises(ConfigError, match="unreachable"):
        RetryPolicy(unreachable="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), "10"])
def test_unreachable_timeout_must_be_a_positive_number(value: object) -> None:
    with pytest.raises(ConfigError, match="unreachable_timeout"):
        AntigravityBackend(unreachable_timeout=value)  # type: ignore[arg-type]
    assert AntigravityBackend().settings.unreachable_timeout == 10.0
