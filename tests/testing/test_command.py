"""The model server's one command line, reached as ``agy-trio serve-model`` and ``python -m``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import click
import httpx
import pytest
import trio
from click.testing import CliRunner

from agy_trio.cli import cli
from agy_trio.testing.command import serve_model_command

pytestmark = pytest.mark.timeout(30)


def test_agy_trio_serve_model_is_the_module_command() -> None:
    assert cli.get_command(click.Context(cli), "serve-model") is serve_model_command


def test_both_paths_offer_the_same_options() -> None:
    from_group = CliRunner().invoke(cli, ["serve-model", "--help"])
    alone = CliRunner().invoke(serve_model_command, ["--help"])
    assert from_group.exit_code == alone.exit_code == 0
    options = from_group.output[from_group.output.index("Options:") :]
    assert options == alone.output[alone.output.index("Options:") :]
    for option in ("--host", "--port", "--log"):
        assert option in options


def test_a_busy_port_is_a_message_and_exit_code_1() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve-model", "--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output


async def test_python_dash_m_runs_until_ctrl_c() -> None:
    env = {**os.environ, "PYTHONWARNINGS": "error::RuntimeWarning"}
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "agy_trio.testing.model_server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        output = b""
        with trio.fail_after(15):
            while b"\n" not in output:
                chunk = await process.stdout.receive_some()
                assert chunk, "the server exited before printing its URL"
                output += chunk
        first_line = output.decode().splitlines()[0]
        url = first_line.split()[first_line.split().index("on") + 1]
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/v1")
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{url}/models")).status_code == 200

        process.send_signal(signal.SIGINT)
        with trio.fail_after(10):
            while chunk := await process.stdout.receive_some():
                output += chunk
            errors = b""
            while chunk := await process.stderr.receive_some():
                errors += chunk
            assert await process.wait() == 0
        assert b"stopped" in output
        assert errors == b""
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                await pipe.aclose()
