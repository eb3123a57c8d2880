"""The command line: the main job, chat, and help."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from agy_trio.cli import cli
from tests.processes import offline_env, run_python


def test_run_with_the_scripted_backend_shows_agents_chatting() -> None:
    result = CliRunner().invoke(
        cli, ["run", "--backend", "scripted", "--agents", "3", "--turns", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "scripted backend" in result.output
    for i in (1, 2, 3):
        assert f"agent-{i}" in result.output
    summary = re.search(r"3 agents, (\d+) commands ok, (\d+) failed", result.output)
    assert summary is not None, result.output
    assert int(summary.group(2)) == 0
    # create + 2 chats + shutdown per agent at least
    assert int(summary.group(1)) >= 3 * 4


def test_chat_streams_the_answer() -> None:
    result = CliRunner().invoke(cli, ["chat", "--backend", "scripted", "hello cli"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "You said: hello cli"


def test_bad_arguments_are_rejected() -> None:
    result = CliRunner().invoke(cli, ["run", "--backend", "scripted", "--agents", "0"])
    assert result.exit_code != 0
    assert "--agents" in result.output


def test_module_entry_point_prints_help(tmp_path: Path) -> None:
    out = run_python("-m", "agy_trio", "--help", env=offline_env(tmp_path), check=True)
    for command in ("run", "chat", "serve-model", "bench"):
        assert command in out.stdout


def test_an_agent_error_inside_the_run_is_a_message_not_a_traceback() -> None:
    # No model listens on this port: every agent's chat fails with a typed error.
    result = CliRunner().invoke(
        cli,
        ["chat", "--backend", "antigravity", "--base-url", "http://127.0.0.1:9/v1", "hi"],
    )
    assert result.exit_code == 1, result.output
    assert "error:" in result.output
    assert "Traceback" not in result.output


def test_run_shows_each_agents_last_answer_under_the_ids_its_logs_use() -> None:
    result = CliRunner().invoke(
        cli, ["-vv", "run", "--backend", "scripted", "--agents", "3", "--turns", "2"]
    )
    assert result.exit_code == 0, result.output
    for i in (1, 2, 3):
        row = re.search(
            rf"agent-{i} .*done.*2/2.*You said: Hello from agent-{i}, turn 2", result.output
        )
        assert row is not None, result.output
        assert f"agy_trio.runtime [agent-{i}]: agent created" in result.output
