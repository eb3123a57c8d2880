from __future__ import annotations

import fnmatch
import logging
import threading
from collections.abc import Callable
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
    assert allow_all() == PolicyRule(Decision.ALLOW, "*", name="allow_all")
    assert deny_all() == PolicyRule(Decision.DENY, "*", name="deny_all")
    assert Decision.APPROVE is Decision.ALLOW


# Each way to build a rule or a set wrongly, and the field the refusal names.
BAD_RULES: dict[str, tuple[Callable[[], object], str]] = {
    "an empty pattern": (lambda: allow(""), "tool"),
    "a blank pattern": (lambda: allow("   "), "tool"),
    "ask_user with a handler that is no callable": (
        lambda: ask_user("x", "not callable"),  # type: ignore[arg-type]
        "handler",
    ),
    "a handler on a rule other than ask_user": (
        lambda: PolicyRule(Decision.DENY, "x", approve),
        "handler",
    ),
    "a decision that is no Decision": (
        lambda: PolicyRule("allow", "x"),  # type: ignore[arg-type]
        "decision",
    ),
    "a set whose default asks": (
        lambda: PolicySet((allow(),), default=Decision.ASK_USER),
        "default",
    ),
    "a set of something other than rules": (
        lambda: PolicySet(["deny"]),  # type: ignore[list-item]
        "rules",
    ),
}


@pytest.mark.parametrize(("build", "field"), BAD_RULES.values(), ids=BAD_RULES)
def test_a_bad_rule_or_set_is_refused_naming_its_field(
    build: Callable[[], object], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.field == field


def test_an_ask_user_rule_without_handler_is_representable() -> None:
    # It means "ask the person behind the runtime" where there is one.
    assert ask_user("x") == PolicyRule(Decision.ASK_USER, "x")


def test_a_set_keeps_its_rules_as_a_tuple() -> None:
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


def test_more_specific_beats_wildcard_then_deny_beats_ask_beats_allow() -> None:
    rules = [allow("*"), ask_user("write_*", approve), deny("write_secret")]
    for ordering in (rules, rules[::-1], [rules[1], rules[2], rules[0]]):
        policies = PolicySet(ordering)
        assert policies.decide("write_secret") is Decision.DENY
        assert policies.decide("write_file") is Decision.ASK_USER
        assert policies.decide("read_file") is Decision.ALLOW
    # The SDK's own example: a specific allow wins over a wildcard deny.
    assert PolicySet([deny_all(), allow("view_file")]).decide("view_file") is Decision.ALLOW
    assert PolicySet([deny_all(), allow("view_file")]).decide("edit_file") is Decision.DENY
    assert PolicySet([allow("x"), deny("x")]).decide("x") is Decision.DENY


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


def _scope(pattern: str) -> int:
    if pattern == "*":
        return 2
    return 1 if any(c in pattern for c in "*?[") else 0


def _reference_decision(rules: list[PolicyRule], default: Decision, name: str) -> Decision:
    # Glob patterns are agy_trio's own (the SDK's equivalence test covers the rest):
    # by precedence group, then deny > ask_user > allow; the first match decides.
    strength = {Decision.DENY: 0, Decision.ASK_USER: 1, Decision.ALLOW: 2}
    matched = [rule for rule in rules if fnmatch.fnmatchcase(name, rule.tool)]
    if not matched:
        return default
    return min(matched, key=lambda rule: (_scope(rule.tool), strength[rule.decision])).decision


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
    with pytest.raises(PolicyDenied, match=r"User denied tool 'x' \(policy 'x'\)"):
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


async def test_the_first_matching_rule_decides() -> None:
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
    # The specific ask_user comes first; its refusal decides.
    assert calls == ["second"]


async def test_raising_handler_denies(caplog: pytest.LogCaptureFixture) -> None:
    def broken(request: ToolRequest) -> bool:
        raise ValueError("handler bug")

    with (
        caplog.at_level(logging.WARNING, logger="agy_trio.policy"),
        pytest.raises(PolicyDenied) as info,
    ):
        await PolicySet((ask_user("x", broken),)).check("x", {}, handler_timeout=1)
    assert info.value.reason == "Policy evaluation failed for policy 'x': ValueError('handler bug')"
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "'x'" in record.getMessage() and record.exc_info is not None


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
    assert set(core_policy.__all__) <= set(agy_trio.policy.__all__)
    for name in core_policy.__all__:
        assert getattr(agy_trio.policy, name) is getattr(core_policy, name)
