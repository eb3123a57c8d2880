"""Turning the SDK's text stream into events: inline reasoning, refusals, usage."""

from __future__ import annotations

import itertools

import google.antigravity as sdk
from hypothesis import given
from hypothesis import strategies as st

from agy_trio import StopReason, Usage
from agy_trio.adapters.antigravity.events import (
    ThoughtSplitter,
    refusal,
    stop_reason,
    usage_of,
    without_thoughts,
)
from agy_trio.errors import MaxTokensReached, SafetyBlocked


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


def _run(chunks: list[str]) -> tuple[str, str]:
    splitter = ThoughtSplitter()
    thought, answer = [], []
    for chunk in chunks:
        for is_thought, piece in splitter.feed(chunk):
            (thought if is_thought else answer).append(piece)
    for is_thought, piece in splitter.flush():
        (thought if is_thought else answer).append(piece)
    return "".join(thought), "".join(answer)


def test_reasoning_is_separated_even_when_tags_are_split() -> None:
    chunks = ["<thi", "nk>let me", " see</th", "ink>The ", "answer"]
    assert _run(chunks) == ("let me see", "The answer")


def test_text_without_tags_passes_through_unchanged() -> None:
    assert _run(["a < b and ", "<thin", "g>"]) == ("", "a < b and <thing>")


words = st.text(alphabet="ab <>/thinkTHINK", max_size=20)


@given(
    before=words.filter(lambda w: "<think>" not in w),
    thought=words.filter(lambda w: "</think>" not in w),
    after=words,
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_any_chunking_gives_the_same_split(
    before: str, thought: str, after: str, cuts: list[int]
) -> None:
    text = f"{before}<think>{thought}</think>{after}"
    assert _run(_split(text, cuts)) == _run([text])


def test_history_text_drops_the_reasoning() -> None:
    assert without_thoughts("<think>hmm</think>\n42") == "42"
    assert without_thoughts("<think>unfinished") == ""
    assert without_thoughts("no tags") == "no tags"


def test_harness_system_errors_that_mean_a_refusal() -> None:
    cut = refusal(
        "The maximum token limit was reached. (model output error: max tokens limit reached)"
    )
    assert isinstance(cut, MaxTokensReached)
    blocked = refusal("The response was blocked by content safety filters.")
    assert isinstance(blocked, SafetyBlocked)
    assert refusal("HTTP request failed with status 500") is None


def test_usage_and_stop_reasons() -> None:
    metadata = sdk.types.UsageMetadata(
        prompt_token_count=10,
        candidates_token_count=5,
        thoughts_token_count=2,
        cached_content_token_count=None,
    )
    assert usage_of(metadata) == Usage(10, 5, 2, 0)
    assert usage_of(None) == Usage()
    stop = sdk.types.StopReason
    assert stop_reason(stop.UNSPECIFIED) is StopReason.END_TURN
    # Every other SDK stop reason (a budget limit, the quota) reaches the
    # caller as itself, never as a normal end.
    for member in stop:
        if member is not stop.UNSPECIFIED:
            assert stop_reason(member) is StopReason[member.name]
