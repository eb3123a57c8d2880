"""Classifying the google-antigravity SDK's exceptions: by type, with status and retry delay."""

from __future__ import annotations

import asyncio

import google.antigravity.types as sdk_types
import pytest
import websockets.exceptions as ws_exceptions

from agy_trio.adapters.antigravity.errors import (
    classify_error,
    is_cancellation,
    is_fatal,
    parse_retry_after,
    parse_status,
)
from agy_trio.errors import (
    AgyError,
    BackendError,
    ChannelClosed,
    ConfigError,
    MaxTokensReached,
    PolicyDenied,
    QuotaExceeded,
    SafetyBlocked,
)

# What the harness really says (captured from google-antigravity 0.1.22).
HTTP_429 = (
    'HTTP request failed with status 429: {"error": {"message": "Rate limit reached for '
    'requests. Please try again in 3s.", "type": "requests", "param": null, '
    '"code": "rate_limit_exceeded"}}'
)
HTTP_500 = 'HTTP request failed with status 500: {"error": {"message": "boom", "code": null}}'
HARNESS_EXIT = "Harness process exited unexpectedly (WS close code 1006).\nHarness stderr:\n"


def test_quota_error_carries_the_retry_delay_from_the_body() -> None:
    mapped = classify_error(sdk_types.AntigravityExecutionError(HTTP_429))
    assert isinstance(mapped, QuotaExceeded)
    assert mapped.status == 429
    assert mapped.retry_after == 3.0


def test_http_error_keeps_its_status() -> None:
    mapped = classify_error(sdk_types.AntigravityExecutionError(HTTP_500))
    assert type(mapped) is BackendError
    assert mapped.status == 500


@pytest.mark.parametrize(
    "message",
    [HARNESS_EXIT, "Harness process exited with code -9.\nHarness stderr:\n"],
)
def test_a_harness_that_died_is_a_closed_channel(message: str) -> None:
    assert isinstance(classify_error(sdk_types.AntigravityExecutionError(message)), ChannelClosed)
    assert isinstance(classify_error(sdk_types.AntigravityConnectionError(message)), ChannelClosed)


def test_a_closed_harness_socket_is_a_closed_channel() -> None:
    closed = ws_exceptions.ConnectionClosedError(None, None)
    assert isinstance(classify_error(closed), ChannelClosed)
    assert is_fatal(closed)


def test_connection_error_with_an_auth_status_is_a_backend_error() -> None:
    mapped = classify_error(sdk_types.AntigravityConnectionError("HTTP 401 Unauthorized"))
    assert type(mapped) is BackendError and mapped.status == 401


def test_validation_error_is_a_config_error() -> None:
    mapped = classify_error(sdk_types.AntigravityValidationError("base_url is empty"))
    assert isinstance(mapped, ConfigError)


def test_token_limit_and_safety_messages() -> None:
    limit = sdk_types.AntigravityExecutionError("token limit exceeded for this turn")
    assert isinstance(classify_error(limit), MaxTokensReached)
    safety = sdk_types.AntigravityExecutionError("response blocked by safety filters")
    assert isinstance(classify_error(safety), SafetyBlocked)


def test_errors_of_the_hierarchy_pass_through() -> None:
    denied = PolicyDenied("rm", "no")
    assert classify_error(denied) is denied


def test_unknown_exceptions_become_backend_errors_naming_their_type() -> None:
    mapped = classify_error(KeyError("x"))
    assert type(mapped) is BackendError
    assert "KeyError" in str(mapped)
    assert mapped.status is None


def test_base_exceptions_are_not_wrapped() -> None:
    interrupt = KeyboardInterrupt()
    assert classify_error(interrupt) is interrupt


def test_look_alike_classes_with_the_sdk_names_are_not_mistaken() -> None:
    class AntigravityExecutionError(Exception):  # same name, unrelated class
        pass

    class AntigravityConnectionError(Exception):
        pass

    class AntigravityCancelledError(asyncio.CancelledError):
        pass

    impostor = AntigravityExecutionError(HTTP_429)
    mapped = classify_error(impostor)
    assert type(mapped) is BackendError
    assert not isinstance(mapped, QuotaExceeded)
    assert mapped.status is None
    assert "AntigravityExecutionError" in str(mapped)
    assert not is_fatal(impostor)

    gone = classify_error(AntigravityConnectionError(HARNESS_EXIT))
    assert type(gone) is BackendError

    assert not is_cancellation(AntigravityCancelledError())
    assert is_cancellation(sdk_types.AntigravityCancelledError())
    assert not is_cancellation(asyncio.CancelledError())


def test_fatal_errors_are_the_ones_that_kill_the_sdk_session() -> None:
    assert is_fatal(sdk_types.AntigravityExecutionError(HTTP_429))
    assert is_fatal(sdk_types.AntigravityConnectionError(HARNESS_EXIT))
    assert not is_fatal(sdk_types.AntigravityValidationError("x"))
    assert not is_fatal(sdk_types.AntigravityCancelledError())
    assert not is_fatal(ValueError("x"))


@pytest.mark.parametrize(
    ("message", "status"),
    [
        (HTTP_429, 429),
        (HTTP_500, 500),
        ("HTTP request failed with status 503: overloaded", 503),
        ("status code: 502", 502),
        ("HTTP/1.1 504 Gateway Timeout", 504),
        ('{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}', 429),
        ("RESOURCE_EXHAUSTED: quota", 429),
        ("UNAVAILABLE", 503),
        ("Error 401: bad key", 401),
        ("connection refused", None),
        ("status 200 is fine", None),
        ("", None),
    ],
)
def test_status_parsing(message: str, status: int | None) -> None:
    assert parse_status(message) == status


@pytest.mark.parametrize(
    ("message", "seconds"),
    [
        (HTTP_429, 3.0),
        ("Please try again in 1.5 seconds.", 1.5),
        ("Please try again in 250ms", 0.25),
        ("try again in 2m", 120.0),
        ('"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"', 7),
        ('"retryDelay": "1.25s"', 1.25),
        ("Retry-After: 12", 12.0),
        ('{"retry_after": 4}', 4.0),
        ("slow down", None),
    ],
)
def test_retry_after_parsing(message: str, seconds: float | None) -> None:
    assert parse_retry_after(message) == seconds


def test_every_mapped_error_is_an_agy_error() -> None:
    samples: list[BaseException] = [
        sdk_types.AntigravityExecutionError(HTTP_429),
        sdk_types.AntigravityExecutionError("anything"),
        sdk_types.AntigravityConnectionError("anything"),
        sdk_types.AntigravityValidationError("anything"),
        sdk_types.ToolExecutionError("failed", tool_name="t"),
        RuntimeError("x"),
    ]
    for exc in samples:
        assert isinstance(classify_error(exc), AgyError)
