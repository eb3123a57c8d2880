"""The google-antigravity SDK as an agy_trio backend.

:class:`AntigravityBackend` hosts SDK agents on a small pool of asyncio host
threads and answers the runtime in Trio. Each agent is an SDK ``Agent`` whose
conversation runs on a shared ``localharness`` process (many conversations per
process, see :mod:`~agy_trio.adapters.antigravity.pool`), wrapped so that the
SDK's known problems do not reach the user:

* **Cancellation.** Cancelling the task that reads an SDK response does not
  stop the turn; only the SDK's own ``cancel()`` does. Every cancel path here
  (``TurnStream.cancel``, the ``cancel`` command, a cancelled reader, an
  asyncio task cancelled at shutdown) calls it, and the SDK's
  ``AntigravityCancelledError`` (a subclass of ``asyncio.CancelledError``) is
  told apart from a cancellation of our own task, so the next turn starts at
  once.
* **Fatal errors.** After any HTTP error of the model endpoint the SDK session
  is dead (the next chat answers nothing, the one after hangs). The error is
  raised typed (:class:`~agy_trio.errors.QuotaExceeded` with the retry
  delay the endpoint stated, or :class:`~agy_trio.errors.BackendError`
  with the HTTP status), then the session is reopened in RESUME mode under the
  same conversation id (on the same harness process; only that conversation
  is touched), so the agent keeps its history and the next chat works. A
  model request that failed at the connection level before the turn produced
  anything is asked again (:class:`ConnectionRetry`, on by default); an opt-in
  :class:`RetryPolicy` turns other transient failures into retries the caller
  never sees.
* **Nothing unchecked, nothing cut.** Every tool the harness can run goes
  through the agent's policies or is not offered (``manage_task`` never is;
  ``schedule`` and ``invoke_subagent`` are refused); content the harness
  would cut or drop is refused before sending
  (:class:`~agy_trio.errors.ContentTooLarge`); an endpoint the harness
  cannot reach ends the turn with
  :class:`~agy_trio.errors.EndpointUnreachable` naming the cause.
* **Safe defaults.** No built-in SDK tool unless ``AgentConfig.builtin_tools``
  names it; the harness's ``save_dir``, ``app_data_dir``, workspace and
  ``HOME`` live in a per-backend temporary folder (removed by :meth:`aclose`)
  unless the user chose paths. ``HOME`` is set for the harness process only,
  never for the Python process.
* **Processes.** Agents whose process settings agree (binary, environment,
  ``save_dir``) share harness processes, up to ``agents_per_harness`` each.
  Every harness is started without blocking the asyncio loop, tracked by PID,
  killed if its start-up is cancelled, stopped when its last agent or the
  backend closes, and (on Linux) killed by the kernel if Python dies. Its
  shutdown is waited for off the loop too (the SDK's ``Popen.wait`` would
  freeze every agent of the host for as long as the harness takes to exit).
  When a harness dies, each of its agents gets a typed error for its turn
  and resumes on a fresh one.
* **The host loops stay free.** Everything synchronous the SDK would do on
  the loop for each start or stop and that can be done elsewhere is: the
  agent's configuration (pydantic models, a deep copy) is built in a worker
  thread, the ``importlib.metadata`` look-ups are done once per backend, and
  the worker threads exist before the first agent needs one.
* **State.** ``delete`` removes the conversation's database and transcripts;
  ``clear_history`` really clears (see
  :meth:`~agy_trio.adapters.antigravity.agent.SdkAgent.clear_history`).

Custom tools, policy handlers and hooks run on the Trio side: the SDK calls an
asyncio wrapper that crosses to Trio through the host
(:meth:`~agy_trio.adapters.aio_host.AioHost.call_trio`), so the host loop stays
free for other agents while a tool works.

Importing this package does not import the SDK; constructing the backend does,
and tells the user how to install it when it is missing.

The package, one concern a module:

* :mod:`~agy_trio.adapters.antigravity.backend`: the backend and its statistics;
* :mod:`~agy_trio.adapters.antigravity.session`: an agent's Trio face;
* :mod:`~agy_trio.adapters.antigravity.agent`: an agent on its host loop;
* :mod:`~agy_trio.adapters.antigravity.turns`: turns, streamed and cancelled;
* :mod:`~agy_trio.adapters.antigravity.retry`: :class:`RetryPolicy`;
* :mod:`~agy_trio.adapters.antigravity.transient`: :class:`ConnectionRetry`;
* :mod:`~agy_trio.adapters.antigravity.recovery`: reopening a dead SDK session;
* :mod:`~agy_trio.adapters.antigravity.conversation`: an agent's SDK
  conversation on its harness, opened and closed;
* :mod:`~agy_trio.adapters.antigravity.tools`: tools, policies and hooks on the Trio side;
* :mod:`~agy_trio.adapters.antigravity.launcher`: giving a conversation its harness;
* :mod:`~agy_trio.adapters.antigravity.process_view`: the harness process as the SDK sees it;
* :mod:`~agy_trio.adapters.antigravity.pool`: harness processes shared by conversations;
* :mod:`~agy_trio.adapters.antigravity.harness`: the harness processes' life;
* :mod:`~agy_trio.adapters.antigravity.stderr`: the harness processes' stderr, drained;
* :mod:`~agy_trio.adapters.antigravity.context`: what the agents of one backend share;
* :mod:`~agy_trio.adapters.antigravity.reachability`: giving up on an unreachable endpoint;
* :mod:`~agy_trio.adapters.antigravity.config`: ``AgentConfig`` to the SDK's configuration;
* :mod:`~agy_trio.adapters.antigravity.limits`: what the harness takes in one message;
* :mod:`~agy_trio.adapters.antigravity.events`: the SDK's data to agy_trio's;
* :mod:`~agy_trio.adapters.antigravity.errors`: the SDK's errors to agy_trio's;
* :mod:`~agy_trio.adapters.antigravity.sdk`: importing the SDK.
"""

from __future__ import annotations

from agy_trio.adapters.antigravity.backend import AntigravityBackend, AntigravityStatistics
from agy_trio.adapters.antigravity.retry import RetryPolicy
from agy_trio.adapters.antigravity.sdk import INSTALL_HINT, AntigravityNotInstalled
from agy_trio.adapters.antigravity.transient import ConnectionRetry

__all__ = [
    "INSTALL_HINT",
    "AntigravityBackend",
    "AntigravityNotInstalled",
    "AntigravityStatistics",
    "ConnectionRetry",
    "RetryPolicy",
]
