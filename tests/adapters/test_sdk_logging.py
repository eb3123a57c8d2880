"""The SDK's log lines arrive on ``agy_trio.sdk`` at agy_trio's levels, not on the root logger."""

from __future__ import annotations

import importlib
import logging

import pytest

from agy_trio.adapters.antigravity.sdk import load_sdk
from agy_trio.adapters.antigravity.sdk_logging import SDK_LOGGER

pytest.importorskip("google.antigravity")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def seen() -> object:
    handler = Records()
    sdk, root = logging.getLogger(SDK_LOGGER), logging.getLogger()
    level = sdk.level
    sdk.setLevel(logging.DEBUG)
    # On the root logger: what goes to agy_trio.sdk propagates there, and
    # anything the SDK still logged on the root logger itself would show too.
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)
    sdk.setLevel(level)


def test_the_sdks_module_level_logging_goes_to_agy_trio_sdk(seen: Records) -> None:
    load_sdk()
    connection = importlib.import_module("google.antigravity.connections.local.local_connection")
    root_handlers = list(logging.getLogger().handlers)
    # What local_connection.py does when the harness dies under it.
    connection.logging.error("Harness process exited unexpectedly (WS close code %s)", 1006)
    connection.logging.info("harness stderr: %s", "I1206 some Go log")
    assert [(r.name, r.levelname, r.getMessage()) for r in seen.records] == [
        (SDK_LOGGER, "INFO", "Harness process exited unexpectedly (WS close code 1006)"),
        (SDK_LOGGER, "DEBUG", "harness stderr: I1206 some Go log"),
    ]
    # No basicConfig on the program's behalf.
    assert logging.getLogger().handlers == root_handlers


def test_the_sdks_named_loggers_are_forwarded_too(seen: Records) -> None:
    load_sdk()
    logging.getLogger("google.antigravity.hooks.policy").warning("a rule did not match")
    assert [(r.name, r.levelname) for r in seen.records] == [(SDK_LOGGER, "INFO")]
