from __future__ import annotations

import fnmatch
import logging
import threading
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

import agy_trio.policy
from agy_trio.core import policy as core_policy
from agy_trio.core.policy import (
    Decision,
    PolicyRule,
    PolicySet,
    ToolRequest,
    allow,
    allow_all,
    ask_user,
    deny,
    deny_all,
)
from agy_trio.errors import ConfigError, PolicyDenied
from tests.core.sample_tools import approve, approve_async, reject

# --------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------


def test_constructors() -> None:
    assert allow() == PolicyRule(Decision.ALLOW, "*")
    assert deny("rm_*") == PolicyRule(Decision.DENY, "rm_*")
    assert ask_user("write", approve) == PolicyRule(Decision.ASK_USER, "write", approve)
    assert allow_all() == allow("*")
    assert deny_all() == deny("*")


@pytest.mark.parametrize("pattern", ["", "   "])
def test_empty_pattern_is_rejected(pattern: str) -> None:
    with pytest.raises(ConfigError) as info:
        allow(pattern)
    assert info.value.field == "tool"


def test_an_ask_user_handler_must_be_callable() -> None:
    with pytest.raises(ConfigError) as info:
        ask_user("x", "not callable")  # type: ignore[arg-type]
    assert info.value.field == "handler"
    with pytest.raises(ConfigError) as info:
        ask_user("x", reason=5)  # type: ignore[arg-type]
    assert info.value.field == "reason"
    with pytest.raises(ConfigError) as info:
        PolicyRule(Decision.DENY, "x", reason="why")
    assert info.value.field == "reason"


async def test_ask_user_without_a_handler_and_nobody_to_ask_denies_saying_so() -> None:
    rules = PolicySet([ask_user("rm")])
    with pytest.raises(PolicyDenied) as info:
        await rules.check("rm", {}, handler_timeout=1)
    assert "no handler and there is no server to ask" in info.value.reason


async def test_ask_user_without_a_handler_asks_the_approver_with_the_rules_reason() -> None:
    asked: list[tuple[str, dict[str, object], str, str]] = []

    async def approver(request: ToolRequest, reason: str) -> bool:
        await trio.lowlevel.checkpoint()
        asked.append((request.tool, dict(request.arguments), request.agent_id, reason))
        return request.arguments.get("path") == "/tmp/x"

    rules = PolicySet([ask_user("rm", reason="deleting files needs a yes")])
    await rules.check(
        "rm", {"path": "/tmp/x"}, handler_timeout=1, agent_id="a-1", approver=approver
    )
    with pytest.raises(PolicyDenied) as info:
        await rules.check("rm", {"path": "/"}, handler_timeout=1, approver=approver)
    assert "refused" in info.value.reason
    assert asked[0] == ("rm", {"path": "/tmp/x"}, "a-1", "deleting files needs a yes")
    # A rule with a handler keeps its handler; the approver is not asked.
    await PolicySet([ask_user("rm", approve)]).check("rm", {}, handler_timeout=1, approver=approver)
    assert len(asked) == 2
    # Without a reason, the prompt says which rule holds the call.
    await PolicySet([ask_user("r*")]).check(
        "rm", {"path": "/tmp/x"}, handler_timeout=1, approver=approver
    )
    assert asked[-1][3] == "ask_user rule 'r*' holds this tool call"


def test_only_ask_user_takes_a_handler() -> None:
    with pytest.raises(ConfigError) as info:
        PolicyRule(Decision.DENY, "x", approve)
    assert info.value.field == "handler"


def test_decision_must_be_a_decision() -> None:
    with pytest.raises(ConfigError) as info:
        PolicyRule("allow", "x")  # type: ignore[arg-type]
    assert info.value.field == "decision"


def test_policy_set_validation() -> None:
    with pytest.raises(ConfigError) as info:
        PolicySet((allow(),), default=Decision.ASK_USER)
    assert info.value.field == "default"
    with pytest.raises(ConfigError) as info:
        PolicySet(["deny"])  # type: ignore[list-item]
    assert info.value.field == "rules"
    assert PolicySet([allow()]).rules == (allow(),)


