"""Where a command's agents talk to: options, environment and what is installed decide."""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

import attrs
import click

from agy_trio._open import open_runtime
from agy_trio.core.backend import Backend
from agy_trio.core.runtime import Runtime
from agy_trio.core.settings import AgentConfig, RuntimeConfig

__all__ = ["Endpoint", "backend_options", "choose_endpoint", "open_for"]

_BACKENDS = ("auto", "scripted", "antigravity")

F = TypeVar("F", bound=Callable[..., Any])


@attrs.define
class Endpoint:
    """Where agents talk to: decided from options, environment and what is installed."""

    backend: str
    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    offline_server: bool = False

    def describe(self) -> str:
        """One line for people: the backend and the model endpoint."""
        if self.backend == "scripted":
            return "scripted backend (in-process, deterministic)"
        if self.offline_server:
            return f"real SDK -> local model server at {self.base_url} (offline default)"
        if self.base_url:
            return f"real SDK -> OpenAI-compatible endpoint {self.base_url}"
        return "real SDK -> Gemini API"


def _sdk_installed() -> bool:
    try:
        importlib.import_module("google.antigravity")
    except ImportError:
        return False
    return True


def choose_endpoint(backend: str, base_url: str | None, model: str | None) -> Endpoint:
    """The endpoint for the command-line options ``--backend``, ``--base-url`` and ``--model``."""
    api_key = os.environ.get("GEMINI_API_KEY") or None
    if backend == "scripted":
        return Endpoint("scripted")
    if backend == "auto" and not _sdk_installed():
        return Endpoint("scripted")
    if base_url:
        return Endpoint("antigravity", base_url=base_url, model=model or "local-model")
    if api_key:
        return Endpoint("antigravity", model=model, api_key=api_key)
    return Endpoint("antigravity", model=model or "local-model", offline_server=True)


@asynccontextmanager
async def open_for(
    endpoint: Endpoint, config: RuntimeConfig
) -> AsyncIterator[tuple[Runtime, AgentConfig]]:
    """Open a runtime (and the local model server when needed) for ``endpoint``.

    Yields:
        The runtime and the agent settings that point at the endpoint.
    """
    if endpoint.backend == "scripted":
        from agy_trio.testing.scripted import ScriptedBackend

        async with open_runtime(config, backend=ScriptedBackend()) as rt:
            yield rt, AgentConfig()
        return
    from agy_trio.adapters.antigravity import AntigravityBackend
    from agy_trio.testing.model_server import open_model_server

    async with AsyncExitStack() as stack:
        if endpoint.offline_server:
            server = await stack.enter_async_context(open_model_server())
            endpoint.base_url = server.url
        backend: Backend = AntigravityBackend()
        agent_config = AgentConfig(
            model=endpoint.model, base_url=endpoint.base_url, api_key=endpoint.api_key
        )
        rt = await stack.enter_async_context(open_runtime(config, backend=backend))
        yield rt, agent_config


def backend_options(fn: F) -> F:
    """The ``--backend``, ``--base-url`` and ``--model`` options of a command."""
    fn = click.option(
        "--backend",
        type=click.Choice(_BACKENDS),
        default="auto",
        show_default=True,
        help="auto: the real SDK when installed (offline against the local model server "
        "unless --base-url or GEMINI_API_KEY is given), else the scripted backend.",
    )(fn)
    fn = click.option("--base-url", default=None, help="OpenAI-compatible endpoint URL.")(fn)
    fn = click.option("--model", default=None, help="Model name for the endpoint.")(fn)
    return fn
