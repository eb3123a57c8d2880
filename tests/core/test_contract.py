"""The typed command contract: the command set, the handle and HostedAgent are checked together."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agy_trio.adapters.hosted import HostedSession
from agy_trio.core import commands as cmds
from agy_trio.core.agent import AgentHandle
from agy_trio.core.contract import ContractError, HostedAgent, check_contract
from agy_trio.core.runtime import Runtime
from agy_trio.testing.null_backend import NullAgent

SENDERS = (AgentHandle, Runtime)


def test_the_real_command_set_keeps_the_contract() -> None:
    check_contract(cmds.COMMANDS, SENDERS, HostedAgent)


def test_every_command_a_backend_answers_is_a_coroutine_of_the_protocol() -> None:
    answered = {spec.name for spec in cmds.COMMANDS if spec.call is not None}
    assert answered == {
        "chat",
        "send",
        "cancel",
        "wait_for_idle",
        "is_idle",
        "history",
        "turn_count",
        "total_usage",
        "last_turn_usage",
        "clear_history",
        "compaction_indices",
        "last_response",
    }
    # Routed straight to the session means answered by the agent.
    assert all(spec.call is not None for spec in cmds.COMMANDS if spec.route is cmds.Route.SESSION)


def test_a_throwaway_spec_without_its_agent_method_fails_at_once() -> None:
    frobnicate = cmds.CommandSpec[int](
        "frobnicate", call=lambda agent: agent.frobnicate(), method="history"
    )
    with pytest.raises(ContractError, match=r"HostedAgent has no coroutine method frobnicate\(\)"):
        check_contract((*cmds.COMMANDS, frobnicate), SENDERS, HostedAgent)


def test_a_throwaway_spec_without_its_handle_method_fails_at_once() -> None:
    frobnicate = cmds.CommandSpec[None]("frobnicate", cmds.Route.RUNTIME)
    with pytest.raises(ContractError, match=r"has no coroutine method frobnicate\(\)"):
        check_contract((*cmds.COMMANDS, frobnicate), SENDERS, HostedAgent)


def test_a_protocol_coroutine_without_its_command_fails() -> None:
    class WiderAgent(HostedAgent):
        async def frobnicate(self) -> int:
            return 1

    with pytest.raises(ContractError, match=r"WiderAgent.frobnicate\(\) answers no command"):
        check_contract(cmds.COMMANDS, SENDERS, WiderAgent)


def test_the_null_agent_serves_every_command_of_the_protocol() -> None:
    for spec in cmds.COMMANDS:
        if spec.call is not None:
            assert callable(getattr(NullAgent, spec.name)), spec.name


_AGENT_MISSING_HISTORY = """
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agy_trio.adapters.hosted import HostedSession
from agy_trio.core.content import Part
from agy_trio.core.contract import Ending, TurnSink
from agy_trio.core.events import Message, Usage
from agy_trio.testing.null_backend import InlineHost


class HalfAgent:
    conversation_id = "half"

    async def chat(self, content: Sequence[Part], sink: TurnSink) -> None: ...
    async def send(self, content: Sequence[Part]) -> None: ...
    async def cancel(self) -> None: ...
    async def wait_for_idle(self) -> None: ...
    async def is_idle(self) -> bool: return True
    async def turn_count(self) -> int: return 0
    async def total_usage(self) -> Usage: return Usage()
    async def last_turn_usage(self) -> Usage: return Usage()
    async def clear_history(self) -> None: ...
    async def compaction_indices(self) -> list[int]: return []
    async def last_response(self) -> str | None: return None
    async def cancel_turns(self, turns: Sequence[Any]) -> None: ...
    async def end(self, how: Ending) -> None: ...
    {history}


def make() -> HostedSession:
    return HostedSession(
        HalfAgent(), InlineHost(), classify=lambda e: e, high_water=1, batch_max=1
    )
"""


@pytest.mark.parametrize("has_history", [False, True])
def test_mypy_fails_while_a_backend_lacks_a_command(tmp_path: Path, has_history: bool) -> None:
    history = "async def history(self) -> list[Message]: return []" if has_history else ""
    source = tmp_path / "half_backend.py"
    source.write_text(textwrap.dedent(_AGENT_MISSING_HISTORY).replace("{history}", history))
    # A process of its own: mypy tunes this process's garbage collector as it runs.
    command = [sys.executable, "-m", "mypy", str(source), "--strict", "--no-error-summary"]
    checked = subprocess.run(
        [*command, "--cache-dir", str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        check=False,
    )
    if has_history:
        assert checked.returncode == 0, checked.stdout + checked.stderr
    else:
        assert checked.returncode == 1, checked.stdout + checked.stderr
        assert 'incompatible type "HalfAgent"; expected "HostedAgent"' in checked.stdout
        assert "history" in checked.stdout


def test_session_submit_has_no_table_of_command_names() -> None:
    import inspect

    source = inspect.getsource(HostedSession.submit)
    for spec in cmds.COMMANDS:
        if spec is not cmds.CHAT:
            assert f"cmds.{spec.name.upper()}" not in source
    assert "getattr" not in source
