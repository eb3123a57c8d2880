"""One agent's SDK conversation on its harness: opened, halted, closed, its files deleted.

An :class:`SdkConversation` is the SDK ``Agent`` behind one agy_trio agent,
with the work the SDK would do on the asyncio loop moved off it: the SDK
configuration is built in a worker thread, the harness is started through the
conversation's :class:`~agy_trio.adapters.antigravity.launcher.HarnessLauncher`
(never blocking, never leaked by a cancelled start), and at the end the
harness is taken away from the SDK's blocking shutdown and stopped in a worker
thread. The same object opens the conversation again after a failure
(:mod:`~agy_trio.adapters.antigravity.recovery`) or a clear.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from agy_trio.adapters.antigravity.config import (
    Endpoint,
    HarnessFolders,
    SdkAgentSpec,
    conversation_files,
    resolve_folders,
    sdk_agent_config,
)
from agy_trio.adapters.antigravity.context import BackendContext
from agy_trio.adapters.antigravity.errors import classify_error, describe, is_cancellation
from agy_trio.adapters.antigravity.launcher import (
    HarnessLauncher,
    current_launcher,
    detach_process,
)
from agy_trio.adapters.antigravity.mcp import McpLease
from agy_trio.adapters.antigravity.sdk import load_sdk
from agy_trio.core.mcp import McpStdioServer
from agy_trio.core.settings import AgentConfig
from agy_trio.errors import AgentNotFound, AgyError, BackendError, ConfigError

__all__ = ["SdkConversation"]

log = logging.getLogger("agy_trio.antigravity")


def _tool_list(tools: Sequence[Callable[..., Any]]) -> list[Callable[..., Any]]:
    return list(tools)


@attrs.define(eq=False)
class SdkConversation:
    """The SDK ``Agent`` of one agy_trio agent, and the harness it runs on.

    Touched only on the agent's host loop (or by a worker thread the loop is
    waiting for).

    Args:
        context: What the backend's agents share.
        agent_id: The agent's id, for the harness owner key and logs.
        config: The agent's configuration.
        endpoint: The endpoint ``config`` selects.
        conversation_id: The conversation to create or resume.
        sdk_tools: The agent's tools as SDK tool callables.
        authorize: The SDK ``ask_user`` handler for built-in tools.
        sdk_hooks: SDK hook objects answering the agent's hook points.

    Attributes:
        conv: The live SDK ``Conversation``, or None while no SDK agent is open.
        folders: The harness's folders (set by the first :meth:`open`).
    """

    context: BackendContext
    agent_id: str
    config: AgentConfig
    endpoint: Endpoint
    conversation_id: str
    sdk_tools: list[Callable[..., Any]] = attrs.field(converter=_tool_list)
    authorize: Callable[..., Any]
    sdk_hooks: list[Any] = attrs.field(factory=list, converter=list)
    owner: str = attrs.field(init=False)
    launcher: HarnessLauncher = attrs.field(init=False)
    folders: HarnessFolders | None = attrs.field(init=False, default=None)
    sdk_agent: Any = attrs.field(init=False, default=None)
    conv: Any = attrs.field(init=False, default=None)
    # Held while an SDK agent is open: its stdio MCP servers end when it does.
    mcp_lease: McpLease = attrs.field(init=False, factory=McpLease)

    @owner.default
    def _owner_key(self) -> str:
        return self.context.owner(self.agent_id)

    @launcher.default
    def _own_launcher(self) -> HarnessLauncher:
        return self.context.launcher(self.owner)

    async def open(self, *, resume: bool) -> None:
        """Start an SDK agent (a harness) on this conversation: create it, or resume it.

        Raises:
            AgentNotFound: ``resume`` and there is no such saved conversation.
            ConfigError: The SDK rejected the configuration, or the
                conversation exists already (when creating it).
            BackendError: The harness failed to start.
        """
        # Creating the folders, building the SDK's pydantic configuration and
        # the Agent (which deep copies it) are blocking or pure Python work
        # that takes milliseconds: off the loop.
        # Held here, on the loop, so that a close() racing this open releases
        # exactly what was held.
        lease = self.mcp_lease.hold() if self._has_stdio_mcp else None
        try:
            sdk_agent = await asyncio.get_running_loop().run_in_executor(
                self.context.pool.registry.executor, self._build_sdk_agent, resume, lease
            )
        except BaseException:
            self.mcp_lease.release()
            raise
        token = current_launcher.set(self.launcher)
        try:
            async with self.launcher.opening():
                await sdk_agent.__aenter__()
        except BaseException as exc:
            # The SDK's own clean-up skips cancellation and never reaps: make
            # sure no harness (nor MCP server) of this start-up survives.
            self.mcp_lease.release()
            self.launcher.kill()
            with contextlib.suppress(Exception):
                await self.launcher.release_async()
            if isinstance(exc, asyncio.CancelledError) and not is_cancellation(exc):
                raise
            raise self._start_error(exc, resume=resume) from exc
        finally:
            current_launcher.reset(token)
        self.sdk_agent = sdk_agent
        self.conv = sdk_agent.conversation

    def _build_sdk_agent(self, resume: bool, mcp_lease: str | None) -> Any:
        """The SDK ``Agent``, not yet started (blocking; runs in a worker thread)."""
        if self.folders is None:
            self.folders = resolve_folders(self.config, self.context.root, self.endpoint)
        if resume and not Path(self.folders.save_dir, f"{self.conversation_id}.db").is_file():
            # A harness that serves other conversations too refuses an unknown
            # one by closing its WebSocket, without saying why: ask the disk.
            raise AgentNotFound(f"no saved conversation {self.conversation_id!r} to resume")
        facts = self.context.pool.facts
        spec = SdkAgentSpec(
            config=self.config,
            endpoint=self.endpoint,
            folders=self.folders,
            conversation_id=self.conversation_id,
            resume=resume,
            tools=self.sdk_tools,
            authorize=self.authorize,
            hooks=self.sdk_hooks,
            owner=self.owner,
            harness_path=facts.binary_path if facts is not None else None,
            mcp_lease=mcp_lease,
        )
        return load_sdk().Agent(sdk_agent_config(spec))

    @property
    def _has_stdio_mcp(self) -> bool:
        return any(isinstance(server, McpStdioServer) for server in self.config.mcp_servers)

    def _start_error(self, exc: BaseException, *, resume: bool) -> BaseException:
        message = str(exc)
        if resume and "not found" in message:
            return AgentNotFound(f"no saved conversation {self.conversation_id!r} to resume")
        if "already exists" in message:
            return ConfigError(
                f"conversation {self.conversation_id!r} already exists", field="conversation_id"
            )
        if isinstance(exc, ValueError):
            return ConfigError(f"the SDK rejected the agent configuration: {message}")
        if isinstance(exc, RuntimeError) and not isinstance(exc, AgyError):
            return BackendError(f"the SDK harness failed to start: {message}")
        return classify_error(exc)

    async def halt(self) -> None:
        """Tell the SDK to stop the current turn (harmless when it is idle).

        The SDK's ``cancel()`` is the only thing that stops a turn in the
        harness; cancelling the task that reads the turn does not.
        """
        conv = self.conv
        if conv is None:
            return
        try:
            await asyncio.wait_for(conv.cancel(), self.context.settings.cancel_grace)
        except asyncio.CancelledError as exc:
            if not is_cancellation(exc):
                raise
        except Exception as exc:
            log.debug("agent %s: SDK cancel failed: %s", self.agent_id, describe(exc))

    async def until_idle(self, limit: float) -> bool:
        """Wait (at most ``limit`` seconds) until the harness has ended the last turn.

        A turn normally ends with the harness saying so. One whose halt the
        harness had not answered in time (stalled, or loaded) was given up on
        this side while it may still run there; a halt that lands later stops
        whatever runs then. Its remaining steps are read into the history
        here (its end included) before anything else is sent.

        Returns:
            Whether the harness is idle (also when nothing is open).
        """
        conv = self.conv
        if conv is None or conv.is_idle:
            return True

        async def drain() -> None:
            try:
                async for _ in conv.receive_steps():
                    pass
            except asyncio.CancelledError as exc:
                if not is_cancellation(exc):
                    raise
            except Exception as exc:  # the old turn's own end ("Turn cancelled")
                log.debug("agent %s: an earlier turn ended with %s", self.agent_id, describe(exc))
            await conv.wait_for_idle()

        try:
            await asyncio.wait_for(drain(), limit)
        except TimeoutError:
            return False
        return True

    async def close(self, *, keep_warm: bool = False) -> None:
        """Stop the SDK agent and its harness; never leaves the process behind.

        ``keep_warm``: the agent hibernates; a harness it leaves empty may
        stay up for the next wake (see :meth:`HarnessPool.release`).

        The SDK would wait for the harness with a blocking call (up to 180 s)
        on the loop, then join its stderr reader. The process is taken away
        from the SDK first (:func:`detach_process`), so that its shutdown does
        only the asynchronous part (end of session, WebSocket closed); then the
        conversation's place on its harness is given back, and a harness left
        without conversations has its stdin closed and is waited for in a
        worker thread, in the SDK's order, and killed if it has not exited
        within the backend's shutdown grace. Should the SDK's shutdown hang anyway, a
        timer cuts the conversation off its harness after the grace, which
        frees it.
        """
        sdk_agent, self.sdk_agent, self.conv = self.sdk_agent, None, None
        launcher, grace = self.launcher, self.context.settings.shutdown_grace
        stderr_readers: list[threading.Thread] = []
        detached = False
        if sdk_agent is not None:
            try:
                _, reader = detach_process(sdk_agent.conversation.connection)
            except Exception as exc:  # not the SDK this was written for: let it wait
                log.debug("agent %s: harness left to the SDK's shutdown: %s", self.agent_id, exc)
            else:
                detached = True
                if reader is not None:
                    stderr_readers.append(reader)
            watchdog: threading.Timer | asyncio.TimerHandle
            if detached:
                # Nothing the SDK does at shutdown blocks the loop without its
                # process: a loop timer will do (not a thread per agent).
                watchdog = asyncio.get_running_loop().call_later(grace, launcher.kill)
            else:
                watchdog = threading.Timer(grace, launcher.kill)
                watchdog.daemon = True
                watchdog.start()
            try:
                await sdk_agent.__aexit__(None, None, None)
            except asyncio.CancelledError as exc:
                launcher.kill()
                if not is_cancellation(exc):
                    raise
            except Exception as exc:
                # E.g. "Harness process exited with code -9" after a crash.
                log.debug("agent %s: SDK shutdown reported %s", self.agent_id, describe(exc))
            finally:
                watchdog.cancel()
        # The harness may live on for other agents: this agent's MCP servers
        # end now all the same.
        self.mcp_lease.release()
        if detached:
            await launcher.retire_async(grace, stderr_readers, keep_warm=keep_warm)
        else:
            launcher.kill()
            await launcher.release_async()

    async def remove_files(self) -> None:
        """Delete what the harness saved for this conversation (in a worker thread)."""
        await asyncio.get_running_loop().run_in_executor(
            self.context.pool.registry.executor, self._remove_files
        )

    def _remove_files(self) -> None:
        if self.folders is None:
            return  # never started: nothing saved
        for path in conversation_files(self.folders, self.conversation_id):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
