"""Harness processes shared by many conversations: :class:`HarnessPool`.

The SDK's ``localharness`` is a WebSocket server, and every conversation is a
WebSocket of its own carrying its own ``InitializeConversationEvent`` (model,
endpoint, API key, tools, system instructions, workspaces, app data folder).
What belongs to the *process* is only its binary, its environment (``HOME``
and the rest) and its storage directory (where every conversation's ``.db``
lands). So conversations whose process settings agree (the same
:attr:`~agy_trio.adapters.antigravity.launcher.HarnessSpec.key`) can share one
process, and a pool of a few processes serves hundreds of agents for the cost
(memory, start-up CPU) of a few.

How a conversation gets its harness (:meth:`HarnessPool.lease`):

* conversations are grouped by their spec's key; groups never share a process;
* within a group, a conversation goes to a new process while the group has
  fewer than ``harness_processes`` processes (spreading the group over that
  many), else to the one with the fewest conversations that has room
  (fewer than ``agents_per_harness``); when every process of the group is
  full, another process starts. ``agents_per_harness=1`` therefore gives each
  conversation its own process;
* conversations arriving while a process starts wait for that start instead
  of starting processes of their own;
* a process that died (a crash, a kill) takes no new conversation: the next
  lease in its group starts a fresh one;
* at most :data:`OPENING_LIMIT` conversations are being opened on one process
  at a time (see :meth:`~agy_trio.adapters.antigravity.launcher.HarnessLauncher.opening`),
  so that the conversations streaming on it are not held up.

A conversation gives its place back with :meth:`HarnessPool.release`; the
process goes when its last conversation has gone: gently (end-of-file on its
stdin, a grace, then a kill) when the conversation ended normally, at once
otherwise. One exception: a process whose last conversation left to hibernate
(``keep_warm``) stays up, empty, as the pool's one *warm* harness, so that the
next wake or new conversation of its group does not pay a process start (a few
hundred ms); it goes when the pool closes, or when another group's harness
becomes the warm one. Every process is recorded in the backend's
:class:`~agy_trio.adapters.antigravity.harness.HarnessRegistry` under an owner
name of its own (``<backend tag>/harness-<n>``, also set as
:data:`~agy_trio.adapters.antigravity.harness.HARNESS_OWNER_ENV` in its
environment), so the registry's kills, the backend's close and the orphan
sweep all reach it. Its stderr goes to the backend's
:class:`~agy_trio.adapters.antigravity.stderr.StderrCollector`.

The pool is shared by every host loop of a backend: its tables are guarded by
a lock, and a process start (a blocking ``Popen`` and handshake) runs in one
of the registry's worker threads, whose result any loop can wait for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import os
import select
import struct
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import Any

import attrs

from agy_trio.adapters.antigravity.harness import HarnessRegistry
from agy_trio.adapters.antigravity.harness_spec import Harness, HarnessSpec, SdkFacts
from agy_trio.adapters.antigravity.stderr import StderrCollector
from agy_trio.errors import ChannelClosed, ConfigError

__all__ = [
    "OPENING_LIMIT",
    "HarnessLease",
    "HarnessPool",
    "PoolLimits",
    "PooledHarness",
    "spawn_harness",
]

log = logging.getLogger("agy_trio.antigravity.harness")

# How long a harness may take to write its first answer (port and key) on
# stdout before its start counts as failed.
_HANDSHAKE_TIMEOUT = 60.0

OPENING_LIMIT = 2
"""Most conversations being opened on one harness at once.

