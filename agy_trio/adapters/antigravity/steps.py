"""The steps of one SDK attempt, turned into the events of an agy_trio turn: :class:`StepPump`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import attrs

# Named apart from agy_trio.core.events, which this module uses too.
from agy_trio.adapters.antigravity import events as sdk_events
from agy_trio.adapters.antigravity.config import Endpoint
from agy_trio.adapters.antigravity.errors import mcp_failure
from agy_trio.adapters.antigravity.reachability import UnreachableWatch
from agy_trio.adapters.antigravity.sdk import load_sdk
from agy_trio.core import events

if TYPE_CHECKING:
    import collections

    from agy_trio.adapters.antigravity.conversation import SdkConversation
    from agy_trio.adapters.antigravity.tools import TrioBridge
    from agy_trio.errors import AgyError


class PumpedTurn(Protocol):
    """What the pump needs of the turn the steps belong to (``turns.SdkTurn``)."""

    refusal: AgyError | None
    structured_output: Any
    pending_ids: dict[str, collections.deque[str | None]]
    call_steps: dict[str, tuple[int, str]]

    async def emit(self, event: events.ChatEvent) -> None:
        """Stream ``event``, waiting while the reader is behind."""


class TurnRunner(Protocol):
    """What the pump needs of the agent's turns (``turns.TurnRunner``)."""

    conversation: SdkConversation
    bridge: TrioBridge
    reached: bool


__all__ = ["StepPump"]


