"""What a retried turn shows extends what the caller already saw, whatever the attempts say."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agy_trio.adapters.temporal.messages import Segment, ToolRecord
from agy_trio.adapters.temporal.segments import (
    VisibleStream,
    canonical,
    extends,
    new_segments,
    segments_text,
)

texts = st.text(alphabet="abc", min_size=1, max_size=4)
segments = st.one_of(
    st.builds(Segment, st.just("text"), texts),
    st.builds(Segment, st.just("thought"), texts),
    st.builds(
        lambda k: Segment("tool", tool=ToolRecord(key=f"k{k}", name="t")),
        st.integers(0, 2),
    ),
)


def shown_prefix(full: list[Segment], cut: int) -> list[Segment]:
    """The first ``cut`` characters' worth of a canonical list (tools count as one)."""
    out: list[Segment] = []
    left = cut
    for segment in canonical(full):
        if left <= 0:
            break
        if segment.kind == "tool":
            out.append(segment)
            left -= 1
        else:
            out.append(Segment(segment.kind, segment.text[:left]))
            left -= len(segment.text)
    return canonical(out)


@given(st.lists(segments, max_size=8), st.lists(segments, max_size=8), st.integers(0, 30))
def test_visible_only_grows_and_starts_with_what_was_shown(
    first: list[Segment], second: list[Segment], cut: int
) -> None:
    shown = shown_prefix(first, cut)
    stream = VisibleStream(shown)
    previous = stream.visible()
    assert extends(previous, shown)
    for segment in second:
        stream.add(segment)
        now = stream.visible()
        assert extends(now, previous)
        previous = now
    assert extends(previous, shown)


@given(st.lists(segments, max_size=8), st.integers(0, 30))
def test_a_deterministic_retry_shows_exactly_the_answer(answer: list[Segment], cut: int) -> None:
    shown = shown_prefix(answer, cut)
    stream = VisibleStream(shown)
    for segment in answer:
        stream.add(segment)
    assert stream.visible() == canonical(answer)


@given(st.lists(segments, max_size=6), st.lists(segments, max_size=6))
def test_new_segments_rebuild_what_is_visible(before: list[Segment], more: list[Segment]) -> None:
    emitted = canonical(before)
    visible = canonical([*before, *more])
    rebuilt = canonical([*emitted, *new_segments(emitted, visible)])
    assert rebuilt == visible


def test_a_retry_that_diverges_continues_after_what_was_shown() -> None:
    stream = VisibleStream([Segment("text", "The capital of Fra")])
    stream.add(Segment("text", "nce is Paris."))
    assert stream.mode == "continue"
    assert segments_text(stream.visible()) == "The capital of France is Paris."


def test_new_segments_is_empty_when_the_end_is_shorter_than_what_was_seen() -> None:
    assert new_segments([Segment("text", "abc")], [Segment("text", "ab")]) == []