A harness setting up a conversation (its database, its configuration) holds
back the steps of the conversations already streaming on it: with 50
conversations opened at once, a running stream stalled 100-200 ms; two at a
time, 2-8 ms, and the 50 were open as soon (see docs/performance.md).
"""


def _at_least_one(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"must be an integer >= 1, got {value!r}", field=attribute.name)


@attrs.frozen
class PoolLimits:
    """How a :class:`HarnessPool` spreads conversations over processes.

    Attributes:
        agents_per_harness: Most conversations one harness process carries.
        harness_processes: How many processes each group of conversations
            (those agreeing on their process settings) is spread over; more
            start only when all of these are full.
    """

    agents_per_harness: int = attrs.field(validator=_at_least_one)
    harness_processes: int = attrs.field(validator=_at_least_one)


class PooledHarness:
    """One harness process of a pool and how many conversations it carries.

    Guarded by the pool's lock, except :attr:`started`, a future any thread may wait on.

    Attributes:
        owner: Its name in the registry and in its environment.
        key: The process settings of the conversations it serves.
        started: Completes with the running :class:`Harness` (or the start's error).
        conversations: Conversations holding (or waiting for) a place on it.
        retired: Set once it takes no new conversation (its last one left, or it died).
        opening: Permits to open a conversation on it (:data:`OPENING_LIMIT`),
            for the tasks of any host loop.
    """

    def __init__(self, owner: str, key: tuple[object, ...]) -> None:
        self.owner = owner
        self.key = key
        self.started: concurrent.futures.Future[Harness] = concurrent.futures.Future()
        self.conversations = 0
        self.retired = False
        import aiologic  # with the SDK, in the antigravity extra

        self.opening = aiologic.BoundedSemaphore(OPENING_LIMIT)

    @property
    def harness(self) -> Harness | None:
        """The running harness, once its start succeeded."""
        if not self.started.done() or self.started.cancelled():
            return None
        if self.started.exception() is not None:
            return None
        return self.started.result()

    def takes_conversations(self) -> bool:
        """Whether a new conversation may be placed here (starting or running, not retired)."""
        if self.retired:
            return False
        if not self.started.done():
            return True
        harness = self.harness
        return harness is not None and harness.process.poll() is None


class HarnessLease:
    """One conversation's place on a pooled harness; give it back with :meth:`HarnessPool.release`.

    Attributes:
        entry: The pooled process.
        harness: The running harness (process, port, token).
        released: Whether the place was given back.
    """

    def __init__(self, entry: PooledHarness, harness: Harness) -> None:
        self.entry = entry
        self.harness = harness
        self.released = False

    @property
    def alive(self) -> bool:
        """Whether the harness process is still running."""
        return self.harness.process.poll() is None


def spawn_harness(
    registry: HarnessRegistry, owner: str, argv: Sequence[str], env: Any, payload: bytes
) -> tuple[subprocess.Popen[bytes], bytes]:
    """Start a harness, record it under ``owner``, send ``payload``, return it with its answer.

    Blocking (``Popen`` and reading the harness's first answer): run it in a
    worker thread. A harness that does not answer within a minute is killed.

    Raises:
        RuntimeError: The harness did not answer; it was killed (reap it with
            the registry).
    """
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else None,
        # A session of its own: the terminal's Ctrl-C (SIGINT to the foreground
        # process group) reaches Python only, which shuts the harness down in
        # order; a harness killed by it mid-turn would fail the turn instead.
        start_new_session=True,
    )
    if not registry.register(owner, process):
        process.kill()
    assert process.stdin is not None
    assert process.stdout is not None
    # A harness that never answers must not block this thread forever.
    deadline = time.monotonic() + _HANDSHAKE_TIMEOUT
    try:
        process.stdin.write(struct.pack("<I", len(payload)) + payload)
        process.stdin.flush()
    except OSError as exc:
        _kill_quietly(process)
        raise RuntimeError(f"Failed to send the harness its configuration: {exc}") from exc
    raw_length = _read_exactly(process, 4, deadline)
    if len(raw_length) < 4:
        raise RuntimeError(f"Failed to read length from stdout. Stderr: {_drain_stderr(process)}")
    (length,) = struct.unpack("<I", raw_length)
    answer = _read_exactly(process, length, deadline)
    if len(answer) < length:
        raise RuntimeError(f"The harness stopped during start-up. Stderr: {_drain_stderr(process)}")
    return process, answer


def _read_exactly(process: subprocess.Popen[bytes], size: int, deadline: float) -> bytes:
    """Read ``size`` bytes of the harness's stdout, fewer at end-of-file; kill it at ``deadline``.

    Waits with ``poll`` rather than a timer thread per start. Not ``select``:
    it fails ("filedescriptor out of range") once the process has more than
    1,024 descriptors open, which a backend with a few thousand conversations
    (a WebSocket each) has.
    """
    assert process.stdout is not None
    fd = process.stdout.fileno()
    waiter = select.poll()
    waiter.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    data = b""
    while len(data) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            _kill_quietly(process)  # its stdout then ends
            remaining = 5.0
        if not waiter.poll(remaining * 1000):
            continue
        chunk = os.read(fd, size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _frozen_prefix(prefix: Sequence[str]) -> tuple[str, ...]:
    return tuple(prefix)


def _own_collector_if_none(stderr: StderrCollector | None) -> StderrCollector:
    return stderr if stderr is not None else StderrCollector()


@attrs.define(eq=False)
class HarnessPool:
    """The harness processes of one backend, shared by its conversations.

    Args:
        registry: Where every process is recorded (and whose threads start them).
        tag: The backend's tag; process owners are ``<tag>/harness-<n>``.
        prefix: The harness command prefix (see
            :func:`~agy_trio.adapters.antigravity.harness.pdeathsig_prefix`).
        facts: The harness binary and SDK version, looked up once.
        limits: How conversations are spread over processes.
        stderr: Where the processes' stderr is drained (None: a collector of
            the pool's own, closed by :meth:`close`).
        shutdown_grace: Seconds a harness left without conversations gets to
            exit on its own before it is killed.
    """

    registry: HarnessRegistry
    tag: str
    prefix: tuple[str, ...] = attrs.field(converter=_frozen_prefix)
    facts: SdkFacts | None
    limits: PoolLimits
    stderr: StderrCollector = attrs.field(default=None, converter=_own_collector_if_none)
    shutdown_grace: float = 5.0
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)
    _groups: dict[tuple[object, ...], list[PooledHarness]] = attrs.field(init=False, factory=dict)
    _live: dict[str, PooledHarness] = attrs.field(init=False, factory=dict)
    _numbers: itertools.count[int] = attrs.field(init=False, factory=lambda: itertools.count(1))
    _closed: bool = attrs.field(init=False, default=False)
    # The empty harness kept running for the next wake (see release), if any.
    _warm: PooledHarness | None = attrs.field(init=False, default=None)

    # -- placing a conversation

    async def lease(self, spec: HarnessSpec) -> HarnessLease:
        """A place on a running harness for a conversation with process settings ``spec``.

        If the caller is cancelled while the harness starts, its place is
        given back; a harness nobody else waits for is then killed and reaped
        before the cancellation propagates.

        Raises:
            RuntimeError: The harness failed to start.
            ChannelClosed: The pool is closed.
        """
        entry, start = self._reserve(spec)
        if start:
            try:
                self.registry.executor.submit(self._start, entry, spec)
            except RuntimeError as exc:  # the executor is shut down: the backend is closing
                entry.started.set_exception(ChannelClosed(f"the harness pool is closed: {exc}"))
        try:
            harness = await asyncio.shield(asyncio.wrap_future(entry.started))
        except BaseException:
            await self._give_back(entry, grace=None)
            raise
        return HarnessLease(entry, harness)

    def _reserve(self, spec: HarnessSpec) -> tuple[PooledHarness, bool]:
        """Count a conversation on a harness of its group; say whether that harness must start."""
        with self._lock:
            if self._closed:
                raise ChannelClosed("the harness pool is closed")
            group = self._groups.setdefault(spec.key, [])
            group[:] = [h for h in group if h.takes_conversations()]
            roomy = [h for h in group if h.conversations < self.limits.agents_per_harness]
            start = not roomy or len(group) < self.limits.harness_processes
            if start:
                entry = PooledHarness(f"{self.tag}/harness-{next(self._numbers)}", spec.key)
                group.append(entry)
                self._live[entry.owner] = entry
            else:
                entry = min(roomy, key=lambda h: h.conversations)
            if entry is self._warm:
                self._warm = None  # in use again
            entry.conversations += 1
            return entry, start

    def _start(self, entry: PooledHarness, spec: HarnessSpec) -> None:
        """Start ``entry``'s process (in a worker thread); complete its future either way."""
        from google.antigravity.proto import localharness_pb2

        if not entry.started.set_running_or_notify_cancel():
            return
        try:
            owned = spec.owned_by(entry.owner)
            process, answer = spawn_harness(
                self.registry, entry.owner, owned.argv, owned.env, owned.payload
            )
            output_config = localharness_pb2.OutputConfig()
            output_config.ParseFromString(answer)
        except BaseException as exc:
            self.registry.release(entry.owner)
            with self._lock:
                entry.retired = True
            entry.started.set_exception(exc)
            return
        if process.stderr is not None:
            stream, process.stderr = process.stderr, None
            try:
                self.stderr.watch(entry.owner, stream)
            except OSError as exc:  # no pipe for the collector's wake-ups: fds exhausted
                # Left open (a closed stderr would kill the harness at its next
                # line) and unread: it writes a few lines per start.
                log.warning("harness %s: its stderr is not drained: %s", entry.owner, exc)
                process.stderr = stream
        log.debug("harness %s started: pid %d", entry.owner, process.pid)
        entry.started.set_result(Harness(process, output_config.port, output_config.api_key))

    # -- giving a place back

    async def release(
        self, lease: HarnessLease, *, grace: float | None, keep_warm: bool = False
    ) -> list[int]:
        """Give ``lease`` back; the harness goes if it was its last conversation.

        Args:
            lease: The place to give back (a second release does nothing).
            grace: Seconds the harness, if now unused, gets to exit on its own
                after end-of-file on its stdin; None to kill it at once.
            keep_warm: The conversation hibernates: a harness it leaves empty
                stays up as the pool's warm harness (the one before, of
                another group, goes), unless it is dying or the pool closing.

        Returns:
            The PIDs that had to be killed.
        """
        if lease.released:
            await asyncio.sleep(0)
            return []
        lease.released = True
        return await self._give_back(lease.entry, grace=grace, keep_warm=keep_warm)

    async def _give_back(
        self, entry: PooledHarness, *, grace: float | None, keep_warm: bool = False
    ) -> list[int]:
        with self._lock:
            entry.conversations -= 1
            last = entry.conversations == 0
            cooled: PooledHarness | None = None
            if (
                last
                and keep_warm
                and grace is not None
                and not self._closed
                and entry.takes_conversations()
            ):
                cooled, self._warm = self._warm, entry
                last = False
            if last:
                self._unplace(entry)
            if cooled is not None:
                self._unplace(cooled)  # the harness kept warm before goes
        if cooled is not None:
            await self._retire(cooled, grace)
        if not last:
            await asyncio.sleep(0)
            return []
        return await self._retire(entry, grace)

    def _unplace(self, entry: PooledHarness) -> None:
        """Take ``entry`` out of its group: no new conversation goes there (lock held)."""
        entry.retired = True
        if entry is self._warm:
            self._warm = None
        group = self._groups.get(entry.key, [])
        if entry in group:
            group.remove(entry)
            if not group:
                del self._groups[entry.key]

    async def _retire(self, entry: PooledHarness, grace: float | None) -> list[int]:
        """Stop an unplaced harness and forget it."""
        try:
            return await self._stop(entry, grace)
        finally:
            with self._lock:
                self._live.pop(entry.owner, None)
            self.stderr.forget(entry.owner)

    async def retire_warm(self) -> list[int]:
        """Stop the harness kept warm, if any (gently; the backend closes).

        Returns:
            The PIDs that had to be killed.
        """
        with self._lock:
            warm = self._warm
            if warm is not None:
                self._unplace(warm)
        if warm is None:
            await asyncio.sleep(0)
            return []
        return await self._retire(warm, self.shutdown_grace)

    async def _stop(self, entry: PooledHarness, grace: float | None) -> list[int]:
        """Stop ``entry``'s process, whatever state its start is in; reap it."""
        harness = entry.harness
        if grace is not None and harness is not None and harness.process.poll() is None:
            log.debug("harness %s: its last conversation left, retiring it", entry.owner)
            return await self.registry.retire_async(entry.owner, grace)
        if harness is not None and harness.process.poll() is not None:
            tail = self.stderr.tail(entry.owner)
            if harness.process.returncode not in (0, None) and not self._closed:
                # One short line; its Go log (long lines) only at DEBUG, as the rest of it.
                log.warning(
                    "harness %s (pid %d) had exited with code %s",
                    entry.owner,
                    harness.process.pid,
                    harness.process.returncode,
                )
                log.debug(
                    "harness %s: its last stderr lines: %s", entry.owner, " | ".join(tail[-5:])
                )
        # Still starting (a cancelled lease), failed, dead or to be killed now.
        self.registry.abandon(entry.owner)
        self.registry.kill(entry.owner)
        with contextlib.suppress(BaseException):
            await asyncio.wrap_future(entry.started)
        return await self.registry.release_async(entry.owner)

    def kill_if_alone(self, lease: HarnessLease) -> None:
        """Kill ``lease``'s process now if no other conversation is on it (any thread)."""
        with self._lock:
            alone = lease.entry.conversations <= 1 and not lease.released
        if alone:
            self.registry.kill(lease.entry.owner)

    # -- introspection and end

    def loads(self) -> list[tuple[int, int]]:
        """Each running harness's PID with the number of conversations on it."""
        with self._lock:
            entries = list(self._live.values())
        loads = []
        for entry in entries:
            harness = entry.harness
            if harness is not None and harness.process.poll() is None:
                loads.append((harness.process.pid, entry.conversations))
        return loads

    def close(self) -> None:
        """Take no more conversations; stop draining stderr (blocking, briefly).

        The processes themselves are the registry's to kill (its ``close``).
        """
        with self._lock:
            self._closed = True
        self.stderr.close()


def _kill_quietly(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        process.kill()


def _drain_stderr(process: subprocess.Popen[bytes]) -> str:
    _kill_quietly(process)
    if process.stderr is None:
        return ""
    with contextlib.suppress(OSError, ValueError):
        return process.stderr.read().decode("utf-8", errors="replace")
    return ""
