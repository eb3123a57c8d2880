"""agy_trio's policies decide every call exactly as the SDK's own evaluator does.

Hypothesis builds random policy lists (the SDK's builders and presets, MCP
targets, ``when`` predicates sync and async, handlers that approve, refuse,
raise or read ``reason``) and random tool calls; each list is built twice,
once with ``google.antigravity.hooks.policy`` and once with
``agy_trio.policy``, from the same callables. The SDK's evaluator
(``policy.enforce(...).run``, on an asyncio loop) and agy_trio's
(``PolicySet.evaluate``, in Trio) must agree on whether the call may run and
on the refusal the model reads.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pydantic
import pytest
import trio
from google.antigravity import types as sdk_types
from google.antigravity.hooks import policy as sdk_policy
from hypothesis import given, settings
from hypothesis import strategies as st

from agy_trio import policy
from agy_trio.core.policy import PolicySet, ToolRequest

WORKSPACE = "/work/space"
SERVERS = {
    "srv": sdk_types.McpStdioServer(name="srv", command="true"),
    "db": sdk_types.McpStdioServer(name="db", command="true"),
}
TOOLS = [
    "view_file",
    "create_file",
    "edit_file",
    "run_command",
    "start_subagent",
    "invoke_subagent",
    "read_url_content",
    "list_directory",
    "lookup",
]
MCP_TOOLS = ["q", "view_file"]


class XArgs(pydantic.BaseModel):
    """A predicate's typed view of the arguments."""

    x: int = 0


def _raise(message: str) -> Any:
    raise ValueError(message)


def _x_is_1(args: Any) -> bool:
    return bool(args.get("x") == 1)


async def _async_x_is_1(args: Any) -> bool:
    return bool(args.get("x") == 1)


async def _asyncio_yield_x(args: Any) -> bool:
    await asyncio.sleep(0)
    return bool(args.get("x") == 1)


async def _trio_yield_x(args: Any) -> bool:
    await trio.lowlevel.checkpoint()
    return bool(args.get("x") == 1)


def _typed(args: XArgs) -> bool:
    return args.x == 1


def _tool_call_typed(call: sdk_types.ToolCall) -> bool:
    return call.name == "view_file"


# name -> (the SDK's callable, agy_trio's callable): the same function where
# it runs on both loops, a pair where it awaits its own loop.
PREDICATES: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "x_is_1": (_x_is_1, _x_is_1),
    "never": ((lambda args: False),) * 2,
    "no_argument": ((lambda: True),) * 2,
    "truthy_value": ((lambda args: args.get("x")),) * 2,
    "async": (_async_x_is_1, _async_x_is_1),
    "async_yield": (_asyncio_yield_x, _trio_yield_x),
    "raises": ((lambda args: _raise("bad predicate")),) * 2,
    "pydantic": (_typed, _typed),
    "tool_call": (_tool_call_typed, _tool_call_typed),
}


def _approve(call: Any) -> bool:
    return True


def _refuse(call: Any) -> bool:
    return False


async def _async_refuse(call: Any) -> bool:
    return False


async def _asyncio_yield_approve(call: Any) -> bool:
    await asyncio.sleep(0)
    return True


async def _trio_yield_approve(call: Any) -> bool:
    await trio.lowlevel.checkpoint()
    return True


def _no_reason_given(call: Any, reason: str = "") -> bool:
    return reason == ""


def _positional_reason(call: Any, reason: Any) -> bool:
    return bool(reason)


def _by_argument(call: Any) -> bool:
    return bool(call.args.get("x") == 1)


def _broken(call: Any) -> bool:
    raise RuntimeError("handler down")


HANDLERS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "approve": (_approve, _approve),
    "refuse": (_refuse, _refuse),
    "async_refuse": (_async_refuse, _async_refuse),
    "async_yield": (_asyncio_yield_approve, _trio_yield_approve),
    "keyword_reason": (_no_reason_given, _no_reason_given),
    "positional_reason": (_positional_reason, _positional_reason),
    "by_argument": (_by_argument, _by_argument),
    "broken": (_broken, _broken),
}


@attrs.frozen
class RuleSpec:
    """One builder call, made with either library."""

    builder: str
    target: str
    mcp_tools: tuple[str, ...] | None = None
    when: str | None = None
    handler: str | None = None
    name: str = ""
    reason: str = ""

    def build(self, lib: Any, side: int) -> Any:
        kwargs: dict[str, Any] = {"name": self.name}
        if self.when is not None:
            kwargs["when"] = PREDICATES[self.when][side]
        if self.builder != "allow":
            kwargs["reason"] = self.reason
        if self.builder == "ask_user":
            kwargs["handler"] = HANDLERS[self.handler or "approve"][side]
        make = getattr(lib, self.builder)
        if self.target in SERVERS:
            tools = list(self.mcp_tools) if self.mcp_tools is not None else None
            return make(SERVERS[self.target], tools, **kwargs)
        return make(self.target, **kwargs)


@attrs.frozen
class PresetSpec:
    """One preset, made with either library."""

    preset: str
    handler: str | None = None

    def build(self, lib: Any, side: int) -> Any:
        handler = HANDLERS[self.handler][side] if self.handler else None
        if self.preset == "safe_defaults":
            return lib.safe_defaults(handler or HANDLERS["approve"][side])
        if self.preset == "confirm_run_command":
            return lib.confirm_run_command(handler)
        if self.preset == "workspace_only":
            return lib.workspace_only([WORKSPACE])
        if self.preset == "auto":
            return lib.auto(handler=handler)
        return getattr(lib, self.preset)()


_handlers = st.sampled_from(sorted(HANDLERS))


