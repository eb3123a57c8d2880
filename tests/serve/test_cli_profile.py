"""agy-trio serve --config, --approval-timeout and --reattach-grace on the command line."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.processes import offline_env, run_python
from tests.serve._process import server_process

SERVE_SCRIPTED = ["-m", "agy_trio", "serve", "--backend", "scripted", "--port", "0"]

PROFILE = """
name = "library"
description = "Lends books."

[agent]
name = "librarian"
system_instructions = "Be brief."
tools = ["tests.serve.sample_tools:lend"]
policies = [{ decision = "ask_user", tool = "lend", reason = "a librarian says yes" }]
"""


def test_serve_makes_its_agents_from_the_profile_file(tmp_path: Path) -> None:
    profile = tmp_path / "library.toml"
    profile.write_text(PROFILE)
    argv = [
        *SERVE_SCRIPTED,
        "--config",
        str(profile),
        "--approval-timeout",
        "30",
        "--reattach-grace",
        "0",
    ]
    env = offline_env(tmp_path)
    with server_process(argv, env, header_lines=2) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            created = client.post("/v1/agents", json={})
            assert created.status_code == 201, created.text
            assert created.json()["name"] == "librarian"
            assert client.get("/v1/approvals").json() == []
        code, _, err = server.stop()
    assert code == 143, err


def test_a_bad_profile_is_one_line_naming_the_key(tmp_path: Path) -> None:
    profile = tmp_path / "bad.toml"
    profile.write_text('[agent]\ntools = ["no.such.module:thing"]\n')
    result = run_python(*SERVE_SCRIPTED, "--config", str(profile), env=offline_env(tmp_path))
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: the profile {profile} (agent.tools[0]): ")


def test_the_grace_and_the_timeout_must_be_numbers_in_range(tmp_path: Path) -> None:
    for flag, value in (("--reattach-grace", "-1"), ("--approval-timeout", "0")):
        result = run_python(*SERVE_SCRIPTED, flag, value, env=offline_env(tmp_path))
        assert result.returncode == 2, (flag, result.stderr)
        assert flag in result.stderr
