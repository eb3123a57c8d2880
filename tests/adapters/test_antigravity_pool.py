"""The harness pool and the conversation launcher, against a stand-in harness.

The stand-in speaks the real start-up protocol (a length-prefixed
``InputConfig`` on stdin, an ``OutputConfig`` with port and token on stdout),
serves WebSockets on that port (echoing what it gets, checking the token), and
exits on end-of-file on its stdin, like ``localharness``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websockets

from agy_trio.adapters.antigravity.harness import HARNESS_OWNER_ENV, HarnessRegistry
from agy_trio.adapters.antigravity.launcher import (
    ConversationProcess,
    HarnessLauncher,
    HarnessSpec,
    detach_process,
)
from agy_trio.adapters.antigravity.pool import HarnessLease, HarnessPool, PoolLimits
from agy_trio.adapters.antigravity.stderr import StderrCollector
from agy_trio.errors import ConfigError
from tests.adapters.harness_support import (
    alive,
    on_asyncio,
    run_counting_loop_ticks,
    wait_until,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")

FAKE_HARNESS = r"""
import asyncio, os, struct, sys
import websockets
from google.antigravity.proto import localharness_pb2

n = struct.unpack("<I", sys.stdin.buffer.read(4))[0]
config = localharness_pb2.InputConfig()
config.ParseFromString(sys.stdin.buffer.read(n))
sys.stderr.write(f"owner {config.env.get('AGY_TRIO_HARNESS_OWNER')}\n")
sys.stderr.flush()
if os.environ.get("FAKE_FAIL"):
    sys.stderr.write("no config for me\n")
    sys.exit(3)


async def main():
    async def echo(ws):
        if ws.request.headers.get("x-goog-api-key") != "token":
            await ws.close(4001)
            return
        async for message in ws:
            await ws.send(message)

    async with websockets.serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        await asyncio.sleep(float(os.environ.get("FAKE_DELAY", "0")))
        gate = os.environ.get("FAKE_GATE")  # answer only once the test opens it
        while gate and not os.path.exists(gate):
            await asyncio.sleep(0.01)
        answer = localharness_pb2.OutputConfig(port=port, api_key="token").SerializeToString()
        sys.stdout.buffer.write(struct.pack("<I", len(answer)) + answer)
        sys.stdout.buffer.flush()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)


