"""A local, Trio-native, OpenAI-compatible chat-completions server that stands in for the model.

The google-antigravity harness talks to any OpenAI-compatible endpoint, so a
small server that answers ``POST /v1/chat/completions`` lets the real SDK and
its harness run fully offline: in tests, in benchmarks and from the command
line (``python -m agy_trio.testing.model_server`` or ``agy-trio serve-model``).

This module is the server's entry point and its import path of record; the
parts live in their own modules:

* :mod:`agy_trio.testing.script`: what the model answers (:class:`Reply`,
  :class:`ToolCallSpec`, :class:`CompletionUsage`) and how a request can fail
  (:class:`Fault`, :class:`FaultKind`).
* :mod:`agy_trio.testing.replies`: a callable script (:data:`Responder`) and
  the default behaviour (:func:`default_reply`).
* :mod:`agy_trio.testing.wire`: the OpenAI wire format (:class:`ChatRequest`,
  SSE chunks, completions, error bodies).
* :mod:`agy_trio.testing.model_state`: what the server answers next and what
  it has seen (the replies, faults and counters :class:`ModelServer` serves).
* :mod:`agy_trio.testing.app`: :class:`ModelServer`, its Starlette app and
  control API, :func:`open_model_server` and :func:`run_model_server`.
* :mod:`agy_trio.testing.hosting`: serving an ASGI app on hypercorn's Trio
  worker, on a socket bound first.
* :mod:`agy_trio.testing.command`: the command line.

Every chat request body is kept in :attr:`ModelServer.requests` and, on
request, appended to a JSON Lines file.

Example:
    >>> async def demo() -> None:  # doctest: +SKIP
    ...     async with open_model_server([Reply("Hello!")]) as server:
    ...         server.inject_fault(Fault.rate_limit(retry_after=2))
    ...         config = LocalOpenAIAgentConfig(base_url=server.url, model="fake")
"""

from __future__ import annotations

# The package's public names, which this module has always exported too.
from agy_trio.testing import *  # noqa: F403
from agy_trio.testing import __all__ as _PACKAGE_NAMES
from agy_trio.testing.command import main, serve_model_command
from agy_trio.testing.wire import MODEL_ID

__all__ = [*_PACKAGE_NAMES, "MODEL_ID", "main", "serve_model_command"]

if __name__ == "__main__":
    main()
