"""The command line's log lines: one format, agents named by their agent ids.

Every command logs to stderr as ``LEVEL LOGGER [AGENT_ID]: MESSAGE``; the agent
id (the one ``agent.agent_id``, the HTTP API and ``agy-trio run``'s table
show) appears on the lines the runtime logs for an agent. Warnings and worse
by default, ``-v`` INFO, ``-vv`` DEBUG. The SDK's lines arrive on
``agy_trio.sdk`` and the harness's Go log on ``agy_trio.antigravity.harness``
at DEBUG (see :mod:`agy_trio.adapters.antigravity.sdk_logging`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ["configure_logging"]


class _AgentFormatter(logging.Formatter):
    """``LEVEL LOGGER [AGENT_ID]: MESSAGE``; the bracket only on agents' records."""

    def format(self, record: logging.LogRecord) -> str:
        agent_id = getattr(record, "agent_id", None)
        record.agent = f" [{agent_id}]" if agent_id else ""
        return super().format(record)


def configure_logging(verbose: int) -> Callable[[], None]:
    """Log to stderr at WARNING (``verbose`` 0), INFO (1) or DEBUG (2 and more).

    Returns:
        What undoes it (the command calls it when it ends, so that a program
        that runs the command line in-process, such as a test, gets its
        logging back as it was).
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    handler = logging.StreamHandler()
    handler.setFormatter(_AgentFormatter("%(levelname)s %(name)s%(agent)s: %(message)s"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(level)

    def undo() -> None:
        root.removeHandler(handler)
        root.setLevel(previous)

    return undo
