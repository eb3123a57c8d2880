"""Google-style docstrings as a tool schema reads them: the prose, and each argument's text.

Read with ``docstring_parser``, with the section titles Napoleon knows besides
the ones it reads by default.
"""

from __future__ import annotations

import inspect

import docstring_parser
from docstring_parser.google import DEFAULT_SECTIONS, GoogleParser, Section, SectionType

__all__ = ["parse_docstring"]

# docstring_parser's Google sections, plus the other section titles Napoleon
# knows: without them a "Note:" section would end up in the tool's description.
_GOOGLE = GoogleParser(
    sections=[
        *DEFAULT_SECTIONS,
        *(
            Section(title, "param", SectionType.MULTIPLE)
            for title in ("Keyword Args", "Keyword Arguments", "Kwargs", "Other Parameters")
        ),
        *(
            Section(title, key, SectionType.SINGULAR_OR_MULTIPLE)
            for title, key in (("Return", "returns"), ("Yield", "yields"))
        ),
        *(
            Section(title, "notes", SectionType.SINGULAR)
            for title in (
                "Note",
                "Notes",
                "Warning",
                "Warnings",
                "See Also",
                "Todo",
                "References",
            )
        ),
    ]
)


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its prose and its per-argument descriptions.

    Returns:
        The text before the first section, and each documented argument's
        description folded onto one line (``*args`` named ``args``).
    """
    if not doc:
        return "", {}
    text = inspect.cleandoc(doc)
    try:
        parsed = _GOOGLE.parse(text)
    except docstring_parser.ParseError:
        # An Args entry without a colon and the like: keep the prose before
        # the first section and guess no argument descriptions, rather than
        # refuse a function over its docstring.
        first_section = _GOOGLE.titles_re.search(text)
        return (text[: first_section.start()] if first_section else text).strip(), {}
    prose = [part for part in (parsed.short_description, parsed.long_description) if part]
    separator = "\n\n" if parsed.blank_after_short_description else "\n"
    arguments = {
        # Continuation lines are folded into one line, as the model reads them.
        param.arg_name.lstrip("*"): " ".join((param.description or "").split())
        for param in parsed.params
    }
    return separator.join(prose), arguments
