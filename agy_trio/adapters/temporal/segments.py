"""What a turn shows, kept consistent when the turn is retried on another worker.

A turn streams to its caller as a list of :class:`Segment` values (answer
text, thought text, tool calls), and the caller only ever sees that list grow.
When the worker running the turn dies, another attempt starts from scratch on
another worker, while the caller may already have seen part of the first
attempt's answer (``shown``). :class:`VisibleStream` decides what the new
attempt shows so that the list still only grows:

* while the new attempt repeats what was shown (a deterministic endpoint
  answers the same transcript the same way), it shows nothing new;
* once it has repeated all of it and goes on, it shows its own answer, which
  extends what was shown (*restart*);
* if it says something else, it is taken as the continuation of what was
  shown (the rebuilt conversation asks the model to continue), and it shows
  ``shown`` followed by its own answer (*continue*).

Either way the final answer recorded in the history is exactly the text the
caller received. Pure functions on plain data, shared by workers and clients.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from agy_trio.adapters.temporal.messages import Segment

__all__ = ["VisibleStream", "canonical", "extends", "new_segments", "segments_text"]

_TEXT_KINDS = frozenset({"text", "thought"})


def canonical(segments: Iterable[Segment]) -> list[Segment]:
    """Merge neighbouring text segments of one kind and drop empty ones."""
    out: list[Segment] = []
    for segment in segments:
        if segment.kind in _TEXT_KINDS:
            if not segment.text:
                continue
            if out and out[-1].kind == segment.kind:
                out[-1] = Segment(segment.kind, out[-1].text + segment.text)
                continue
            out.append(Segment(segment.kind, segment.text))
        else:
            out.append(segment)
    return out


def _same_call(a: Segment, b: Segment) -> bool:
    if a.tool is None or b.tool is None:
        return a.tool is b.tool
    return a.tool.key == b.tool.key and a.tool.name == b.tool.name


def extends(longer: Sequence[Segment], prefix: Sequence[Segment]) -> bool:
    """Whether canonical ``longer`` starts with canonical ``prefix``."""
    if len(prefix) > len(longer):
        return False
    last = len(prefix) - 1
    for index, segment in enumerate(prefix):
        other = longer[index]
        if segment.kind != other.kind:
            return False
        if segment.kind in _TEXT_KINDS:
            if index == last:
                if not other.text.startswith(segment.text):
                    return False
            elif other.text != segment.text:
                return False
        elif not _same_call(segment, other):
            return False
    return True


def new_segments(emitted: Sequence[Segment], visible: Sequence[Segment]) -> list[Segment]:
    """What to show after ``emitted`` to have shown ``visible`` (both canonical).

    Returns nothing when ``visible`` does not extend ``emitted`` (a cancelled
    turn may end with less than its caller saw).
    """
    if not extends(visible, emitted):
        return []
    out: list[Segment] = []
    start = len(emitted)
    if emitted and emitted[-1].kind in _TEXT_KINDS:
        rest = visible[start - 1].text[len(emitted[-1].text) :]
        if rest:
            out.append(Segment(emitted[-1].kind, rest))
    out.extend(visible[start:])
    return out


def segments_text(segments: Iterable[Segment], kind: str = "text") -> str:
    """The text of every segment of ``kind``, joined."""
    return "".join(s.text for s in segments if s.kind == kind)


class VisibleStream:
    """What one attempt of a turn shows, given what earlier attempts showed.

    Adding a piece costs O(1) (text is joined only when asked for), so a long
    answer streamed in many small deltas stays linear.

    Args:
        shown: What the caller may already have seen (canonical or not).
    """

    __slots__ = ("_chunks", "_mode", "_produced", "_shown")

    def __init__(self, shown: Sequence[Segment] = ()) -> None:
        self._shown = canonical(shown)
        # Finished segments, plus the text pieces of the last one when it is text.
        self._produced: list[Segment] = []
        self._chunks: list[str] = []
        self._mode = "restart" if not self._shown else "catching-up"

    @property
    def mode(self) -> str:
        """``"catching-up"``, ``"restart"`` or ``"continue"`` (see the module)."""
        return self._mode

    def add(self, segment: Segment) -> None:
        """Record one more piece of this attempt's own output."""
        if segment.kind in _TEXT_KINDS:
            if not segment.text:
                return
            last = self._produced[-1] if self._produced else None
            if last is not None and last.kind == segment.kind and self._chunks:
                self._chunks.append(segment.text)
            else:
                self._seal()
                self._produced.append(Segment(segment.kind))
                self._chunks = [segment.text]
        else:
            self._seal()
            self._produced.append(segment)
        if self._mode == "catching-up":
            produced = self.produced()
            if extends(produced, self._shown):
                self._mode = "restart"
            elif not extends(self._shown, produced):
                self._mode = "continue"

    def _seal(self) -> None:
        if self._chunks:
            self._produced[-1] = Segment(self._produced[-1].kind, "".join(self._chunks))
            self._chunks = []

    def produced(self) -> list[Segment]:
        """This attempt's own output so far (canonical)."""
        self._seal()
        if self._produced and self._produced[-1].kind in _TEXT_KINDS:
            # Keep appending to the last text segment without re-joining it each time.
            self._chunks = [self._produced[-1].text]
        return list(self._produced)

    def visible(self) -> list[Segment]:
        """Everything the turn shows so far; each call's list extends the previous one."""
        if self._mode == "restart":
            return self.produced()
        if self._mode == "continue":
            return canonical([*self._shown, *self.produced()])
        return list(self._shown)
