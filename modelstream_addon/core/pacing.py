"""How the add-on's threads leave Blender's main thread the GIL: a thread that runs Python
for a while (the history's load and writes) rests every millisecond (`Pacer`), and the
engine's workers hold their next request while the main thread lands a model (`Quiet`).
No bpy here.

Every Python call from Blender's main thread (a timer, a panel's draw, an operator) must
take the GIL. A thread that only computes keeps it until the main thread has waited out
the switch interval (5 ms) and forced a switch, and a C call (a JSON parse, a join) keeps
it to its end. `time.sleep(0)` does not help: the thread takes the GIL straight back
before the waiting one wakes, and the waiter's 5 ms start again. A real sleep of a fraction
of a millisecond after every millisecond of work does: the main thread waits at most
about a millisecond, and the work takes about a fifth longer.
"""

from __future__ import annotations

import contextlib
import threading
import time

WORK = 0.001  # seconds of a thread's work between two yields
REST = 0.0002  # seconds each yield sleeps: the waiting thread wakes and takes the GIL
QUIET_LIMIT = 0.1  # seconds a worker holds its next request for the main thread, at most


class Pacer:
    """Call between small pieces of work: sleeps REST once WORK seconds have passed since
    the last rest. On the main thread it never sleeps (nothing else waits there: a
    headless load runs at full speed). `on_rest` runs at each rest (the loader freezes
    what it made so far from the garbage collector's young generations)."""

    def __init__(self, on_rest=None):
        self._on_main = threading.current_thread() is threading.main_thread()
        self._on_rest = on_rest
        self._since = time.perf_counter()

    def __call__(self):
        if self._on_main or time.perf_counter() - self._since < WORK:
            return
        time.sleep(REST)
        if self._on_rest is not None:
            self._on_rest()
        self._since = time.perf_counter()


class Quiet:
    """While the main thread does a long piece of Blender work (importing a result: the
    glTF importer is Python, 5-20 ms), the workers hold their next request: each request
    is a millisecond or two of Python that would take the GIL from it, and a thread that
    takes it keeps it up to the switch interval. A worker waits QUIET_LIMIT at most."""

    def __init__(self):
        self._open = threading.Event()
        self._open.set()

    @contextlib.contextmanager
    def hold(self):
        self._open.clear()
        try:
            yield
        finally:
            self._open.set()

    @property
    def held(self):
        return not self._open.is_set()

    def wait(self):
        """A worker, before a request: returns at once unless the main thread holds it."""
        self._open.wait(QUIET_LIMIT)
