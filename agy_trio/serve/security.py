"""Who may use the API: the bearer token, the same-origin rule, and safe addresses to listen on.

* With a token, every ``/v1/*`` request must carry ``Authorization: Bearer
  TOKEN``; the others get 401. The page, ``/healthz`` and ``/metrics`` stay
  open (they expose no agent and run nothing).
* A browser request to ``/v1/*`` from another origin gets 403: another web
  site must not drive a local server through its visitor's browser.
* Without a token the server listens on loopback only (:func:`check_bind`),
  and answers only requests addressed to a loopback name, so a web page that
  points its own domain at 127.0.0.1 (DNS rebinding) cannot reach it.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
import urllib.parse

import trio
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from agy_trio.errors import ConfigError

__all__ = ["LOOPBACK_HOSTS", "AccessControl", "check_bind", "is_api_path"]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
"""The Host header names a server without a token answers to."""


# Every path that runs anything: the native API and OpenAI Responses under
# /v1, and the agent protocols' own endpoints.
_API_ROOTS = ("/v1", "/mcp", "/a2a", "/ag-ui")


def is_api_path(path: str) -> bool:
    """Whether ``path`` belongs to the token-protected API (``/v1``, the protocols' roots)."""
    return any(path == root or path.startswith(f"{root}/") for root in _API_ROOTS)


def _refusal(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status, headers)


def _same_origin(origin: str, host: str | None) -> bool:
    parts = urllib.parse.urlsplit(origin)
    return host is not None and parts.scheme in ("http", "https") and parts.netloc == host


class AccessControl:
    """ASGI middleware guarding ``/v1/*``: bearer token and same-origin check.

    Args:
        app: The application to guard.
        token: The bearer token, or None to require none.
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode() if token is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 401 or 403."""
        if scope["type"] != "http" or not is_api_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self._expected is not None:
            given = headers.get("authorization", "").encode("latin-1", "replace")
            # Constant time: the comparison must not tell how much of a guess was right.
            if not hmac.compare_digest(given, self._expected):
                response = _refusal(
                    401,
                    "Unauthorized",
                    "this server needs an 'Authorization: Bearer TOKEN' header",
                    {"www-authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        origin = headers.get("origin")
        if origin is not None and not _same_origin(origin, headers.get("host")):
            response = _refusal(403, "Forbidden", "cross-origin requests are not allowed")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _is_loopback_address(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


async def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token.

    A host name counts as loopback when every address it resolves to is one.

    Raises:
        ConfigError: ``host`` is not a loopback address and ``token`` is None,
            or ``token`` is an empty string.
    """
    if token is not None and (not isinstance(token, str) or not token.strip()):
        await trio.lowlevel.checkpoint()
        raise ConfigError("must be a non-empty string or None", field="token")
    if token is not None or _is_loopback_address(host):
        await trio.lowlevel.checkpoint()
        return
    try:
        infos = await trio.socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        infos = []
    addresses = {str(info[4][0]) for info in infos}
    if not addresses or not all(_is_loopback_address(a) for a in addresses):
        raise ConfigError(
            f"refusing to listen on {host!r} without a token: anyone who can reach it could "
            "run agents; give a token, or listen on 127.0.0.1",
            field="host",
        )
