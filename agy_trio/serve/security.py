"""Who may use the API: the bearer token, the same-origin rule, and safe addresses to listen on.

* With a token, every ``/v1/*`` request must carry ``Authorization: Bearer
  TOKEN``; the others get 401. The page, ``/healthz`` and ``/metrics`` stay
  open (they expose no agent and run nothing).
* A browser request to ``/v1/*`` from another origin gets 403: another web
  site must not drive a local server through its visitor's browser.
* Without a token the server listens on loopback only (:func:`check_bind`),
  and answers only requests addressed to a loopback name (:class:`LoopbackHosts`,
  400 otherwise), so a web page that points its own domain at 127.0.0.1 (DNS
  rebinding) cannot reach it.
* No request body larger than the server's limit is read (:class:`BodyLimit`,
  413).

Every refusal is a JSON body of the API's one error shape,
``{"error": {"type": ..., "message": ...}}``.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
import urllib.parse

import trio
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agy_trio.errors import ConfigError
from agy_trio.serve.middleware import RequestMiddleware

__all__ = [
    "LOOPBACK_HOSTS",
    "AccessControl",
    "BodyLimit",
    "LoopbackHosts",
    "check_bind",
    "is_api_path",
]

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


class AccessControl(RequestMiddleware):
    """ASGI middleware guarding ``/v1/*``: bearer token and same-origin check.

    Args:
        app: The application to guard.
        token: The bearer token, or None to require none.
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        super().__init__(app)
        self._expected = token.encode() if token is not None else None

    def _authorized(self, header: str) -> bool:
        assert self._expected is not None
        # The scheme is case-insensitive (RFC 7235: "bearer", "BEARER" too).
        scheme, _, credentials = header.strip().partition(" ")
        given = credentials.strip().encode("latin-1", "replace")
        # Constant time: the comparison must not tell how much of a guess was right.
        return hmac.compare_digest(given, self._expected) and scheme.lower() == "bearer"

    def applies(self, scope: Scope) -> bool:
        """Only HTTP requests to ``/v1/*`` are guarded."""
        return super().applies(scope) and is_api_path(scope["path"])

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 401 or 403."""
        headers = Headers(scope=scope)
        if self._expected is not None and not self._authorized(headers.get("authorization", "")):
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


class LoopbackHosts(RequestMiddleware):
    """ASGI middleware: answer only requests whose Host header is a loopback name.

    For a server without a token (DNS rebinding, see the module's docstring);
    any other Host gets 400.

    Args:
        app: The application to guard.
    """

    scope_types = frozenset({"http", "websocket"})

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 400."""
        host = Headers(scope=scope).get("host", "")
        # The name without its port: "127.0.0.1:8000", "[::1]:8000".
        name = host.partition("]")[0] + "]" if host.startswith("[") else host.partition(":")[0]
        if name in LOOPBACK_HOSTS:
            await self.app(scope, receive, send)
            return
        response = _refusal(
            400,
            "BadRequest",
            f"this server answers requests addressed to {', '.join(LOOPBACK_HOSTS)} only "
            f"(the Host header says {host[:100]!r}); a server reached by another name "
            "needs a token (--token)",
        )
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    """Raised by :class:`BodyLimit`'s ``receive``: the body is over the limit."""


# A refused body at most this many times the limit is read (and dropped) before
# the answer: a client still sending when the server closes gets a reset, and
# with it loses the answer.
_DRAIN_FACTOR = 16


class BodyLimit(RequestMiddleware):
    """ASGI middleware: no request body over ``max_body_bytes`` reaches the app (413).

    Reading a body whose Content-Length is over the limit fails before a byte
    of it reaches the app, a chunked one as soon as the bytes received pass
    the limit; the request is then answered 413 in the one JSON error shape,
    as the other guards answer, on every path (also when the app answered
    something of its own meanwhile, as a JSON-RPC endpoint does). What the
    client still sends of a body up to 16 times the limit is read and dropped
    first, so that it gets the answer rather than a reset connection.

    Args:
        app: The application to guard.
        max_body_bytes: The largest body accepted, in bytes.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        super().__init__(app)
        self.max_body_bytes = max_body_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request with a ``receive`` that counts the body."""
        limit = self.max_body_bytes
        declared = Headers(scope=scope).get("content-length", "")
        received = int(declared) if declared.isdigit() else 0
        refused = started = False
        body_done = False

        async def limited_receive() -> Message:
            nonlocal received, refused, body_done
            if received > limit:
                refused = True
                raise _BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                if not declared.isdigit():
                    received += len(message.get("body", b""))
                    if received > limit:
                        refused = True
                        raise _BodyTooLarge
            return message

        async def refuse() -> None:
            if not body_done and received <= _DRAIN_FACTOR * limit:
                with trio.move_on_after(_DRAIN_SECONDS):
                    while (await receive()).get("more_body", False):
                        pass
            over = f"the request body is over the server's limit of {limit:,} bytes"
            await _refusal(413, "ContentTooLarge", over)(scope, receive, send)

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused and not started:
                # The app answered the refusal in its own way: ours instead.
                started = True
                await refuse()
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            if started:
                raise
            await refuse()


_DRAIN_SECONDS = 5.0  # a client that stops sending gets its answer anyway


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
