"""The embedding example of docs/serve.md, run exactly as printed there."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import httpx
from httpx_sse import connect_sse

from tests.processes import ROOT, offline_env
from tests.serve._helpers import data
from tests.serve._process import server_process

DOC = ROOT / "docs" / "serve.md"


def _example() -> str:
    text = DOC.read_text()
    found = re.search(r"<!-- example: embedding -->\n```python\n(.*?)\n```", text, re.DOTALL)
    assert found is not None, "docs/serve.md lost its embedding example"
    return found.group(1) + "\n"


def test_the_embedding_example_serves_and_stops_in_order_on_sigterm(tmp_path: Path) -> None:
    program = tmp_path / "embedding.py"
    program.write_text(_example())
    with server_process([str(program)], offline_env(tmp_path, PORT="0"), header_lines=2) as server:
        # The program's own task runs next to the server.
        assert server.lines[1] == "0 agents, 0 turns running\n"
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert "agy_trio agents" in client.get("/").text
            agent_id = client.post("/v1/agents", json={"name": "reader"}).json()["id"]
            events = []
            with connect_sse(
                client, "POST", f"/v1/agents/{agent_id}/chat", json={"prompt": "a long one"}
            ) as source:
                for event in source.iter_sse():
                    events.append(event)
                    if len(events) == 2:  # the slow answer is streaming: stop the program
                        server.process.send_signal(signal.SIGTERM)
        out, err = server.process.communicate(timeout=60)
    assert [e.event for e in events[:2]] == ["delta", "delta"]
    assert events[-1].event == "error"
    assert data(events[-1]) == {
        "type": "RuntimeClosed",
        "message": "the server is shutting down",
        "retry_after": None,
    }
    assert server.process.returncode == 0, err
    assert out.endswith("Stopped.\n")
    assert "Traceback" not in err
