"""Every public async function of the tool, policy and hook modules is a Trio checkpoint.

Each case is one path through one public async method. On every path the call
must be a cancel point (in an already-cancelled scope it raises Cancelled) and,
when it returns, also a schedule point (``trio.testing.assert_checkpoints``).
User code must not start once the caller is cancelled.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from agy_trio.core import hook_points, policy_calls
from agy_trio.core.calling import Guard, run_callable
from agy_trio.core.dispatch import ToolDispatcher
from agy_trio.core.hook_types import AskQuestionInteractionSpec, HookContext, StopArgs
from agy_trio.core.hooks import Hooks, ToolEvent, ToolResultEvent
from agy_trio.core.policy import PolicySet, ToolRequest, allow_all, ask_user, deny
from agy_trio.core.tools import tool
from agy_trio.errors import PolicyDenied, ToolArgumentError, ToolNotFound

# The modules whose every public async function the cases below must cover.
MODULES = tuple(
    importlib.import_module(f"agy_trio.core.{name}")
    for name in (
        "calling",
        "dispatch",
        "hook_points",
        "hooks",
        "import_paths",
        "policy",
        "policy_calls",
        "tool_schema",
        "tools",
    )
)

EVENT = ToolEvent("a", "t", {})
GUARD = Guard("test guard", "refused", logging.getLogger("tests.checkpoints"))


@attrs.define
class Journal:
    """What user code ran during one case."""

    calls: list[str] = attrs.field(factory=list)

    def sync(self, event: object = None) -> bool:
        self.calls.append("sync")
        return True

    async def quick(self, event: object = None) -> bool:
        # Async user code that never yields: the checkpoint must come from agy_trio.
        self.calls.append("async")
        return True

    def sync_tool(self) -> bool:
        return self.sync()

    async def quick_tool(self) -> bool:
        return await self.quick()


@attrs.frozen
class Case:
    """One path through one public async method."""

    method: str
    call: Callable[[Journal], Awaitable[Any]]
    raises: type[Exception] | None = None


def _dispatcher(journal: Journal, **kwargs: Any) -> ToolDispatcher:
    return ToolDispatcher("a", [tool(journal.quick_tool, name="quick")], **kwargs)


def _hooked(journal: Journal, point: str) -> ToolDispatcher:
    return _dispatcher(journal, hooks=Hooks(**{point: (journal.quick,)}))


CONTEXT = HookContext("a")
REQUEST = ToolRequest("t")
# Every SDK hook point: (the dispatcher method, its arguments, the hook_points function).
POINTS = {
    "pre_turn": ("pre_turn", ("hi",)),
    "post_turn": ("post_turn", ("answer",)),
    "pre_tool_call": ("pre_tool_call", ("t", {})),
    "post_tool_call": ("tool_ran", (ToolResultEvent("a", "t"),)),
    "on_tool_error": ("tool_failed", (ValueError("x"), "t")),
    "stop": ("stop", (StopArgs(),)),
    "on_interaction": ("interaction", (AskQuestionInteractionSpec(),)),
    "on_compaction": ("compacted", ("summary",)),
    "on_session_start": ("session_started", ()),
    "on_session_end": ("session_ended", ()),
}


def _point_cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for point, (method, args) in POINTS.items():
        target = f"dispatch.ToolDispatcher.{method}"
        cases[f"{point}-none"] = Case(
            target, lambda j, m=method, a=args: getattr(_dispatcher(j), m)(*a)
        )
        cases[f"{point}-async"] = Case(
            target, lambda j, m=method, a=args, p=point: getattr(_hooked(j, p), m)(*a)
        )
    functions = {
        "call_hook": lambda j: hook_points.call_hook(j.quick, CONTEXT, 1, kind="k", timeout=1),
        "observe": lambda j: hook_points.observe((j.quick,), CONTEXT, 1, kind="k", timeout=1),
        "run_pre_turn": lambda j: hook_points.run_pre_turn((j.quick,), CONTEXT, "p", timeout=1),
        "run_pre_tool_call": lambda j: hook_points.run_pre_tool_call(
            (j.quick,), CONTEXT, REQUEST, timeout=1
        ),
        "run_on_tool_error": lambda j: hook_points.run_on_tool_error(
            (j.quick,), CONTEXT, ValueError(), timeout=1
        ),
        "run_stop": lambda j: hook_points.run_stop((j.quick,), CONTEXT, StopArgs(), timeout=1),
        "run_on_interaction": lambda j: hook_points.run_on_interaction(
            (j.quick,), CONTEXT, AskQuestionInteractionSpec(), timeout=1
        ),
    }
    for name, call in functions.items():
        cases[f"hook_points-{name}"] = Case(f"hook_points.{name}", call)
    # With no hooks at all, each still makes its checkpoint.
    cases["hook_points-run_stop-none"] = Case(
        "hook_points.run_stop", lambda j: hook_points.run_stop((), CONTEXT, StopArgs(), timeout=1)
    )
    cases["hook_points-run_pre_turn-none"] = Case(
        "hook_points.run_pre_turn", lambda j: hook_points.run_pre_turn((), CONTEXT, "p", timeout=1)
    )
    return cases


CASES = {
    "run_callable-inline": Case(
        "calling.run_callable", lambda j: run_callable(j.sync, in_thread=False)
    ),
    "run_callable-thread": Case("calling.run_callable", lambda j: run_callable(j.sync)),
    "run_callable-async": Case("calling.run_callable", lambda j: run_callable(j.quick)),
    "guard-allows": Case("calling.Guard.ask", lambda j: GUARD.ask(j.quick, 1, tool="t", timeout=1)),
    "guard-refuses": Case(
        "calling.Guard.ask",
        lambda j: GUARD.ask(lambda _: False, 1, tool="t", timeout=1),
        PolicyDenied,
    ),
    "invoke-async": Case("tools.Tool.invoke", lambda j: tool(j.quick_tool, name="q").invoke({})),
    "invoke-inline": Case(
        "tools.Tool.invoke", lambda j: tool(j.sync_tool, name="s", blocking=False).invoke({})
    ),
    "invoke-thread": Case("tools.Tool.invoke", lambda j: tool(j.sync_tool, name="s").invoke({})),
    "invoke-bad-arguments": Case(
        "tools.Tool.invoke",
        lambda j: tool(j.quick_tool, name="q").invoke({"nope": 1}),
        ToolArgumentError,
    ),
    "check-allow": Case(
        "policy.PolicySet.check",
        lambda j: PolicySet((allow_all(),)).check("t", {}, handler_timeout=1),
    ),
    "check-deny": Case(
        "policy.PolicySet.check",
        lambda j: PolicySet((deny("t"),)).check("t", {}, handler_timeout=1),
        PolicyDenied,
    ),
    "check-ask-user": Case(
        "policy.PolicySet.check",
        lambda j: PolicySet((ask_user("t", j.quick),)).check("t", {}, handler_timeout=1),
    ),
    "evaluate-default": Case(
        "policy.PolicySet.evaluate", lambda j: PolicySet().evaluate("t", {}, handler_timeout=1)
    ),
    "evaluate-when": Case(
        "policy.PolicySet.evaluate",
        lambda j: PolicySet((deny("t", when=j.quick),)).evaluate("t", {}, handler_timeout=1),
    ),
    "decide-rule-deny": Case(
        "policy_calls.decide_rule",
        lambda j: policy_calls.decide_rule(deny("t"), ToolRequest("t"), 1, None),
    ),
    "decide-rule-no-handler": Case(
        "policy_calls.decide_rule",
        lambda j: policy_calls.decide_rule(ask_user("t"), ToolRequest("t"), 1, None),
    ),
    "turn-start-none": Case(
        "hooks.Hooks.run_turn_start", lambda j: Hooks().run_turn_start("a", handler_timeout=1)
    ),
    "turn-start-async": Case(
        "hooks.Hooks.run_turn_start",
        lambda j: Hooks(on_turn_start=(j.quick,)).run_turn_start("a", handler_timeout=1),
    ),
    "turn-end-none": Case(
        "hooks.Hooks.run_turn_end", lambda j: Hooks().run_turn_end("a", handler_timeout=1)
    ),
    "after-tool-none": Case(
        "hooks.Hooks.run_after_tool",
        lambda j: Hooks().run_after_tool(ToolResultEvent("a", "t"), handler_timeout=1),
    ),
    "before-tool-none": Case(
        "hooks.Hooks.run_before_tool",
        lambda j: Hooks().run_before_tool(EVENT, handler_timeout=1),
    ),
    "before-tool-async": Case(
        "hooks.Hooks.run_before_tool",
        lambda j: Hooks(before_tool=(j.quick,)).run_before_tool(EVENT, handler_timeout=1),
    ),
    "call-tool": Case(
        "dispatch.ToolDispatcher.call_tool", lambda j: _dispatcher(j).call_tool("quick", {})
    ),
    "call-tool-unknown": Case(
        "dispatch.ToolDispatcher.call_tool",
        lambda j: _dispatcher(j).call_tool("missing", {}),
        ToolNotFound,
    ),
    "authorize": Case(
        "dispatch.ToolDispatcher.authorize", lambda j: _dispatcher(j).authorize("run", {})
    ),
    "turn-started": Case(
        "dispatch.ToolDispatcher.turn_started", lambda j: _dispatcher(j).turn_started()
    ),
    "turn-ended": Case("dispatch.ToolDispatcher.turn_ended", lambda j: _dispatcher(j).turn_ended()),
    **_point_cases(),
}


def _public_async_functions() -> set[str]:
    """``module.function`` and ``module.Class.method`` for every public async callable."""
    found: set[str] = set()
    for module in MODULES:
        short = module.__name__.rsplit(".", 1)[1]
        for name in module.__all__:
            obj = getattr(module, name)
            if getattr(obj, "__module__", None) != module.__name__:
                continue  # a re-export, counted where it is defined
            if inspect.iscoroutinefunction(obj):
                found.add(f"{short}.{name}")
            if inspect.isclass(obj):
                for attribute, value in vars(obj).items():
                    if not attribute.startswith("_") and inspect.iscoroutinefunction(value):
                        found.add(f"{short}.{name}.{attribute}")
    return found


def test_the_cases_cover_every_public_async_function() -> None:
    assert {case.method for case in CASES.values()} == _public_async_functions()


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_returning_paths_checkpoint(case: Case) -> None:
    if case.raises is not None:
        with pytest.raises(case.raises):
            await case.call(Journal())
        return
    with trio.testing.assert_checkpoints():
        await case.call(Journal())


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_every_path_is_a_cancel_point_before_user_code(case: Case) -> None:
    journal = Journal()
    with trio.CancelScope() as scope:
        scope.cancel()
        await case.call(journal)
    assert scope.cancelled_caught
    assert journal.calls == []
