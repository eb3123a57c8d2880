"""A deterministic, asyncio-only backend that follows a script.

It is the test and benchmark double of the real SDK: every agent lives on a
real asyncio host thread, keeps real conversation state (history, turn count,
usage, last response, compactions), and plays turns made of text chunks,
thoughts, tool calls (through the runtime's real tool and policy path),
pauses, hangs and faults (including a quota error with a Retry-After).

With no script, every chat gets a short deterministic answer that quotes the
prompt, streamed in several chunks::

    from agy_trio.testing.scripted import Say, ScriptedBackend, Turn

    backend = ScriptedBackend([Turn([Say("hello")])])

Its rooms: :mod:`.script` (the script language), :mod:`.faults` (the errors a
turn raises and their classification), :mod:`.engine` (the asyncio side of an
agent) and :mod:`.backend` (the backend and its Trio-facing session).
``agy_trio.adapters.scripted`` is the older import path of the same objects.
"""

from agy_trio.testing.scripted import backend, faults, script
from agy_trio.testing.scripted.backend import *  # noqa: F403  (the package hands on its rooms' names)
from agy_trio.testing.scripted.faults import *  # noqa: F403
from agy_trio.testing.scripted.script import *  # noqa: F403

__all__ = [*script.__all__, *faults.__all__, *backend.__all__]