def test_matching_is_case_sensitive_fnmatch() -> None:
    rule = deny("write_*")
    assert rule.matches("write_file")
    assert not rule.matches("Write_file")
    assert not rule.matches("read_file")
    assert deny("read_?ile").matches("read_file")
    assert deny("[rw]*").matches("run")


# --------------------------------------------------------------------------
# Precedence
# --------------------------------------------------------------------------


def test_deny_beats_ask_beats_allow_regardless_of_order() -> None:
    rules = [allow("*"), ask_user("write_*", approve), deny("write_secret")]
    for ordering in (rules, rules[::-1], [rules[1], rules[2], rules[0]]):
        policies = PolicySet(ordering)
        assert policies.decide("write_secret") is Decision.DENY
        assert policies.decide("write_file") is Decision.ASK_USER
        assert policies.decide("read_file") is Decision.ALLOW


def test_default_applies_when_no_rule_matches() -> None:
    assert PolicySet((allow("read_*"),), default=Decision.DENY).decide("run") is Decision.DENY
    assert PolicySet().decide("anything") is Decision.ALLOW


_NAMES = st.text(alphabet="ab_", min_size=1, max_size=4)
_PATTERNS = st.text(alphabet="ab_*?", min_size=1, max_size=4)
_RULES = st.one_of(
    st.builds(allow, _PATTERNS),
    st.builds(deny, _PATTERNS),
    st.builds(ask_user, _PATTERNS, st.just(approve)),
)


def _reference_decision(rules: list[PolicyRule], default: Decision, name: str) -> Decision:
    matched = {rule.decision for rule in rules if fnmatch.fnmatchcase(name, rule.tool)}
    for decision in (Decision.DENY, Decision.ASK_USER, Decision.ALLOW):
        if decision in matched:
            return decision
    return default


@given(
    st.lists(_RULES, max_size=6),
    st.sampled_from([Decision.ALLOW, Decision.DENY]),
    _NAMES,
    st.randoms(use_true_random=False),
)
def test_decide_matches_reference_model_in_any_order(
    rules: list[PolicyRule], default: Decision, name: str, rng: Any
) -> None:
    expected = _reference_decision(rules, default, name)
    assert PolicySet(rules, default=default).decide(name) is expected
    shuffled = list(rules)
    rng.shuffle(shuffled)
    assert PolicySet(shuffled, default=default).decide(name) is expected


# --------------------------------------------------------------------------
# check()
# --------------------------------------------------------------------------


async def test_allowed_tool_passes() -> None:
    await PolicySet((allow_all(),)).check("anything", {}, handler_timeout=1)


async def test_denied_tool_raises_with_tool_and_reason() -> None:
    with pytest.raises(PolicyDenied) as info:
        await PolicySet((allow_all(), deny("rm"))).check("rm", {}, handler_timeout=1)
    assert info.value.tool == "rm"
    assert "'rm'" in info.value.reason


async def test_default_deny_raises() -> None:
    with pytest.raises(PolicyDenied, match="default"):
        await PolicySet(default=Decision.DENY).check("x", {}, handler_timeout=1)


@pytest.mark.parametrize("handler", [approve, approve_async])
async def test_approving_handler_lets_the_tool_run(handler: Any) -> None:
    await PolicySet((ask_user("x", handler),)).check("x", {}, handler_timeout=1)


async def test_refusing_handler_blocks_the_tool() -> None:
    with pytest.raises(PolicyDenied, match="refused"):
        await PolicySet((ask_user("x", reject),)).check("x", {}, handler_timeout=1)


async def test_async_refusing_handler_blocks_the_tool() -> None:
    async def no(request: ToolRequest) -> bool:
        await trio.lowlevel.checkpoint()
        return False

    with pytest.raises(PolicyDenied):
        await PolicySet((ask_user("x", no),)).check("x", {}, handler_timeout=1)


