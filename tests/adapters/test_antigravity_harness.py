"""Harness processes: registry, start-up handshake, parent-death kill, the process settings."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agy_trio.adapters.antigravity.harness import (
    HARNESS_OWNER_ENV,
    HarnessRegistry,
    pdeathsig_prefix,
)
from agy_trio.adapters.antigravity.launcher import SdkFacts, harness_spec
from agy_trio.adapters.antigravity.pool import spawn_harness
from tests.adapters.harness_support import alive, run_counting_loop_ticks, wait_until

# A stand-in for the harness: reads a length-prefixed message on stdin,
# optionally waits, answers with a length-prefixed echo, then waits for stdin
# to close (like the real one).
FAKE_HARNESS = """
import struct, sys, time
n = struct.unpack("<I", sys.stdin.buffer.read(4))[0]
data = sys.stdin.buffer.read(n)
time.sleep(float(sys.argv[1]))
sys.stdout.buffer.write(struct.pack("<I", len(data)) + data[::-1])
sys.stdout.buffer.flush()
sys.stdin.buffer.read()
"""


def _wait_dead(pid: int, timeout: float = 5.0) -> bool:
    return wait_until(lambda: not alive(pid), timeout)


@pytest.fixture
def registry() -> Iterator[HarnessRegistry]:
    reg = HarnessRegistry(spawn_threads=2)
    yield reg
    assert reg.close() == []


@pytest.fixture
def fake_harness(tmp_path: Path) -> Path:
    script = tmp_path / "fake_harness.py"
    script.write_text(FAKE_HARNESS)
    return script


def _argv(script: Path, delay: float) -> list[str]:
    return [sys.executable, str(script), str(delay)]


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


def test_kill_and_release_are_per_owner(registry: HarnessRegistry) -> None:
    mine = subprocess.Popen(["sleep", "30"], stdin=subprocess.PIPE)
    theirs = subprocess.Popen(["sleep", "30"], stdin=subprocess.PIPE)
    assert registry.register("mine", mine)
    assert registry.register("theirs", theirs)
    assert registry.kill("mine") == 1
    assert _wait_dead(mine.pid)
    assert alive(theirs.pid)
    registry.release("mine")
    assert registry.release("theirs") == [theirs.pid]
    assert not alive(theirs.pid)


def test_abandoned_owner_gets_its_late_process_killed(registry: HarnessRegistry) -> None:
    registry.abandon("late")
    process = subprocess.Popen(["sleep", "30"])
    assert registry.register("late", process) is False  # the caller must kill it
    process.kill()
    registry.release("late")


@pytest.mark.skipif(not pdeathsig_prefix(), reason="setpriv --pdeathsig is not available")
def test_the_kernel_kills_the_harness_when_its_starting_thread_dies() -> None:
    # The harness outlives Python only if something else keeps its stdin open
    # (otherwise it exits on end-of-file): model that with a plain sleep.
    started: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        started.append(subprocess.Popen([*pdeathsig_prefix(), "sleep", "30"]))
        # setpriv must have set the signal before its parent thread goes (the
        # runtime's starting threads live as long as the backend).
        time.sleep(0.5)

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    (process,) = started
    assert process.wait(timeout=20) == -9
    # Without the prefix the same process survives its thread.
    survivor: list[subprocess.Popen[bytes]] = []
    thread = threading.Thread(target=lambda: survivor.append(subprocess.Popen(["sleep", "30"])))
    thread.start()
    thread.join()
    time.sleep(0.2)
    assert survivor[0].poll() is None
    survivor[0].kill()
    survivor[0].wait()


def test_pdeathsig_prefix_keeps_the_pid(tmp_path: Path) -> None:
    prefix = pdeathsig_prefix()
    if not prefix:
        pytest.skip("setpriv --pdeathsig is not available")
    out = tmp_path / "pid"
    write_pid = f"import os; open({str(out)!r}, 'w').write(str(os.getpid()))"
    process = subprocess.Popen([*prefix, sys.executable, "-c", write_pid])
    process.wait(timeout=10)
    assert int(out.read_text()) == process.pid  # setpriv execs: the harness keeps its PID


def test_spawn_handshakes_and_registers_the_process(
    registry: HarnessRegistry, fake_harness: Path
) -> None:
    process, answer = spawn_harness(registry, "owner-1", _argv(fake_harness, 0), None, b"hello")
    assert answer == b"olleh"
    assert registry.pids("owner-1") == [process.pid]
    assert registry.started == 1
    assert registry.release("owner-1") == [process.pid]  # still running: killed and reaped
    assert not alive(process.pid)
    assert registry.owners() == []


def test_a_harness_that_exits_during_start_up_is_an_error(
    registry: HarnessRegistry, tmp_path: Path
) -> None:
    script = tmp_path / "broken.py"
    script.write_text("import sys; sys.stderr.write('no config for me'); sys.exit(3)")
    with pytest.raises(RuntimeError, match="no config for me"):
        spawn_harness(registry, "owner-3", [sys.executable, str(script)], None, b"x")
    registry.release("owner-3")


def test_retire_lets_the_harness_exit_on_end_of_file(
    registry: HarnessRegistry, fake_harness: Path
) -> None:
    process, _ = spawn_harness(registry, "owner-4", _argv(fake_harness, 0), None, b"x")
    started = time.monotonic()
    assert registry.retire("owner-4", grace=10) == []  # exited by itself: nothing killed
    assert time.monotonic() - started < 5
    assert process.returncode == 0
    assert registry.owners() == []


def test_retire_kills_a_harness_that_outstays_the_grace(registry: HarnessRegistry) -> None:
    stubborn = subprocess.Popen(["sleep", "30"], stdin=subprocess.PIPE)
    registry.register("owner-5", stubborn)

    killed, ticks = run_counting_loop_ticks(lambda: registry.retire_async("owner-5", grace=0.3))
    assert ticks >= 10  # the loop kept running during the grace
    assert killed == [stubborn.pid]
    assert not alive(stubborn.pid)


def test_prestart_starts_every_worker_thread(registry: HarnessRegistry) -> None:
    def workers() -> int:
        return sum(t.name.startswith("agy-trio-harness-start") for t in threading.enumerate())

    before = workers()
    registry.prestart()
    assert workers() - before == 2
    # Later submissions find an idle worker: no thread is started.
    for _ in range(5):
        registry.executor.submit(time.sleep, 0).result()
    assert workers() - before == 2


# ---------------------------------------------------------------------------- the SDK's start-up


def _strategy(binary: str, save_dir: str, env: dict[str, str] | None) -> Any:
    return types.SimpleNamespace(_binary_path=binary, _save_dir=save_dir, _env=env)


def test_harness_spec_reads_the_process_settings_off_the_strategy(tmp_path: Path) -> None:
    from google.antigravity.proto import localharness_pb2

    env = {"HOME": str(tmp_path / "home"), HARNESS_OWNER_ENV: "backend/agent-1"}
    facts = SdkFacts(binary_path="/opt/localharness", version="9.9.9")
    spec = harness_spec(_strategy("/opt/localharness", str(tmp_path), env), ("setpriv",), facts)
    assert spec.argv == ("setpriv", "/opt/localharness")
    assert spec.env is not None
    assert spec.env["HOME"] == env["HOME"] and spec.env["PATH"] == os.environ["PATH"]
    sent = localharness_pb2.InputConfig()
    sent.ParseFromString(spec.payload)
    assert sent.storage_directory == str(tmp_path)
    assert dict(sent.env) == env
    assert sent.client_info.version == "9.9.9"
    # No environment in the config: the harness inherits Python's as it is.
    assert harness_spec(_strategy("/bin/h", str(tmp_path), None), (), facts).env is None


def test_harness_spec_key_names_what_conversations_must_share(tmp_path: Path) -> None:
    facts = SdkFacts(binary_path=None, version="1")

    def key(binary: str, save_dir: Path, **env: str) -> tuple[object, ...]:
        return harness_spec(_strategy(binary, str(save_dir), env), (), facts).key

    home = str(tmp_path / "home")
    first = key("/bin/h", tmp_path, HOME=home, **{HARNESS_OWNER_ENV: "b/agent-1"})
    assert first == key("/bin/h", tmp_path, HOME=home, **{HARNESS_OWNER_ENV: "b/agent-2"})
    assert first != key("/bin/h", tmp_path / "other", HOME=home)
    assert first != key("/bin/h", tmp_path, HOME=str(tmp_path))
    assert first != key("/bin/other", tmp_path, HOME=home)
    interactions = harness_spec(
        _strategy("/bin/h", str(tmp_path), {"HOME": home}), (), facts, use_interactions_api=True
    )
    assert first != interactions.key


def test_a_spec_owned_by_a_pooled_process_carries_its_owner(tmp_path: Path) -> None:
    from google.antigravity.proto import localharness_pb2

    env = {"HOME": str(tmp_path), HARNESS_OWNER_ENV: "backend/agent-1"}
    spec = harness_spec(_strategy("/bin/h", str(tmp_path), env), (), SdkFacts(None, "1"))
    owned = spec.owned_by("backend/harness-7")
    assert owned.key == spec.key
    assert owned.env is not None and owned.env[HARNESS_OWNER_ENV] == "backend/harness-7"
    sent = localharness_pb2.InputConfig()
    sent.ParseFromString(owned.payload)
    assert dict(sent.env) == {"HOME": str(tmp_path), HARNESS_OWNER_ENV: "backend/harness-7"}


def test_a_harness_that_never_answers_is_killed_at_the_deadline(
    registry: HarnessRegistry, fake_harness: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agy_trio.adapters.antigravity import pool

    monkeypatch.setattr(pool, "_HANDSHAKE_TIMEOUT", 0.5)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="Failed to read length"):
        spawn_harness(registry, "owner-7", _argv(fake_harness, 30), None, b"x")
    assert time.monotonic() - started < 10
    (pid,) = [p.pid for p in registry._by_owner["owner-7"]]
    registry.release("owner-7")  # reaps it (the pool does this after a failed start)
    assert not alive(pid)
