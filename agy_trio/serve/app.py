"""create_app(): the HTTP API, the web page and the metrics over one runtime, as a Starlette app.

Starlette runs on Trio through anyio, so every handler here is plain Trio code
calling the runtime's public API; hypercorn's Trio worker serves it (see
:func:`agy_trio.serve.serve`). Routing, request parsing and responses are
Starlette's; this module only maps the API's paths onto runtime calls.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.resources
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from agy_trio.core.agent import AgentHandle
from agy_trio.core.fan_out import each_within
from agy_trio.core.runtime import Runtime
from agy_trio.core.settings import AgentConfig
from agy_trio.core.validation import positive_int
from agy_trio.errors import AgentNotFound, AgyError, ConfigError, RuntimeClosed
from agy_trio.serve import http_errors, tracecontext
from agy_trio.serve.a2a import A2AEndpoint
from agy_trio.serve.ag_ui import AgUiEndpoint
from agy_trio.serve.agent_body import HTTP_SETTABLE_FIELDS, agent_config_from_body
from agy_trio.serve.approvals import DEFAULT_APPROVAL_TIMEOUT, Approvals
from agy_trio.serve.http_errors import ErrorAnswers
from agy_trio.serve.json_body import JsonBodyError, parse_json
from agy_trio.serve.mcp_server import McpEndpoint
from agy_trio.serve.metrics import CONTENT_TYPE, RuntimeCollector, registry_for, render_metrics
from agy_trio.serve.profile import ServedProfile
from agy_trio.serve.responses import ResponsesAPI
from agy_trio.serve.security import AccessControl, BodyLimit, LoopbackHosts
from agy_trio.serve.stream import ChatStream, LiveStreams
from agy_trio.serve.turn_api import TurnEndpoints
from agy_trio.serve.turn_log import TurnLogs
from agy_trio.serve.turns import DEFAULT_REATTACH_GRACE, TurnRunner
from agy_trio.serve.wire import Redactor

__all__ = ["DEFAULT_MAX_BODY_BYTES", "HTTP_SETTABLE_FIELDS", "SHUTDOWN_GRACE", "create_app"]

log = logging.getLogger("agy_trio.serve")

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""Largest request body accepted, in bytes; larger ones get 413."""

SHUTDOWN_GRACE = 5.0
"""Seconds a stopping server gives live streams, then agents, to end."""

# The status tables, also under the names they had when this module held them.
_STATUS_OF_ERROR = http_errors.STATUS_OF_ERROR
_HTTP_ERROR_TYPES = http_errors.HTTP_ERROR_TYPES

# ---------------------------------------------------------------------------- the page


