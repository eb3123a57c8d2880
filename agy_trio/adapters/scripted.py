"""The older import path of the scripted backend, kept working.

The scripted backend is a test double and lives in
:mod:`agy_trio.testing.scripted`; this module hands on the very same objects
under the path programs and tests have always imported::

    from agy_trio.adapters.scripted import ScriptedBackend  # is agy_trio.testing.scripted's

The names load on first use (PEP 562): the test double is built on the
adapters, so the adapters never depend on it. A type checker sees them as
``Any`` here; import from :mod:`agy_trio.testing.scripted` for their types.
"""

from __future__ import annotations

from agy_trio._lazy import lazy_names

# Each name, and its home under agy_trio.testing.
_HOMES = {
    "CallTool": "scripted",
    "Compact": "scripted",
    "Fail": "scripted",
    "Hang": "scripted",
    "Pause": "scripted",
    "Responder": "scripted",
    "Say": "scripted",
    "ScriptedBackend": "scripted",
    "ScriptedConnectionError": "scripted",
    "ScriptedError": "scripted",
    "ScriptedMaxTokensError": "scripted",
    "ScriptedQuotaError": "scripted",
    "ScriptedSafetyError": "scripted",
    "ScriptedServerError": "scripted",
    "Step": "scripted",
    "Think": "scripted",
    "Turn": "scripted",
    "classify_error": "scripted",
    "default_turn": "scripted",
}

__all__ = sorted(_HOMES)

__getattr__, __dir__ = lazy_names("agy_trio.testing", _HOMES, globals(), __all__)