asyncio.run(main())
"""


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Let the loop run until ``condition`` holds (or ``timeout`` passes)."""
    for _ in range(int(timeout / 0.01)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


@pytest.fixture
def registry() -> Iterator[HarnessRegistry]:
    reg = HarnessRegistry(spawn_threads=4)
    yield reg
    assert reg.close() == [], "a harness was left running"


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "fake_harness.py"
    path.write_text(FAKE_HARNESS)
    return path


def _spec(script: Path, storage: Path, **env: str) -> HarnessSpec:
    from google.antigravity.proto import localharness_pb2

    settings = {HARNESS_OWNER_ENV: "backend/agent", **env}
    payload = localharness_pb2.InputConfig(
        storage_directory=str(storage), env=settings
    ).SerializeToString()
    return HarnessSpec(
        argv=(sys.executable, str(script)),
        env={**os.environ, **settings},
        settings_env=settings,
        storage_directory=str(storage),
        payload=payload,
    )


@dataclass
class StandIn:
    """What a pool test needs: the stand-in harness, its registry and a folder.

    :meth:`pool` makes harness pools of backend ``backend`` over
    :attr:`registry`; the ``stand_in`` fixture closes them afterwards.
    """

    registry: HarnessRegistry
    script: Path
    folder: Path
    made: list[HarnessPool] = field(default_factory=list)

    def pool(
        self, per_harness: int = 250, processes: int = 1, command_prefix: tuple[str, ...] = ()
    ) -> HarnessPool:
        """A new pool; ``command_prefix`` is what a harness binary runs under.

        The launcher tests run the stand-in script through the interpreter that way.
        """
        pool = HarnessPool(
            self.registry, "backend", command_prefix, None, PoolLimits(per_harness, processes)
        )
        self.made.append(pool)
        return pool

    def spec(self, storage: Path | None = None, **env: str) -> HarnessSpec:
        """The stand-in's process settings, storing in ``storage`` (default :attr:`folder`)."""
        return _spec(self.script, self.folder if storage is None else storage, **env)


@pytest.fixture
def stand_in(registry: HarnessRegistry, script: Path, tmp_path: Path) -> Iterator[StandIn]:
    """A :class:`StandIn`; afterwards no conversation may still hold a harness."""
    bench = StandIn(registry, script, tmp_path)
    yield bench
    assert registry.owners() == [], "a conversation was left leased"
    for pool in bench.made:
        pool.close()


async def _release_all(pool: HarnessPool, leases: Iterable[HarnessLease]) -> None:
    """Give every lease back; no harness left empty needs killing to go."""
    for lease in leases:
        assert await pool.release(lease, grace=5) == []


def test_limits_are_checked() -> None:
    with pytest.raises(ConfigError, match="agents_per_harness"):
        PoolLimits(0, 1)
    with pytest.raises(ConfigError, match="harness_processes"):
        PoolLimits(1, True)  # type: ignore[arg-type]


def test_a_start_handshakes_off_the_loop_and_tags_the_process(stand_in: StandIn) -> None:
    pool = stand_in.pool()
    spec = stand_in.spec(FAKE_DELAY="0.3")

    lease, ticks = run_counting_loop_ticks(lambda: pool.lease(spec))
    assert ticks >= 10  # the loop kept running while the harness started
    pid = lease.harness.process.pid
    owner = lease.entry.owner
    assert owner == "backend/harness-1"
    assert stand_in.registry.pids(owner) == [pid]
    # The process carries its own owner tag, not its first conversation's.
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"{HARNESS_OWNER_ENV}={owner}".encode() in environ
    # The collector thread drains stderr in its own time.
    assert wait_until(lambda: pool.stderr.tail(owner) == [f"owner {owner}"])
    assert pool.loads() == [(pid, 1)]
    assert asyncio.run(pool.release(lease, grace=10)) == []  # exited on end-of-file
    assert not alive(pid)
    assert stand_in.registry.owners() == []
    assert pool.loads() == []


@on_asyncio
async def test_conversations_share_a_process_up_to_the_limit(stand_in: StandIn) -> None:
    pool = stand_in.pool(per_harness=2)
    spec = stand_in.spec()
    leases = await asyncio.gather(*(pool.lease(spec) for _ in range(5)))
    pids = [lease.harness.process.pid for lease in leases]
    assert len(set(pids)) == 3  # 2 + 2 + 1, and only three starts
    assert stand_in.registry.started == 3
    assert sorted(n for _, n in pool.loads()) == [1, 2, 2]
    # A place freed is taken again before a new process starts.
    first = leases[0]
    await pool.release(first, grace=5)
    assert alive(first.harness.process.pid)  # its other conversation goes on
    again = await pool.lease(spec)
    assert again.harness.process.pid == first.harness.process.pid
    assert stand_in.registry.started == 3
    await _release_all(pool, [*leases[1:], again])
    assert pool.loads() == []
    assert not any(alive(pid) for pid in pids)


@on_asyncio
async def test_a_harness_left_by_hibernation_stays_warm_one_at_a_time(stand_in: StandIn) -> None:
    pool = stand_in.pool()
    ours, theirs = stand_in.spec(stand_in.folder / "a"), stand_in.spec(stand_in.folder / "b")
    lease = await pool.lease(ours)
    pid = lease.harness.process.pid
    # Its last conversation hibernates: the harness stays up, empty...
    assert await pool.release(lease, grace=5, keep_warm=True) == []
    assert alive(pid) and pool.loads() == [(pid, 0)]
    # ...and the next conversation of its group lands there, with no start.
    again = await pool.lease(ours)
    assert again.harness.process.pid == pid and stand_in.registry.started == 1
    await pool.release(again, grace=5, keep_warm=True)
    # Another group's harness becomes the warm one: the first goes.
    other = await pool.lease(theirs)
    other_pid = other.harness.process.pid
    await pool.release(other, grace=5, keep_warm=True)
    assert wait_until(lambda: not alive(pid))
    assert pool.loads() == [(other_pid, 0)]
    # A harness left for any other reason goes as before.
    plain = await pool.lease(ours)
    await pool.release(plain, grace=5)
    assert not alive(plain.harness.process.pid)
    # The backend's close stops the warm one, gently.
    assert await pool.retire_warm() == []
    assert not alive(other_pid) and pool.loads() == []
    assert await pool.retire_warm() == []


@on_asyncio
async def test_one_process_per_conversation_with_agents_per_harness_1(stand_in: StandIn) -> None:
    pool = stand_in.pool(per_harness=1)
    spec = stand_in.spec()
    leases = await asyncio.gather(*(pool.lease(spec) for _ in range(3)))
    assert len({lease.harness.process.pid for lease in leases}) == 3
    await _release_all(pool, leases)


@on_asyncio
async def test_a_group_is_spread_over_harness_processes(stand_in: StandIn) -> None:
    pool = stand_in.pool(per_harness=10, processes=2)
    spec = stand_in.spec()
    leases = [await pool.lease(spec) for _ in range(5)]
    assert sorted(n for _, n in pool.loads()) == [2, 3]
    await _release_all(pool, leases)


@on_asyncio
async def test_conversations_with_other_process_settings_never_share(stand_in: StandIn) -> None:
    pool = stand_in.pool()
    (stand_in.folder / "a").mkdir()
    (stand_in.folder / "b").mkdir()
    a1 = await pool.lease(stand_in.spec(stand_in.folder / "a"))
    a2 = await pool.lease(stand_in.spec(stand_in.folder / "a", **{HARNESS_OWNER_ENV: "b/other"}))
    b = await pool.lease(stand_in.spec(stand_in.folder / "b"))
    home = await pool.lease(stand_in.spec(stand_in.folder / "a", HOME=str(stand_in.folder)))
    assert a1.harness.process.pid == a2.harness.process.pid  # the owner tag is no setting
    assert len({x.harness.process.pid for x in (a1, b, home)}) == 3
    await _release_all(pool, (a1, a2, b, home))


@on_asyncio
async def test_conversations_arriving_during_a_start_wait_for_it(stand_in: StandIn) -> None:
    pool = stand_in.pool()
    gate = stand_in.folder / "gate"
    spec = stand_in.spec(FAKE_GATE=str(gate))
    first = asyncio.create_task(pool.lease(spec))
    # The harness is up and holds its answer until the gate opens: a start under way.
    assert await _until(lambda: bool(stand_in.registry.pids()))
    # A waiter that gives up does not stop the start the others wait for.
    quitter = asyncio.create_task(pool.lease(spec))
    others = [asyncio.create_task(pool.lease(spec)) for _ in range(8)]
    await asyncio.sleep(0)  # one loop turn: each new lease reaches its wait
    quitter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await quitter
    assert not first.done()  # still starting
    gate.touch()
    leases = [await first, *[await task for task in others]]
    assert len({lease.harness.process.pid for lease in leases}) == 1
    assert stand_in.registry.started == 1
    assert pool.loads() == [(leases[0].harness.process.pid, 9)]
    await _release_all(pool, leases)


@on_asyncio
async def test_a_cancelled_start_nobody_else_waits_for_leaves_no_process(stand_in: StandIn) -> None:
    pool = stand_in.pool()
    spec = stand_in.spec(FAKE_DELAY="30")
    started = time.monotonic()
    task = asyncio.create_task(pool.lease(spec))
    # Up, and holding back its answer.
    assert await asyncio.to_thread(wait_until, lambda: bool(stand_in.registry.pids()))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Gone (reaped, not merely dying) when the cancellation arrives.
    assert stand_in.registry.pids() == []
    assert stand_in.registry.owners() == []
    assert time.monotonic() - started < 10


@on_asyncio
async def test_a_harness_that_fails_to_start_is_an_error_for_every_waiter(
    stand_in: StandIn,
) -> None:
    pool = stand_in.pool()
    spec = stand_in.spec(FAKE_FAIL="1")
    results = await asyncio.gather(*(pool.lease(spec) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and "no config for me" in str(r) for r in results)
    assert stand_in.registry.owners() == []
    assert pool.loads() == []


@on_asyncio
async def test_a_dead_harness_takes_no_new_conversation(stand_in: StandIn) -> None:
    pool = stand_in.pool()
    spec = stand_in.spec()
    old = await pool.lease(spec)
    old.harness.process.kill()
    old.harness.process.wait()
    assert not old.alive
    new = await pool.lease(spec)
    assert new.harness.process.pid != old.harness.process.pid
    assert await pool.release(old, grace=5) == []  # dead already: reaped, nothing to kill
    assert new.alive
    await pool.release(new, grace=5)


# ---------------------------------------------------------------------------- the launcher


def _launching(stand_in: StandIn) -> tuple[HarnessPool, Any]:
    """A pool for the launcher, and an SDK strategy whose binary is the stand-in.

    The launcher builds the spec off the strategy: the binary is the script,
    run by the interpreter through the pool's command prefix.
    """
    import types

    spec = stand_in.spec()
    strategy = types.SimpleNamespace(
        _binary_path=spec.argv[-1],
        _save_dir=spec.storage_directory,
        _env=dict(spec.settings_env),
    )
    return stand_in.pool(command_prefix=(sys.executable,)), strategy


@on_asyncio
async def test_the_launcher_connects_each_conversation_on_its_own_websocket(
    stand_in: StandIn,
) -> None:
    pool, strategy = _launching(stand_in)
    first, second = HarnessLauncher(pool, "backend/a1"), HarnessLauncher(pool, "backend/a2")
    p1, ws1, url1 = await first.connect(strategy)
    p2, ws2, url2 = await second.connect(strategy)
    assert url1 == url2 and url1.startswith("ws://127.0.0.1:")
    assert isinstance(p1, ConversationProcess) and p1.pid == p2.pid
    await ws1.send("one")
    await ws2.send("two")
    assert (await ws1.recv(), await ws2.recv()) == ("one", "two")

    # Killing the SDK's view of the process cuts that conversation only.
    p1.kill()
    with pytest.raises(websockets.exceptions.ConnectionClosed):
        await ws1.recv()
    await ws2.send("still here")
    assert await ws2.recv() == "still here"
    assert p1.poll() is None and p1.wait(timeout=180) is None  # never blocks
    assert p1.stdin is None and p1.stderr.read() == b""

    assert await first.retire_async(grace=5) == []
    assert alive(p2.pid)
    await ws2.close()
    assert await second.retire_async(grace=5) == []
    assert not alive(p2.pid)


@on_asyncio
async def test_a_held_launcher_keeps_its_harness_through_a_reopen(stand_in: StandIn) -> None:
    pool, strategy = _launching(stand_in)
    launcher = HarnessLauncher(pool, "backend/a1")
    process, ws, _ = await launcher.connect(strategy)
    async with launcher.holding():
        await ws.close()
        assert await launcher.retire_async(grace=5) == []
        assert alive(process.pid)  # kept: the conversation comes back
        again, ws, _ = await launcher.connect(strategy)
        assert again.pid == process.pid
    await ws.close()
    # Held across a crash: the conversation comes back on a fresh harness.
    async with launcher.holding():
        await launcher.retire_async(grace=5)
        os.kill(process.pid, 9)
        fresh, ws, _ = await launcher.connect(strategy)
        assert fresh.pid != process.pid
    await ws.close()
    # Closed inside a hold and not reopened: the place is given back at its end.
    async with launcher.holding():
        await launcher.retire_async(grace=5)
        assert alive(fresh.pid)
    assert not alive(fresh.pid)
    assert launcher.lease is None


def test_detach_process_takes_the_view_from_the_sdk_connection() -> None:
    import subprocess
    import types

    process = subprocess.Popen(["sleep", "30"])
    try:
        view = ConversationProcess(process, lambda: None)
        connection = types.SimpleNamespace(_process=view, _stderr_thread=None)
        assert detach_process(connection) == (view, None)
        assert connection._process is None
        with pytest.raises(LookupError):
            detach_process(types.SimpleNamespace(_process=None))
    finally:
        process.kill()
        process.wait()


# ---------------------------------------------------------------------------- stderr


def test_the_collector_keeps_the_last_lines_and_closes_at_end_of_file() -> None:
    import subprocess

    collector = StderrCollector(lines=3)
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import sys; [print('p{i}', n, file=sys.stderr) for n in range(5)]",
            ],
            stderr=subprocess.PIPE,
        )
        for i in range(3)
    ]
    for i, process in enumerate(processes):
        assert process.stderr is not None
        collector.watch(f"h{i}", process.stderr)
    for process in processes:
        process.wait()
    assert wait_until(lambda: all(p.stderr is not None and p.stderr.closed for p in processes))
    assert [collector.tail(f"h{i}") for i in range(3)] == [
        [f"p{i} 2", f"p{i} 3", f"p{i} 4"] for i in range(3)
    ]
    collector.forget("h0")
    assert collector.tail("h0") == []
    collector.close()


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("agents_per_harness", 0),
        ("agents_per_harness", 2.5),
        ("harness_processes", 0),
        ("harness_processes", "2"),
        ("connection_retry", 3),
    ],
)
def test_pool_options_are_checked_when_the_backend_is_constructed(
    option: str, value: object
) -> None:
    from agy_trio.adapters.antigravity import AntigravityBackend

    with pytest.raises(ConfigError) as info:
        AntigravityBackend(**{option: value})  # type: ignore[arg-type]
    assert info.value.field == option


