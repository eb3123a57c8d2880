"""``agy-trio chat`` with no prompt: the interactive session, driven in a pseudo-terminal.

pexpect gives each session a pseudo-terminal of its own, so keys go through
the terminal's line discipline as a person's would: Ctrl-C at the prompt is a
key prompt_toolkit reads (raw mode), Ctrl-C while an answer streams is the
terminal's SIGINT to the session's process group.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.processes import offline_env, run_python
from tests.sdk_support import (
    hang_the_next_model_call,
    harnesses_under,
    model_server_process,
    wait_until_the_model_call_hangs,
)

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "you>"
CTRL_A, CTRL_C, UP = "\x01", "\x03", "\x1b[A"
USAGE = r"\(\d+ in, \d+ out tokens; end_turn\)"


def _env(home: Path) -> dict[str, str]:
    # pexpect answers no cursor-position request: spare prompt_toolkit the wait.
    return offline_env(home, TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1")


def _spawn(home: Path, *argv: str) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        list(argv),
        cwd=str(home),
        env=_env(home),
        encoding="utf-8",
        dimensions=(24, 160),
        timeout=60,
    )


def _ended(child: pexpect.spawn) -> tuple[int | None, str]:
    child.expect(pexpect.EOF)
    rest: str = child.before
    child.close()
    return child.exitstatus, rest


def test_line_editing_history_and_the_commands(tmp_path: Path) -> None:
    child = _spawn(tmp_path, "-m", "agy_trio", "chat", "--backend", "scripted")
    try:
        child.expect("agy-trio chat: scripted backend")
        child.expect(PROMPT)
        # Line editing: type the end first, jump to the start, type the beginning.
        child.send("world" + CTRL_A + "hello \r")
        child.expect("You said: hello world")
        child.expect(USAGE)
        child.expect(PROMPT)
        # The earlier prompt under the up arrow.
        child.send(UP + "\r")
        child.expect("You said: hello world")
        child.expect(PROMPT)
        child.send("/help\r")
        child.expect("/history  the conversation so far")
        child.expect(PROMPT)
        child.send("/history\r")
        child.expect("user: hello world\r\nassistant: You said: hello world\r\nuser: hello world")
        child.expect(PROMPT)
        child.send("/new\r")
        child.expect(r"\(a new conversation\)")
        child.expect(PROMPT)
        child.send("/history\r")
        child.expect(r"\(no messages yet\)")
        child.expect(PROMPT)
        child.send("/exit\r")
        status, rest = _ended(child)
    finally:
        child.terminate(force=True)
    assert status == 0, rest
    assert "Traceback" not in rest


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with model_server_process(tmp_path_factory.mktemp("model-server")) as root:
        yield root


@pytest.mark.sdk
def test_ctrl_c_cancels_the_answer_and_at_the_prompt_leaves(
    tmp_path: Path, model_server: str
) -> None:
    endpoint = ["--base-url", f"{model_server}/v1", "--model", "local"]
    child = _spawn(tmp_path, "-m", "agy_trio", "chat", *endpoint)
    try:
        child.expect("agy-trio chat: real SDK")
        child.expect(PROMPT)
        hang_the_next_model_call(model_server)
        child.send("an answer that never comes\r")
        wait_until_the_model_call_hangs(child, model_server)
        assert harnesses_under(tmp_path) != []
        child.send(CTRL_C)  # the terminal's SIGINT, while the answer streams
        child.expect(r"\(cancelled\)")
        child.expect(PROMPT)
        # The agent is ready for the next turn at once.
        child.send("hello again\r")
        child.expect("You said: hello again")
        child.expect(USAGE)
        child.expect(PROMPT)
        child.send(CTRL_C)  # at the prompt: leave
        status, rest = _ended(child)
    finally:
        child.terminate(force=True)
    assert status == 130, rest
    assert rest.rstrip().endswith("interrupted")
    assert "Traceback" not in rest and "error" not in rest.lower()
    assert harnesses_under(tmp_path) == []
    assert list((tmp_path / "tmp").iterdir()) == []


SHOW_EVERYTHING = textwrap.dedent(
    """
    import trio, agy_trio
    from agy_trio.cli._session import ChatSession, TerminalReader
    from agy_trio.testing.scripted import CallTool, Say, ScriptedBackend, Think, Turn

    @agy_trio.tool
    def weather(city: str) -> str:
        \"\"\"The weather in a city.\"\"\"
        return f"sunny in {city}"

    TURN = Turn([Think("Let me look it up."), CallTool("weather", {"city": "Oslo"}), Say("Sunny.")])

    async def main():
        backend = ScriptedBackend([TURN])
        async with agy_trio.open_runtime(backend=backend) as rt:
            config = agy_trio.AgentConfig(name="helper", tools=[weather])
            await ChatSession(rt, config, TerminalReader()).run("session")

    trio.run(main)
    """
)


def test_thoughts_and_tool_calls_are_shown_apart_from_the_answer(tmp_path: Path) -> None:
    program = tmp_path / "show.py"
    program.write_text(SHOW_EVERYTHING)
    child = _spawn(tmp_path, str(program))
    try:
        child.expect(PROMPT)
        child.send("weather in Oslo?\r")
        child.expect("thinking: ")
        child.expect("Let me look it up.")
        child.expect(r'tool: weather\(\{"city": "Oslo"\}\) -> sunny in Oslo')
        child.expect("Sunny.")
        child.expect(USAGE)
        child.expect(PROMPT)
        child.sendeof()
        status, rest = _ended(child)
    finally:
        child.terminate(force=True)
    assert status == 0, rest


def test_prompts_piped_in_are_answered_one_per_line(tmp_path: Path) -> None:
    result = run_python(
        "-m",
        "agy_trio",
        "chat",
        "--backend",
        "scripted",
        input="hello\n/history\nbye\n",
        env=_env(tmp_path),
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[2:] == [
        "You said: hello",
        "(1 in, 3 out tokens; end_turn)",
        "user: hello",
        "assistant: You said: hello",
        "You said: bye",
        "(1 in, 3 out tokens; end_turn)",
    ]
