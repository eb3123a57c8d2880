"""Start-up objects kept out of the cyclic garbage collector's walks.

CPython's cyclic GC walks every tracked object at each full collection. A
process running agents holds well over a hundred thousand objects that exist
from start-up to exit (modules, classes, functions, the SDK's pydantic
models: about 120,000 once google-antigravity is imported), and a full
collection walks them all, again and again, while streams wait: with
thousands of agents starting at once, full collections come every few
thousand objects. :func:`freeze_startup_objects` moves the objects alive when
the first runtime has started into the GC's permanent generation
(``gc.freeze()``), so that later collections walk only what came after.
Frozen objects are still freed by reference counting; only a reference cycle
among them would never be collected, which for start-up objects (they live as
long as the process) costs nothing. Measured in docs/performance.md ("The
cyclic GC").
"""

from __future__ import annotations

import gc
import threading

__all__ = ["freeze_startup_objects"]

_lock = threading.Lock()
_frozen = False


def freeze_startup_objects() -> bool:
    """Freeze the objects alive now out of the cyclic GC's walks, once per process.

    Does nothing when the GC is disabled (the application manages it) or
    after the first call. No collection first: one would run every object's
    finaliser in the caller's thread, at an unforeseeable point for the
    application; garbage that exists now is at most a few start-up objects.

    Returns:
        Whether this call froze them.
    """
    global _frozen
    with _lock:
        if _frozen or not gc.isenabled():
            return False
        _frozen = True
    gc.freeze()
    return True