class StepPump:
    """Turns the SDK's steps for one attempt into stream events.

    It does what the SDK's ``receive_chunks`` does (text and thought deltas of
    the model's steps to the user, each tool call once) and two things it does
    not: inline ``<think>`` reasoning becomes thought deltas, and a system step
    saying the answer was truncated or blocked stops the turn with
    :class:`MaxTokensReached` or :class:`SafetyBlocked` (the harness would
    otherwise quietly ask the model again).

    Args:
        runner: The agent's turns.
        turn: The turn the steps belong to.
        watch: Gives the attempt up if the harness cannot reach the endpoint.
        floor: The highest step index the conversation had before the
            attempt's prompt: a step at or below it belongs to an earlier turn.
    """

    def __init__(
        self, runner: TurnRunner, turn: PumpedTurn, watch: UnreachableWatch, floor: int = -1
    ) -> None:
        self.runner = runner
        self.turn = turn
        self.watch = watch
        self.floor = floor
        self.seen_calls: set[str] = set()
        # Subagent trajectories and their parents; the agent's own is the root.
        self.parents: dict[str, str] = {}
        self.root = runner.conversation.conversation_id
        # Built-in and MCP calls seen, not reported yet, with their step's
        # index: a policy decides on them while their step runs (a denied one
        # ends its step with an error), and the event carries the outcome.
        self.unreported: list[tuple[int, events.ToolCall]] = []
        inline_thoughts = runner.conversation.endpoint is Endpoint.OPENAI_COMPATIBLE
        self.splitter = sdk_events.ThoughtSplitter() if inline_thoughts else None

    async def step(self, step: Any) -> None:
        """Stream what one SDK step adds."""
        t = load_sdk().types
        turn = self.turn
        if step.step_index <= self.floor:
            return  # a late update of an earlier turn's step (its halt was late)
        if self.unreported:
            if step.status == t.StepStatus.ERROR:
                self.unreported = [
                    (index, attrs.evolve(call, error=step.error or "failed"))
                    if index == step.step_index
                    else (index, call)
                    for index, call in self.unreported
                ]
            if step.step_index != self.unreported[0][0]:
                await self.report_calls()  # their step is over
        if turn.refusal is not None:
            return  # the harness's retry after a refusal, until our halt lands
        if step.status == t.StepStatus.ERROR:
            if step.source == t.StepSource.SYSTEM and turn.refusal is None:
                reported = sdk_events.refusal(step.error or "")
                if reported is not None:
                    turn.refusal = reported
                    await self.runner.conversation.halt()
                elif mcp_failure(step.error or "") is None:
                    # (An MCP server that failed to start is raised by the SDK
                    # at once, and classified then; it is not an endpoint fault.)
                    await self.watch.report(step.error or "")
            return
        if step.source == t.StepSource.MODEL:
            self.watch.answered()
            self.runner.reached = True
        if step.type == t.StepType.FINISH and step.structured_output is not None:
            turn.structured_output = step.structured_output
        trajectory = getattr(step, "trajectory_id", "") or ""
        depth = self.depth_of(step, trajectory)
        if step.source == t.StepSource.MODEL and step.target == t.StepTarget.USER:
            if depth:
                # A subagent's words: streamed apart, never part of the agent's answer.
                if step.thinking_delta:
                    await turn.emit(
                        events.SubagentText(step.thinking_delta, depth, trajectory, thought=True)
                    )
                if step.content_delta:
                    await turn.emit(events.SubagentText(step.content_delta, depth, trajectory))
            else:
                if step.thinking_delta:
                    await turn.emit(events.ThoughtDelta(step.thinking_delta))
                if step.content_delta:
                    await self.text(step.content_delta)
        for call in step.tool_calls:
            if call.id:
                if call.id in self.seen_calls:
                    continue
                self.seen_calls.add(call.id)
            name = sdk_events.tool_name(call.name)
            if name in self.runner.bridge.tools:
                # Our wrapper reports the call with its outcome once it ran.
                turn.pending_ids[name].append(call.id)
                if call.id:
                    turn.call_steps[call.id] = (depth, trajectory)
            else:
                sighted = events.ToolCall(
                    name,
                    dict(call.args),
                    call.id,
                    server_name=call.server_name or None,
                    depth=depth,
                    trajectory_id=trajectory or None,
                )
                if call.id:
                    self.unreported.append((step.step_index, sighted))
                else:
                    await turn.emit(sighted)

    def depth_of(self, step: Any, trajectory: str) -> int:
        """How deep the step's trajectory is: 0 the agent's own, 1 a subagent's, ...

        The harness leaves ``Step.depth`` at 0 but names each subagent
        step's parent trajectory; the steps the SDK makes up for custom tool
        calls name neither, so what was learned from the others is kept.
        """
        reported = getattr(step, "depth", 0) or 0
        parent = getattr(step, "parent_trajectory_id", "") or ""
        if parent and trajectory:
            self.parents[trajectory] = parent
        if reported or not trajectory or trajectory == self.root:
            return int(reported)
        depth, seen = 0, {trajectory}
        while trajectory != self.root:
            depth += 1
            trajectory = self.parents.get(trajectory, self.root)
            if trajectory in seen:
                break
            seen.add(trajectory)
        return depth

    async def text(self, text: str) -> None:
        """Stream answer text, its inline reasoning split off."""
        if self.splitter is None:
            await self.turn.emit(events.TextDelta(text))
            return
        for is_thought, piece in self.splitter.feed(text):
            await self.turn.emit(
                events.ThoughtDelta(piece) if is_thought else events.TextDelta(piece)
            )

    async def report_calls(self) -> None:
        """Stream the built-in and MCP calls seen so far, with their error if they failed."""
        unreported, self.unreported = self.unreported, []
        outcomes = self.runner.bridge.outcomes
        for _, call in unreported:
            if call.error is not None and call.call_id:
                outcomes[call.call_id] = call  # the history shows it too
            await self.turn.emit(call)

    async def flush(self) -> None:
        """Stream what is held back (calls, the reasoning splitter's text) at the attempt's end."""
        await self.report_calls()
        if self.splitter is not None:
            for is_thought, piece in self.splitter.flush():
                await self.turn.emit(
                    events.ThoughtDelta(piece) if is_thought else events.TextDelta(piece)
                )
