"""The SDK's log lines, on agy_trio's own loggers at agy_trio's levels.

The SDK logs through the *root* logger (``logging.warning(...)`` in its
modules), which also calls :func:`logging.basicConfig` on the program's behalf
the first time, and it logs at WARNING and ERROR what agy_trio then reports
anyway, as the typed error the caller gets (an unreachable endpoint, a
harness that died): the same failure two or three times, in two formats.

:func:`route_sdk_logging` gives each SDK module a ``logging`` of its own that
logs to ``agy_trio.sdk`` (nothing global changes, no ``basicConfig``), and
forwards the SDK's named loggers (``google.antigravity.*``) there too. Levels:
the SDK's DEBUG and INFO lines become DEBUG, its WARNING, ERROR and CRITICAL
lines INFO (what matters of them reaches the caller as an exception). The
harness's own output (its Go log on stderr) is logged at DEBUG by
:mod:`~agy_trio.adapters.antigravity.stderr`.
"""

from __future__ import annotations

import logging
import sys
import types
from typing import Any

__all__ = ["SDK_LOGGER", "route_sdk_logging"]

SDK_LOGGER = "agy_trio.sdk"
"""The logger the SDK's lines go to."""

_SDK_PACKAGE = "google.antigravity"


def _level(level: int) -> int:
    return logging.DEBUG if level < logging.WARNING else logging.INFO


class _SdkLogging(types.ModuleType):
    """Stands in for :mod:`logging` inside one SDK module: its module-level calls go to us."""

    def __init__(self) -> None:
        super().__init__("logging")
        self._logger = logging.getLogger(SDK_LOGGER)

    def __getattr__(self, name: str) -> Any:
        return getattr(logging, name)  # getLogger, DEBUG, ...: the real ones

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        level = _level(level)
        if self._logger.isEnabledFor(level):
            kwargs.setdefault("stacklevel", 2)
            self._logger.log(level, msg, *args, **kwargs)

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(logging.DEBUG, msg, *args, stacklevel=3, **kwargs)

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(logging.INFO, msg, *args, stacklevel=3, **kwargs)

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(logging.WARNING, msg, *args, stacklevel=3, **kwargs)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(logging.ERROR, msg, *args, stacklevel=3, **kwargs)

    def critical(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(logging.CRITICAL, msg, *args, stacklevel=3, **kwargs)

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        kwargs.setdefault("exc_info", True)
        self.log(logging.ERROR, msg, *args, stacklevel=3, **kwargs)


class _Forward(logging.Handler):
    """On the SDK's named loggers: hands each record to ``agy_trio.sdk`` at our level."""

    def emit(self, record: logging.LogRecord) -> None:
        target = logging.getLogger(SDK_LOGGER)
        level = _level(record.levelno)
        if target.isEnabledFor(level):
            record.levelno, record.levelname = level, logging.getLevelName(level)
            record.name = SDK_LOGGER
            target.handle(record)


_SHIM = _SdkLogging()
_routed: set[str] = set()


def route_sdk_logging() -> None:
    """Point every imported SDK module's logging at ``agy_trio.sdk`` (idempotent, cheap).

    Call it after importing SDK modules; modules imported since the last call
    are routed too.
    """
    sdk_logger = logging.getLogger(_SDK_PACKAGE)
    if not any(isinstance(handler, _Forward) for handler in sdk_logger.handlers):
        sdk_logger.addHandler(_Forward())
        sdk_logger.propagate = False
    for name, module in list(sys.modules.items()):
        if name in _routed or not name.startswith(_SDK_PACKAGE) or module is None:
            continue
        _routed.add(name)
        if getattr(module, "logging", None) is logging:
            module.__dict__["logging"] = _SHIM
