"""docs/serve.md's console examples show what the commands print, run here as written.

Each block marked ``<!-- console: NAME -->`` is run: the ``$ agy-trio serve``
quick start (its first two lines), and the ``curl`` session against
``agy-trio serve --backend scripted``. What varies from run to run is
normalised on both sides: ports and turn ids.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.processes import offline_env
from tests.serve._process import server_process

ROOT = Path(__file__).resolve().parents[2]
SERVE_MD = (ROOT / "docs" / "serve.md").read_text()


def _block(name: str) -> str:
    match = re.search(rf"<!-- console: {name} -->\n```console\n(.*?)```", SERVE_MD, re.DOTALL)
    assert match is not None, name
    return match[1]


def _normal(text: str) -> str:
    text = re.sub(r"127\.0\.0\.1:\d+/v1", "127.0.0.1:PORT/v1", text)
    return re.sub(r"turn-[0-9a-f]{16}", "turn-ID", text)


def _sessions(block: str) -> list[tuple[str, str]]:
    """Each ``$ command`` with the output shown under it."""
    found: list[tuple[str, str]] = []
    for chunk in block.split("$ ")[1:]:
        command, _, output = chunk.partition("\n")
        found.append((command, output))
    return found


@pytest.mark.sdk
def test_the_quick_start_prints_what_the_page_shows(tmp_path: Path) -> None:
    (install, _), (serve, shown) = _sessions(_block("quick-start"))
    assert install == "pip install 'agy-trio[serve,antigravity]'"
    argv = ["-m", "agy_trio", *shlex.split(serve)[1:], "--port", "0"]
    with server_process(argv, offline_env(tmp_path), header_lines=2) as server:
        printed = "".join(server.lines).replace(server.url, "http://127.0.0.1:8000")
        server.stop()
    assert _normal(printed) == _normal(shown)


def test_the_curl_session_prints_what_the_page_shows(tmp_path: Path) -> None:
    argv = ["-m", "agy_trio", "serve", "--backend", "scripted", "--port", "0"]
    with server_process(argv, offline_env(tmp_path), header_lines=2) as server:
        with httpx.Client(base_url=server.url) as client:
            assert client.get("/healthz").status_code == 200
        for command, shown in _sessions(_block("chat")):
            command = command.replace("http://127.0.0.1:8000", server.url)
            result = subprocess.run(
                shlex.split(command), capture_output=True, text=True, timeout=60, check=True
            )
            # Line ends at the very end aside (curl's JSON has none, SSE two).
            assert _normal(result.stdout).rstrip() == _normal(shown).rstrip(), command
        server.stop()