def _rules(target: st.SearchStrategy[str], **more: Any) -> st.SearchStrategy[RuleSpec]:
    """Rules of every builder on ``target``, with every ``when``, handler, name and reason."""
    return st.builds(
        RuleSpec,
        builder=st.sampled_from(["allow", "deny", "ask_user"]),
        target=target,
        when=st.none() | st.sampled_from(sorted(PREDICATES)),
        handler=_handlers,
        name=st.sampled_from(["", "label", "workspace_only"]),
        reason=st.sampled_from(["", "not here", "ask first"]),
        **more,
    )


_plain_rules = _rules(
    st.sampled_from([*TOOLS, "*", "srv/*", "srv/q", "db/view_file", "srv/start_subagent"])
)
_mcp_rules = _rules(
    st.sampled_from(sorted(SERVERS)),
    mcp_tools=st.none() | st.lists(st.sampled_from(MCP_TOOLS), max_size=2).map(tuple),
)
_presets = st.builds(
    PresetSpec,
    preset=st.sampled_from(
        ["allow_all", "deny_all", "safe_defaults", "confirm_run_command", "workspace_only", "auto"]
    ),
    handler=st.none() | _handlers,
)
_specs = st.lists(st.one_of(_plain_rules, _plain_rules, _mcp_rules, _presets), max_size=7)


@attrs.frozen
class CallSpec:
    """A tool call the model makes."""

    name: str
    server: str | None
    arguments: dict[str, Any]


_arguments = st.fixed_dictionaries(
    {},
    optional={
        "x": st.sampled_from([0, 1]),
        "AbsolutePath": st.just(f"{WORKSPACE}/file.txt"),
    },
)
_calls = st.one_of(
    st.builds(CallSpec, st.sampled_from(TOOLS), st.none(), _arguments),
    st.builds(
        CallSpec,
        st.sampled_from([*MCP_TOOLS, "start_subagent"]),
        st.sampled_from(sorted(SERVERS)),
        _arguments,
    ),
)


@pytest.fixture(scope="module")
def sdk_loop() -> Iterator[asyncio.AbstractEventLoop]:
    # Policy evaluation logs every decision at INFO: quiet while these tests
    # run (thousands of examples), as they were afterwards.
    loggers = [logging.getLogger("agy_trio.policy"), logging.getLogger(sdk_policy.__name__)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def sdk_decision(
    loop: asyncio.AbstractEventLoop, specs: list[Any], call: CallSpec
) -> tuple[bool, str]:
    with warnings.catch_warnings():
        # The SDK warns of the deprecated start_subagent name, which it then normalises.
        warnings.simplefilter("ignore", DeprecationWarning)
        hook = sdk_policy.enforce(
            [spec.build(sdk_policy, 0) for spec in specs], mcp_servers=list(SERVERS.values())
        )
        tool_call = sdk_types.ToolCall(
            name=call.name, args=dict(call.arguments), server_name=call.server
        )
        result = loop.run_until_complete(hook.run(None, tool_call))  # type: ignore[arg-type]
    return bool(result.allow), result.message or ""


def agy_decision(specs: list[Any], call: CallSpec) -> tuple[bool, str]:
    policies = PolicySet([spec.build(policy, 1) for spec in specs])

    async def decide() -> tuple[bool, str]:
        verdict = await policies.evaluate(
            call.name, call.arguments, handler_timeout=10, server_name=call.server
        )
        return verdict.allowed, verdict.message

    return trio.run(decide)


@settings(max_examples=2000, deadline=None)
@given(specs=_specs, call=_calls)
def test_same_decision_and_refusal_as_the_sdk(
    sdk_loop: asyncio.AbstractEventLoop, specs: list[Any], call: CallSpec
) -> None:
    assert agy_decision(specs, call) == sdk_decision(sdk_loop, specs, call)


def test_the_sdk_example_from_its_docstring(sdk_loop: asyncio.AbstractEventLoop) -> None:
    # A specific allow wins over a wildcard deny, in both.
    specs = [PresetSpec("deny_all"), RuleSpec("allow", "view_file")]
    for name, allowed in (("view_file", True), ("edit_file", False)):
        call = CallSpec(name, None, {})
        assert agy_decision(specs, call) == sdk_decision(sdk_loop, specs, call)
        assert agy_decision(specs, call)[0] is allowed


def test_a_handler_less_ask_user_is_refused_by_the_sdk_and_denied_by_agy_trio() -> None:
    with pytest.raises(ValueError, match="missing an ask_user handler"):
        sdk_policy.enforce([sdk_policy.ask_user("x")])

    async def decide() -> tuple[bool, str]:
        verdict = await PolicySet([policy.ask_user("x")]).evaluate("x", {}, handler_timeout=1)
        return verdict.allowed, verdict.message

    # The SDK harness's own words for a dynamic rule without a handler, and
    # why agy_trio had nobody to ask either.
    assert trio.run(decide) == (
        False,
        "Policy 'x' requires ask_user handler, but none was provided, "
        "and there is no server to ask (serve the agent with agy-trio serve).",
    )


def test_an_approver_answers_a_handler_less_ask_user() -> None:
    asked: list[ToolRequest] = []

    async def person(request: ToolRequest) -> bool:
        asked.append(request)
        return True

    async def decide() -> bool:
        rules = PolicySet([policy.ask_user("x", reason="it writes")])
        verdict = await rules.evaluate("x", {"a": 1}, handler_timeout=1, approver=person)
        return verdict.allowed

    assert trio.run(decide)
    [request] = asked
    assert (request.tool, dict(request.args), request.reason, request.policy) == (
        "x",
        {"a": 1},
        "it writes",
        "x",
    )