def test_the_sdk_starts_no_reader_thread_for_an_empty_stderr() -> None:
    import collections
    import io
    import threading
    import types

    from google.antigravity.connections.local import local_connection

    from agy_trio.adapters.antigravity.launcher import EmptyStderr, skip_empty_stderr_readers

    assert skip_empty_stderr_readers() and skip_empty_stderr_readers()  # idempotent
    start = local_connection.LocalConnection._start_stderr_reader
    connection = types.SimpleNamespace(_stderr_thread="unset", _stderr_lines=collections.deque())
    before = threading.active_count()
    start(connection, EmptyStderr())
    assert connection._stderr_thread is None and threading.active_count() == before
    # Any other stream is the SDK's business, as before.
    start(connection, io.BytesIO(b"a line\n"))
    assert isinstance(connection._stderr_thread, threading.Thread)
    connection._stderr_thread.join(timeout=5)
    assert list(connection._stderr_lines) == ["a line"]


@on_asyncio
async def test_at_most_opening_limit_conversations_are_opened_on_a_harness_at_once(
    stand_in: StandIn,
) -> None:
    from agy_trio.adapters.antigravity.pool import OPENING_LIMIT

    pool, strategy = _launching(stand_in)
    launchers = [HarnessLauncher(pool, f"backend/a{i}") for i in range(OPENING_LIMIT + 1)]
    release = asyncio.Event()
    connected: list[int] = []
    sockets: list[Any] = []

    async def open_one(i: int) -> None:
        async with launchers[i].opening():
            _, ws, _ = await launchers[i].connect(strategy)
            sockets.append(ws)
            connected.append(i)
            if len(connected) <= OPENING_LIMIT:
                await release.wait()  # the SDK still awaits the harness's answer

    tasks = [asyncio.create_task(open_one(i)) for i in range(OPENING_LIMIT + 1)]
    assert await _until(lambda: len(connected) == OPENING_LIMIT)
    entry = launchers[0].lease.entry if launchers[0].lease else None
    assert entry is not None
    # The last one has its place on the harness and waits for a permit.
    assert await _until(lambda: entry.opening.waiting == 1)
    assert len(connected) == OPENING_LIMIT
    release.set()
    await asyncio.gather(*tasks)
    assert len(connected) == OPENING_LIMIT + 1
    for ws in sockets:
        await ws.close()
    for launcher in launchers:
        await launcher.retire_async(grace=5)
