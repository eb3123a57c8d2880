"""serve(): the app on hypercorn's Trio worker, inside the caller's nursery.

``serve`` binds, reports the address it listens on through ``nursery.start``,
and serves until it is cancelled. Then it stops in order: live chat streams get
an ``error`` event of type ``RuntimeClosed`` and their turns are cancelled, the
agents created over HTTP are shut down, hypercorn stops accepting and closes
its connections, and only then does ``serve`` return.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from starlette.applications import Starlette

from agy_trio._sockets import ServerAddress, bound_socket
from agy_trio.core.runtime import Runtime
from agy_trio.core.settings import AgentConfig
from agy_trio.serve.access_log import AccessLog
from agy_trio.serve.app import DEFAULT_MAX_BODY_BYTES, SHUTDOWN_GRACE, create_app
from agy_trio.serve.approvals import DEFAULT_APPROVAL_TIMEOUT
from agy_trio.serve.profile import ServedProfile
from agy_trio.serve.security import check_bind
from agy_trio.serve.turns import DEFAULT_REATTACH_GRACE

__all__ = ["ServerAddress", "serve"]

log = logging.getLogger("agy_trio.serve")


def _address(bind: str) -> ServerAddress:
    # hypercorn reports each socket it bound as a URL with the real port.
    parts = urllib.parse.urlsplit(bind)
    assert parts.port is not None
    return ServerAddress.connectable(parts.hostname or "127.0.0.1", parts.port)


async def serve(
    runtime: Runtime,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    task_status: trio.TaskStatus[ServerAddress] = trio.TASK_STATUS_IGNORED,
    defaults: AgentConfig | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    access_log: bool = False,
    reattach_grace: float = DEFAULT_REATTACH_GRACE,
    approval_timeout: float = DEFAULT_APPROVAL_TIMEOUT,
    profile: ServedProfile | None = None,
) -> None:
    """Serve ``runtime`` over HTTP until cancelled; start it with ``nursery.start``.

    Example:
        >>> async with trio.open_nursery() as nursery:  # doctest: +SKIP
        ...     address = await nursery.start(functools.partial(serve, runtime, port=0))
        ...     print(address.url)  # the real port

    Args:
        runtime: The runtime whose agents the API drives.
        host: The address to listen on. Anything but loopback needs ``token``.
        port: The TCP port; 0 picks a free one (see the started value).
        token: The bearer token ``/v1/*`` requests must carry, or None.
        task_status: Given by ``nursery.start``, which then returns the
            :class:`ServerAddress` listened on.
        defaults: The agent configuration ``POST /v1/agents`` bodies apply to.
        max_body_bytes: Largest request body accepted; larger ones get 413.
        access_log: Log one line per request, once it has ended (at INFO,
            on the logger ``agy_trio.serve.access``; see
            :mod:`agy_trio.serve.access_log`).
        reattach_grace: Seconds a turn goes on once its last reader left; 0
            cancels it at once.
        approval_timeout: Seconds a tool call waiting for approval waits
            before it is denied.
        profile: The served profile (instead of ``defaults``).

    Raises:
        ConfigError: ``host`` is not loopback and no token was given, or an
            argument is invalid.
        OSError: The address could not be bound.
    """
    await check_bind(host, token)
    app = create_app(
        runtime,
        token=token,
        defaults=defaults,
        max_body_bytes=max_body_bytes,
        reattach_grace=reattach_grace,
        approval_timeout=approval_timeout,
        profile=profile,
    )
    config = Config()
    config.accesslog = None  # ours instead, one line per request (see access_log)
    config.errorlog = log
    config.graceful_timeout = SHUTDOWN_GRACE
    # Room for a burst of clients connecting at once (hypercorn's default is
    # 100; a connection beyond the backlog waits a whole SYN retry, 1 s).
    config.backlog = 1024
    # Bound here, so that a busy port is a plain OSError before anything
    # starts and no socket is left behind. hypercorn adopts (and closes) a
    # duplicate of the descriptor; the original is closed when serve() ends.
    with await bound_socket(host, port) as listener:
        config.bind = [f"fd://{os.dup(listener.fileno())}"]
        await _run(app, config, task_status, access_log=access_log)


async def _run(
    app: Starlette,
    config: Config,
    task_status: trio.TaskStatus[ServerAddress],
    *,
    access_log: bool,
) -> None:
    # Starlette's and hypercorn's ASGI type hints describe the same protocol
    # with different (incompatible) TypedDicts.
    asgi_app: Any = AccessLog(app) if access_log else app
    stop = trio.Event()
    # hypercorn runs shielded from the caller's cancellation: when that comes,
    # serve() stops it in order (streams told first) instead of cutting every
    # connection at once. Its own deadline, set on the way out, bounds that.
    server_scope = trio.CancelScope(shield=True)

    async def run_server(*, task_status: trio.TaskStatus[list[str]]) -> None:
        with server_scope:
            await hypercorn_serve(
                asgi_app, config, shutdown_trigger=stop.wait, task_status=task_status, mode="asgi"
            )

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(run_server)
        address = _address(binds[0])
        log.info("serving on %s", address.url)
        task_status.started(address)
        try:
            await trio.sleep_forever()
        finally:
            try:
                with trio.CancelScope(shield=True):
                    await app.state.agy_trio.aclose()
            finally:
                # Whatever happened above, hypercorn stops (and within its deadline).
                stop.set()
                server_scope.deadline = trio.current_time() + SHUTDOWN_GRACE + 1.0