async def test_handler_gets_the_request() -> None:
    seen: list[ToolRequest] = []

    async def record(request: ToolRequest) -> bool:
        seen.append(request)
        return True

    await PolicySet((ask_user("wr*", record),)).check(
        "write", {"path": "/tmp/x"}, handler_timeout=1, agent_id="agent-1"
    )
    [request] = seen
    assert (request.tool, dict(request.arguments), request.agent_id) == (
        "write",
        {"path": "/tmp/x"},
        "agent-1",
    )
    with pytest.raises(TypeError):
        request.arguments["path"] = "/etc"  # type: ignore[index]
    assert hash(request) == hash(ToolRequest("write", {}, "agent-1"))


async def test_sync_handler_runs_in_a_worker_thread() -> None:
    threads: list[int] = []

    def where(request: ToolRequest) -> bool:
        threads.append(threading.get_ident())
        return True

    await PolicySet((ask_user("x", where),)).check("x", {}, handler_timeout=1)
    assert threads and threads[0] != threading.get_ident()


async def test_every_matching_handler_must_approve() -> None:
    calls: list[str] = []

    def first(request: ToolRequest) -> bool:
        calls.append("first")
        return True

    def second(request: ToolRequest) -> bool:
        calls.append("second")
        return False

    policies = PolicySet((ask_user("*", first), ask_user("x", second), allow("x")))
    with pytest.raises(PolicyDenied):
        await policies.check("x", {}, handler_timeout=1)
    assert calls == ["first", "second"]


async def test_raising_handler_denies(caplog: pytest.LogCaptureFixture) -> None:
    def broken(request: ToolRequest) -> bool:
        raise ValueError("handler bug")

    with (
        caplog.at_level(logging.WARNING, logger="agy_trio.policy"),
        pytest.raises(PolicyDenied) as info,
    ):
        await PolicySet((ask_user("x", broken),)).check("x", {}, handler_timeout=1)
    assert "raised ValueError: handler bug" in info.value.reason
    assert any("broken" in record.getMessage() for record in caplog.records)


async def test_raising_async_handler_denies() -> None:
    async def broken(request: ToolRequest) -> bool:
        raise KeyError("nope")

    with pytest.raises(PolicyDenied, match="KeyError"):
        await PolicySet((ask_user("x", broken),)).check("x", {}, handler_timeout=1)


@pytest.mark.parametrize("answer", [1, 0, "yes", None, [True]])
async def test_non_bool_answer_denies(answer: Any) -> None:
    def odd(request: ToolRequest) -> Any:
        return answer

    with pytest.raises(PolicyDenied, match="not True or False"):
        await PolicySet((ask_user("x", odd),)).check("x", {}, handler_timeout=1)


async def test_async_handler_past_timeout_denies(autojump_clock: trio.abc.Clock) -> None:
    async def slow(request: ToolRequest) -> bool:
        await trio.sleep(60)
        return True

    start = trio.current_time()
    with pytest.raises(PolicyDenied, match="did not answer within 5 s"):
        await PolicySet((ask_user("x", slow),)).check("x", {}, handler_timeout=5)
    assert trio.current_time() - start == pytest.approx(5)


async def test_blocked_sync_handler_past_timeout_denies(autojump_clock: trio.abc.Clock) -> None:
    release = threading.Event()

    def stuck(request: ToolRequest) -> bool:
        release.wait(30)
        return True

    try:
        with pytest.raises(PolicyDenied, match="did not answer"):
            await PolicySet((ask_user("x", stuck),)).check("x", {}, handler_timeout=5)
    finally:
        release.set()


async def test_outer_cancellation_is_not_turned_into_a_denial(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def slow(request: ToolRequest) -> bool:
        await trio.sleep(60)
        return True

    with trio.move_on_after(1) as scope:
        await PolicySet((ask_user("x", slow),)).check("x", {}, handler_timeout=10)
    assert scope.cancelled_caught


def test_public_policy_module_exports_the_core_names() -> None:
    assert agy_trio.policy.__all__ == core_policy.__all__
    for name in core_policy.__all__:
        assert getattr(agy_trio.policy, name) is getattr(core_policy, name)
