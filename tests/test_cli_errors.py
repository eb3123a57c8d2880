"""Failures a user can cause on the command line: one line saying what to do, no traceback.

Each exits non-zero (2 for a usage error); ``agy-trio --debug`` shows the traceback instead.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import offline_env, run_python

ROOT = Path(__file__).resolve().parents[1]


def _agy_trio(
    tmp_path: Path, *argv: str, hide: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``agy-trio ARGV``; with ``hide``, as if that package were not installed."""
    hiding = f"import sys; sys.modules[{hide!r}] = None; " if hide else ""
    program = f"{hiding}from agy_trio.cli import main; main()"
    return run_python("-c", program, *argv, env=offline_env(tmp_path), timeout=120)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_taken_port_is_one_line(tmp_path: Path, taken_port: int) -> None:
    result = _agy_trio(tmp_path, "serve", "--backend", "scripted", "--port", str(taken_port))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        f"error: port {taken_port} on 127.0.0.1 is taken by another program: "
        "pick another with --port (--port 0 picks a free one)"
    ]


def test_debug_shows_the_traceback(tmp_path: Path, taken_port: int) -> None:
    argv = ["--debug", "serve", "--backend", "scripted", "--port", str(taken_port)]
    result = _agy_trio(tmp_path, *argv)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "Address already in use" in result.stderr


def test_an_unreachable_endpoint_is_one_line(tmp_path: Path) -> None:
    # Nothing listens on port 9 (discard) of loopback.
    result = _agy_trio(tmp_path, "chat", "--base-url", "http://127.0.0.1:9/v1", "hi")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: the model endpoint is unreachable: ")
    assert "127.0.0.1:9" in line


@pytest.mark.parametrize(
    ("argv", "package", "extra"),
    [
        (["worker", "--temporal", "127.0.0.1:7233"], "temporalio", "temporal"),
        (["serve", "--backend", "scripted", "--port", "0"], "prometheus_client", "serve"),
        (["chat", "--backend", "antigravity", "hi"], "google.antigravity", "antigravity"),
    ],
)
def test_a_missing_extra_is_one_line_with_the_pip_command(
    tmp_path: Path, argv: list[str], package: str, extra: str
) -> None:
    result = _agy_trio(tmp_path, *argv, hide=package)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ")
    assert f"pip install 'agy-trio[{extra}]'" in line
    assert "--debug" not in line


def test_a_usage_error_exits_2(tmp_path: Path) -> None:
    result = _agy_trio(tmp_path, "run", "--agents", "0")
    assert result.returncode == 2
    assert "Error: Invalid value: --agents and --turns must be >= 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_config_file_is_one_line(tmp_path: Path) -> None:
    profile = tmp_path / "bad.toml"
    profile.write_text("not = [valid\n")
    result = _agy_trio(tmp_path, "serve", "--backend", "scripted", "--config", str(profile))
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: the profile {profile}: not valid TOML")
    missing = _agy_trio(tmp_path, "serve", "--config", str(tmp_path / "nowhere.toml"))
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
