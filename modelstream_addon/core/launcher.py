"""Starts threads for the main thread, which must not wait for one to start. No bpy here.

`Thread.start` waits until the new thread runs, which can hold the caller up to the GIL's
switch interval (5 ms) each: eight jobs resumed in one timer call would cost the main thread
a frame. The launcher's own thread starts them instead. It is started once, with the
first thread it starts (the engine's first, the history's load at enable, when no other
thread holds the GIL), and waits, idle, until `close`: started again from a timer it
would cost that wait itself.
"""

from __future__ import annotations

import queue
import threading


class Launcher:
    def __init__(self):
        self._queue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.thread = None  # the launcher's own thread while it runs

    def start(self, thread):
        """Start `thread` soon, from the launcher's thread; returns at once."""
        self._queue.put(thread)
        with self._lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, daemon=True,
                                               name="modelstream-launcher")
                self.thread.start()

    def close(self, timeout=5.0):
        """Start what is queued, then end the launcher's thread."""
        with self._lock:
            running, self.thread = self.thread, None
        if running is not None:
            self._queue.put(None)
            running.join(timeout)

    def _loop(self):
        while True:
            thread = self._queue.get()
            if thread is None:
                return
            thread.start()