def _load_page() -> tuple[str, str]:
    """The page's HTML, and a Content-Security-Policy that allows its own inline code only."""
    html = importlib.resources.files("agy_trio.serve").joinpath("static/index.html").read_text()

    def hashes(tag: str) -> str:
        found = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
        return " ".join(
            "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
            for body in found
        )

    policy = (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return html, policy


# ---------------------------------------------------------------------------- the service


class _Service:
    """The endpoints, and what they share: the runtime, defaults, live streams."""

    def __init__(
        self,
        runtime: Runtime,
        token: str | None,
        profile: ServedProfile,
        *,
        reattach_grace: float = DEFAULT_REATTACH_GRACE,
        approval_timeout: float = DEFAULT_APPROVAL_TIMEOUT,
    ) -> None:
        self.runtime = runtime
        self.profile = profile
        self.defaults = profile.config
        self.streams = LiveStreams()
        self._created: set[str] = set()
        self._closed = False
        self.redact = Redactor(lambda: self._secrets(token))
        self.turn_logs = TurnLogs()
        self.turns = TurnRunner(self.turn_logs, self.redact, reattach_grace=reattach_grace)
        self.approvals = Approvals(self.turns, timeout=approval_timeout)
        self.page, self.page_policy = _load_page()
        self.metrics = registry_for(
            RuntimeCollector(runtime.statistics, lambda: len(self.streams), self._disconnects)
        )

    def _disconnects(self) -> int:
        return self.streams.disconnects

    def _secrets(self, token: str | None) -> Iterator[str | None]:
        yield token
        yield self.defaults.api_key
        for handle in self.runtime.agents:
            yield handle.config.api_key

    # -- helpers

    def _check_open(self) -> None:
        if self._closed or self.streams.closing:
            raise RuntimeClosed("the server is shutting down")

    def _agent(self, request: Request) -> AgentHandle:
        self._check_open()
        return self.runtime.agent(request.path_params["agent_id"])

    async def _json_object(self, request: Request, *, empty_ok: bool) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            if empty_ok:
                return {}
            raise ConfigError('the request has no body: send a JSON object, e.g. {"prompt": "hi"}')
        try:
            data = parse_json(raw)
        except JsonBodyError as exc:
            raise ConfigError(f"the body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"the body must be a JSON object, got {type(data).__name__}")
        return data

    # -- plain endpoints

    async def healthz(self, request: Request) -> Response:
        await trio.lowlevel.checkpoint()
        return JSONResponse({"status": "ok"})

    async def index(self, request: Request) -> Response:
        await trio.lowlevel.checkpoint()
        return HTMLResponse(
            self.page,
            headers={
                "content-security-policy": self.page_policy,
                "x-content-type-options": "nosniff",
                "referrer-policy": "no-referrer",
                "cache-control": "no-cache",
            },
        )

    async def metrics_text(self, request: Request) -> Response:
        await trio.lowlevel.checkpoint()
        return Response(render_metrics(self.metrics), media_type=CONTENT_TYPE)

    # -- the API

    async def create_agent(self, request: Request) -> Response:
        self._check_open()
        body = await self._json_object(request, empty_ok=True)
        config = agent_config_from_body(self.defaults, body)
        handle = await self.runtime.create_agent(config)
        self._created.add(handle.agent_id)
        return JSONResponse(
            {"id": handle.agent_id, "name": config.name, "conversation_id": handle.conversation_id},
            201,
            headers={"location": f"/v1/agents/{handle.agent_id}"},
        )

    async def list_agents(self, request: Request) -> Response:
        self._check_open()
        handles = self.runtime.agents
        rows: list[dict[str, Any] | None] = [None] * len(handles)
        failures: list[AgyError] = []

        async def describe(index: int, handle: AgentHandle) -> None:
            try:
                idle = await handle.is_idle()
                turns = await handle.turn_count()
            except AgentNotFound:
                return  # ended while the list was being made
            except AgyError as exc:
                failures.append(exc)
                return
            rows[index] = {
                "id": handle.agent_id,
                "name": handle.config.name,
                "idle": idle,
                "turns": turns,
            }

        async with trio.open_nursery() as nursery:
            for index, handle in enumerate(handles):
                nursery.start_soon(describe, index, handle)
        if failures:
            raise failures[0]
        return JSONResponse([row for row in rows if row is not None])

    async def chat(self, request: Request) -> Response:
        handle = self._agent(request)
        body = await self._json_object(request, empty_ok=False)
        for name in sorted(body):
            if name != "prompt":
                raise ConfigError("unknown chat field; the body is {'prompt': '...'}", field=name)
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ConfigError("must be a non-empty string", field="prompt")
        self._check_open()
        _, reader = await self.turns.start(handle, prompt)
        return ChatStream(reader, self.streams, self.redact)

    async def cancel(self, request: Request) -> Response:
        await self._agent(request).cancel()
        return Response(status_code=204)

    async def history(self, request: Request) -> Response:
        messages = await self._agent(request).history()
        return JSONResponse([{"role": m.role, "text": m.text} for m in messages])

    async def delete_agent(self, request: Request) -> Response:
        handle = self._agent(request)
        await handle.delete()
        self._created.discard(handle.agent_id)
        return Response(status_code=204)

    # -- stopping

    async def aclose(self, grace: float = SHUTDOWN_GRACE) -> None:
        """End live streams with RuntimeClosed, then shut down the agents created over HTTP.

        Agents made by the embedding program itself are left alone. Idempotent.
        """
        self._closed = True
        await self.turns.close(grace)
        await self.streams.close(grace)
        created, self._created = self._created, set()

        async def end(agent_id: str) -> None:
            with contextlib.suppress(AgentNotFound, RuntimeClosed):
                await self.runtime.agent(agent_id).shutdown()

        if not await each_within(grace, end, created):
            log.warning("agents created over HTTP did not shut down within %g s", grace)


# ---------------------------------------------------------------------------- the app


def create_app(
    runtime: Runtime,
    *,
    token: str | None = None,
    defaults: AgentConfig | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    reattach_grace: float = DEFAULT_REATTACH_GRACE,
    approval_timeout: float = DEFAULT_APPROVAL_TIMEOUT,
    profile: ServedProfile | None = None,
) -> Starlette:
    """The ASGI app serving ``runtime``: the JSON and SSE API, the web page and the metrics.

    Run it with :func:`agy_trio.serve.serve` (hypercorn's Trio worker, in your
    nursery), or with any ASGI server that runs it on Trio. Further ASGI
    middleware can be added with ``app.add_middleware(...)`` before it serves.

    Args:
        runtime: The runtime whose agents the API drives.
        token: When given, every ``/v1/*`` request needs ``Authorization: Bearer
            TOKEN``. Without one, only requests addressed to a loopback host
            name are answered.
        defaults: The agent configuration that ``POST /v1/agents`` bodies are
            applied to (endpoint, model, key); ``AgentConfig()`` when omitted.
        max_body_bytes: Largest request body accepted; larger ones get 413.
        reattach_grace: Seconds a turn goes on once its last reader left (a
            client may reconnect with ``Last-Event-ID`` meanwhile); 0 cancels
            it at once.
        approval_timeout: Seconds a tool call held by a handler-less
            ``ask_user`` rule waits for an answer before it is denied.
        profile: The served profile (name, description, and the
            configuration new agents start from); give it or ``defaults``,
            not both. Without either: ``ServedProfile()``, named ``agy``.

    Returns:
        A Starlette application. Leaving its lifespan (the server stopping)
        ends live chat streams with an ``error`` event of type
        ``RuntimeClosed`` and shuts down the agents created over HTTP.

    Raises:
        ConfigError: An argument is invalid.
    """
    if not isinstance(runtime, Runtime):
        raise ConfigError(f"expected a Runtime, got {type(runtime).__name__}", field="runtime")
    if defaults is not None and not isinstance(defaults, AgentConfig):
        raise ConfigError(
            f"expected an AgentConfig, got {type(defaults).__name__}", field="defaults"
        )
    if profile is None:
        profile = ServedProfile(config=defaults or AgentConfig())
    elif not isinstance(profile, ServedProfile):
        raise ConfigError(
            f"expected a ServedProfile, got {type(profile).__name__}", field="profile"
        )
    elif defaults is not None:
        raise ConfigError("give the profile or the defaults, not both", field="defaults")
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise ConfigError("must be a non-empty string or None", field="token")
    positive_int(max_body_bytes, "max_body_bytes")
    service = _Service(
        runtime,
        token,
        profile,
        reattach_grace=reattach_grace,
        approval_timeout=approval_timeout,
    )
    # The agent protocols, each rendering the same served turns.
    mcp = McpEndpoint(service, profile.name)
    a2a = A2AEndpoint(service, profile.name, token)
    responses = ResponsesAPI(service, profile.name)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Served turns run here, in the app's own nursery, not in the request
        # that started them: a turn outlives its first reader's connection.
        async with (
            trio.open_nursery() as nursery,
            mcp.running(),
            a2a.running(),
            responses.running(),
        ):
            await nursery.start(service.turns.run)
            # While it serves, the server answers handler-less ask_user rules.
            runtime.set_approver(service.approvals.ask)
            try:
                yield
            finally:
                if runtime.approver == service.approvals.ask:
                    runtime.set_approver(None)
                with trio.CancelScope(shield=True):
                    await service.aclose()
                nursery.cancel_scope.cancel()

    routes = [
        Route("/", service.index, methods=["GET"]),
        Route("/healthz", service.healthz, methods=["GET"]),
        Route("/metrics", service.metrics_text, methods=["GET"]),
        Route("/v1/agents", service.create_agent, methods=["POST"]),
        Route("/v1/agents", service.list_agents, methods=["GET"]),
        Route("/v1/agents/{agent_id}", service.delete_agent, methods=["DELETE"]),
        Route("/v1/agents/{agent_id}/chat", service.chat, methods=["POST"]),
        Route("/v1/agents/{agent_id}/cancel", service.cancel, methods=["POST"]),
        Route("/v1/agents/{agent_id}/history", service.history, methods=["GET"]),
        *TurnEndpoints(service).routes(),
        *AgUiEndpoint(service).routes(),
        *responses.routes(),
        *a2a.routes(),
        *mcp.routes(),
    ]
    middleware = [
        Middleware(AccessControl, token=token),
        Middleware(BodyLimit, max_body_bytes=max_body_bytes),
    ]
    if tracecontext.available:
        middleware.insert(0, Middleware(tracecontext.TraceContext))
    if token is None:
        middleware.insert(0, Middleware(LoopbackHosts))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=ErrorAnswers(service.redact).handlers(),
        lifespan=lifespan,
    )
    app.state.agy_trio = service
    return app
