"""Agents behind a Trio web server: a JSON and SSE API, a web page, and Prometheus metrics.

Needs the ``serve`` extra (``pip install 'agy-trio[serve]'``).

* :func:`create_app` builds the ASGI app (Starlette) over a runtime.
* :func:`serve` runs it on hypercorn's Trio worker inside your nursery::

    async with agy_trio.open_runtime() as rt, trio.open_nursery() as nursery:
        address = await nursery.start(functools.partial(serve, rt, port=0))
        print("listening on", address.url)

See ``docs/serve.md`` for the API, the page, metrics and security.
"""

from __future__ import annotations

try:
    import prometheus_client  # noqa: F401
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"agy_trio.serve needs the 'serve' extra: pip install 'agy-trio[serve]' ({exc})"
    ) from exc

from agy_trio.serve.app import DEFAULT_MAX_BODY_BYTES, HTTP_SETTABLE_FIELDS, create_app
from agy_trio.serve.approvals import DEFAULT_APPROVAL_TIMEOUT
from agy_trio.serve.profile import (
    DEFAULT_PROFILE_NAME,
    ServedProfile,
    load_profile,
    profile_from_toml,
)
from agy_trio.serve.server import ServerAddress, serve
from agy_trio.serve.turns import DEFAULT_REATTACH_GRACE

__all__ = [
    "DEFAULT_APPROVAL_TIMEOUT",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_PROFILE_NAME",
    "DEFAULT_REATTACH_GRACE",
    "HTTP_SETTABLE_FIELDS",
    "ServedProfile",
    "ServerAddress",
    "create_app",
    "load_profile",
    "profile_from_toml",
    "serve",
]
