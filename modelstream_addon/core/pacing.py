"""How a thread that runs Python for a while (the history's load and writes) leaves
Blender's main thread the GIL. No bpy here.

Every Python call from Blender's main thread (a timer, a panel's draw, an operator) must
take the GIL. A thread that only computes keeps it until the main thread has waited out
the switch interval (5 ms) and forced a switch, and a C call (a JSON parse, a join) keeps
it to its end. `time.sleep(0)` does not help: the thread takes the GIL straight back
before the waiting one wakes, and the waiter's 5 ms start again. A real sleep of a fraction
of a millisecond after every millisecond of work does: the main thread waits at most
about a millisecond, and the work takes about a fifth longer.
"""

from __future__ import annotations

import threading
import time

WORK = 0.001  # seconds of a thread's work between two yields
REST = 0.0002  # seconds each yield sleeps: the waiting thread wakes and takes the GIL


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
