"""``agy-trio serve``: the command line of the server."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

from tests.processes import offline_env, run_python
from tests.serve._process import server_process

SERVE_SCRIPTED = ["-m", "agy_trio", "serve", "--backend", "scripted", "--port", "0"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_its_address_first_and_stops_on_a_signal(tmp_path: Path, sig: int) -> None:
    with server_process(SERVE_SCRIPTED, offline_env(tmp_path), header_lines=2) as server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
        assert server.lines[1] == "Agents: scripted backend (in-process, deterministic)\n"
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            agent_id = client.post("/v1/agents", json={"name": "cli"}).json()["id"]
            with connect_sse(
                client, "POST", f"/v1/agents/{agent_id}/chat", json={"prompt": "hi"}
            ) as source:
                events = list(source.iter_sse())
            assert events[-1].json()["text"] == "You said: hi"
        code, out, err = server.stop(sig)
    assert code == 128 + sig, err
    assert out == ""
    assert err == ("interrupted\n" if sig == signal.SIGINT else "stopped by SIGTERM\n")


def test_serve_takes_its_token_from_the_option_or_the_environment(tmp_path: Path) -> None:
    for argv, extra in (
        ([*SERVE_SCRIPTED, "--token", "opt-token"], {}),
        (SERVE_SCRIPTED, {"AGY_TRIO_TOKEN": "opt-token"}),
    ):
        with server_process(argv, offline_env(tmp_path, **extra)) as server:
            with httpx.Client(base_url=server.url, timeout=10) as client:
                assert client.get("/v1/agents").status_code == 401
                answer = client.get("/v1/agents", headers={"authorization": "Bearer opt-token"})
                assert answer.json() == []
            code, _, err = server.stop()
            assert code == 128 + signal.SIGTERM, err


def test_serve_refuses_a_public_host_without_a_token(tmp_path: Path) -> None:
    result = run_python(*SERVE_SCRIPTED, "--host", "0.0.0.0", env=offline_env(tmp_path))
    assert result.returncode == 1
    assert "Serving on" not in result.stdout
    assert "error: host: refusing to listen on '0.0.0.0' without a token" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_is_listed_in_the_help(tmp_path: Path) -> None:
    result = run_python("-m", "agy_trio", "serve", "--help", env=offline_env(tmp_path), check=True)
    for option in ("--host", "--port", "--token", "--backend", "--base-url", "--model"):
        assert option in result.stdout


def test_access_log_prints_one_line_per_request(tmp_path: Path) -> None:
    argv = [*SERVE_SCRIPTED, "--access-log"]
    with server_process(argv, offline_env(tmp_path), header_lines=2) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/healthz").status_code == 200
            agent_id = client.post("/v1/agents", json={"name": "logged"}).json()["id"]
            assert client.get("/v1/nowhere").status_code == 404
            with connect_sse(
                client, "POST", f"/v1/agents/{agent_id}/chat", json={"prompt": "hi"}
            ) as source:
                assert list(source.iter_sse())[-1].json()["text"] == "You said: hi"
        code, out, err = server.stop()
    assert code == 128 + signal.SIGTERM, err
    lines = out.splitlines()
    assert len(lines) == 4, out
    patterns = [
        r'GET /healthz HTTP/1\.1" 200 \d+',
        r'POST /v1/agents HTTP/1\.1" 201 \d+',
        r'GET /v1/nowhere HTTP/1\.1" 404 \d+',
        rf'POST /v1/agents/{agent_id}/chat HTTP/1\.1" 200 ',
    ]
    for line, pattern in zip(lines, patterns, strict=True):
        assert re.fullmatch(rf'127\.0\.0\.1:\d+ "{pattern}\d* \d+\.\d+s', line), line
    assert err == "stopped by SIGTERM\n"
