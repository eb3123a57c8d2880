"""AG-UI with its real client: @ag-ui/client's HttpAgent (Node) against the real SDK.

The server runs agy_trio's AntigravityBackend against the local model server;
the client is ``tests/node/ag_ui_driver.mjs``, which drives ``HttpAgent`` one
run per JSON line. The model calls ``lend`` when the prompt says so (the
local model server's default behaviour), and an ``ask_user`` rule without a
handler holds that call for the person behind the server.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
from httpx_sse import aconnect_sse

import agy_trio
from agy_trio.adapters.antigravity import AntigravityBackend
from agy_trio.serve import ServedProfile, ServerAddress, serve
from agy_trio.testing import open_model_server
from tests.sdk_support import harness_processes
from tests.serve import sample_tools
from tests.serve._helpers import FAST, TOKEN

NODE_DIR = Path(__file__).resolve().parent.parent / "node"
DRIVER = NODE_DIR / "ag_ui_driver.mjs"
REASON = "lending a book needs a librarian's yes"
LEND = 'call tool lend with {"book": "Dune"}'

pytestmark = [
    pytest.mark.sdk,
    pytest.mark.skipif(shutil.which("node") is None, reason="needs Node 20 (node on PATH)"),
]


@pytest.fixture(autouse=True)
def _node_packages_installed() -> None:
    # Installed by the set-up script (npm ci in tests/node); missing is a set-up fault.
    assert (NODE_DIR / "node_modules" / "@ag-ui" / "client").is_dir(), (
        "run scripts/setup.sh (it installs tests/node's packages with npm ci)"
    )


@pytest.fixture(autouse=True)
def _no_harness_left() -> Any:
    assert harness_processes() == []
    yield
    assert harness_processes() == [], "a localharness process outlived its test"


class Driver:
    """One ``HttpAgent`` in a Node process: ``await driver.run({...})`` is one run."""

    def __init__(self, process: trio.Process) -> None:
        self._process = process
        self._buffer = b""

    async def run(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        await self._process.stdin.send_all(json.dumps(command).encode() + b"\n")
        while b"\n" not in self._buffer:
            chunk = await self._process.stdout.receive_some()
            assert chunk, "the Node driver exited"
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        return answer


@attrs.define
class Served:
    url: str
    client: httpx.AsyncClient
    nursery: trio.Nursery


@asynccontextmanager
async def sdk_server(tmp_path: Path, **serve_options: Any) -> AsyncIterator[Served]:
    sample_tools.LENT.clear()
    serve_options.setdefault("token", TOKEN)
    async with open_model_server() as model:
        config = agy_trio.AgentConfig(
            model="agy-trio-local",
            base_url=model.url,
            tools=[sample_tools.lend],
            policies=[agy_trio.policy.ask_user("lend", reason=REASON)],
        )
        backend = AntigravityBackend(base_dir=tmp_path / "backend")
        async with (
            agy_trio.open_runtime(FAST, backend=backend) as runtime,
            trio.open_nursery() as nursery,
        ):
            address: ServerAddress = await nursery.start(
                functools.partial(
                    serve,
                    runtime,
                    port=0,
                    profile=ServedProfile(config=config),
                    **serve_options,
                )
            )
            headers = {"authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(
                base_url=address.url, headers=headers, timeout=60
            ) as client:
                yield Served(f"{address.url}/ag-ui", client, nursery)
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def node_agent(url: str, thread_id: str) -> AsyncIterator[Driver]:
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            functools.partial(
                trio.run_process,
                ["node", str(DRIVER), url, thread_id, TOKEN],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=NODE_DIR,
                check=False,
            )
        )
        try:
            yield Driver(process)
        finally:
            assert process.stdin is not None
            await process.stdin.aclose()  # the driver ends at the end of its input
            with trio.fail_after(30):
                await process.wait()
    assert process.returncode == 0


def kinds(answer: dict[str, Any]) -> list[str]:
    return [event["type"] for event in answer["events"]]


def interrupt_of(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["failure"] is None, answer
    finished = answer["events"][-1]
    assert finished["type"] == "RUN_FINISHED"
    assert finished["outcome"]["type"] == "interrupt"
    (interrupt,) = finished["outcome"]["interrupts"]
    assert answer["pendingInterrupts"] == [interrupt]
    assert interrupt["reason"] == REASON
    assert interrupt["metadata"]["tool"] == "lend"
    assert interrupt["metadata"]["arguments"]["book"] == "Dune"
    # The interrupt names the tool call the run announced.
    starts = [e for e in answer["events"] if e["type"] == "TOOL_CALL_START"]
    assert [e["toolCallId"] for e in starts] == [interrupt["toolCallId"]]
    assert starts[0]["toolCallName"] == "lend"
    assert sample_tools.LENT == []
    return interrupt


def tool_result(answer: dict[str, Any], interrupt: dict[str, Any]) -> str:
    assert answer["failure"] is None, answer
    assert kinds(answer)[0] == "RUN_STARTED" and kinds(answer)[-1] == "RUN_FINISHED"
    assert answer["events"][-1]["outcome"]["type"] == "success"
    assert answer["pendingInterrupts"] == []
    (result,) = [e for e in answer["events"] if e["type"] == "TOOL_CALL_RESULT"]
    assert result["toolCallId"] == interrupt["toolCallId"]
    content: str = result["content"]
    return content


async def test_a_plain_run_streams_the_answer(tmp_path: Path) -> None:
    async with sdk_server(tmp_path) as served, node_agent(served.url, "plain") as agent:
        answer = await agent.run({"prompt": "hello from node"})
        assert answer["failure"] is None and answer["runErrors"] == []
        assert kinds(answer)[0] == "RUN_STARTED"
        assert answer["events"][0]["protocolVersion"] == "1.0"
        assert "TEXT_MESSAGE_START" in kinds(answer) and kinds(answer)[-1] == "RUN_FINISHED"
        text = "".join(e["delta"] for e in answer["events"] if e["type"] == "TEXT_MESSAGE_CONTENT")
        assert text == "You said: hello from node"
        (message,) = answer["newMessages"]
        assert message["role"] == "assistant" and message["content"] == text


async def test_an_approved_interrupt_runs_the_tool(tmp_path: Path) -> None:
    async with sdk_server(tmp_path) as served, node_agent(served.url, "approve") as agent:
        interrupt = interrupt_of(await agent.run({"prompt": LEND}))
        (listed,) = (await served.client.get("/v1/approvals")).json()
        assert listed["id"] == interrupt["id"]
        resume = [
            {"interruptId": interrupt["id"], "status": "resolved", "payload": {"approved": True}}
        ]
        answer = await agent.run({"resume": resume})
        assert tool_result(answer, interrupt) == '"lent Dune"'
        assert sample_tools.LENT == ["Dune"]
        text = "".join(e["delta"] for e in answer["events"] if e["type"] == "TEXT_MESSAGE_CONTENT")
        assert text.startswith("Tool lend returned:") and "lent Dune" in text
        # The thread goes on: the next run is a new turn of the same agent.
        again = await agent.run({"prompt": "thanks"})
        assert again["failure"] is None and again["events"][-1]["outcome"]["type"] == "success"
        (row,) = (await served.client.get("/v1/agents")).json()
        assert row["turns"] == 2


@pytest.mark.parametrize(
    "resume",
    [
        {"status": "resolved", "payload": {"approved": False, "reason": "overdue"}},
        {"status": "cancelled"},
    ],
)
async def test_a_denied_interrupt_refuses_the_tool(tmp_path: Path, resume: dict[str, Any]) -> None:
    async with sdk_server(tmp_path) as served, node_agent(served.url, "deny") as agent:
        interrupt = interrupt_of(await agent.run({"prompt": LEND}))
        answer = await agent.run({"resume": [{"interruptId": interrupt["id"], **resume}]})
        content = tool_result(answer, interrupt)
        assert content.startswith("error: ") and REASON in content
        assert sample_tools.LENT == []


async def test_an_interrupt_nobody_answers_in_time_is_refused(tmp_path: Path) -> None:
    async with (
        sdk_server(tmp_path, approval_timeout=0.5, reattach_grace=60) as served,
        node_agent(served.url, "late") as agent,
    ):
        interrupt = interrupt_of(await agent.run({"prompt": LEND}))
        # Follow the turn natively until the timeout has answered for us.
        turn = interrupt["metadata"]["turn_id"]
        with trio.CancelScope() as answered, trio.fail_after(30):
            async with aconnect_sse(served.client, "GET", f"/v1/turns/{turn}/events") as source:
                async for frame in source.aiter_sse():
                    if frame.event == "approval_answered":
                        assert frame.json()["approved"] is False
                        answered.cancel()
        assert answered.cancelled_caught
        resume = [
            {"interruptId": interrupt["id"], "status": "resolved", "payload": {"approved": True}}
        ]
        content = tool_result(await agent.run({"resume": resume}), interrupt)
        assert content.startswith("error: ")
        assert sample_tools.LENT == []


def _docs_example() -> str:
    text = (Path(__file__).resolve().parents[2] / "docs" / "protocols.md").read_text()
    found = re.search(r"<!-- node: ag-ui -->\n```js\n(.*?)```", text, re.DOTALL)
    assert found is not None, "docs/protocols.md lost its AG-UI example"
    return found[1]


async def test_the_docs_example_approves_with_the_real_client(tmp_path: Path) -> None:
    # Written beside tests/node's packages, where Node resolves @ag-ui/client.
    script = NODE_DIR / f"docs_example_{uuid.uuid4().hex}.mjs"
    script.write_text(_docs_example())
    try:
        async with sdk_server(tmp_path, token=None) as served:
            result = await trio.run_process(
                ["node", str(script)],
                cwd=NODE_DIR,
                env={**os.environ, "AGY_TRIO_URL": served.url},
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    finally:
        script.unlink()
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert f"approving lend: {REASON}" in out
    assert "Tool lend returned:" in out and "lent Dune" in out
    assert sample_tools.LENT == ["Dune"]
