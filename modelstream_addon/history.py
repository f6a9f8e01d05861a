"""Job history on disk, so a paid result is never lost. No bpy here.

One JSON file, replaced atomically (write a temp file, fsync, rename), so a crash or a kill
mid-write leaves the previous version intact. Writes happen on a writer thread: the main
thread only hands over a snapshot. Never holds the API key: records are built from the
request body and job state only.
"""

from __future__ import annotations

import json
import os
import queue
import tempfile
import threading

VERSION = 1
FIELDS = ("id", "task_id", "state", "status", "message", "error", "transport",
          "output_path", "output_format", "images", "created", "finished", "imported_as",
          "owned", "import_options")


def record_of(job):
    """The plain dict kept for a job."""
    data = {name: getattr(job, name) for name in FIELDS}
    data["body"] = job.body
    data["images"] = [list(pair) for pair in job.images]
    return data


def load(path):
    """Records from `path`; a missing or unreadable file is an empty history."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        return []
    return [r for r in data["jobs"] if isinstance(r, dict) and r.get("id")]


def write_atomic(path, records):
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".history-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"version": VERSION, "jobs": records}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class HistoryWriter:
    """Coalesces snapshots and writes the newest one on its own thread."""

    def __init__(self, path):
        self.path = path
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="modelstream-history",
                                        daemon=True)
        self._thread.start()

    def save(self, records):
        self._queue.put(records)

    def _loop(self):
        stop = False
        while not stop:
            items = [self._queue.get()]
            while not self._queue.empty():
                items.append(self._queue.get_nowait())
            stop = None in items
            records = [item for item in items if item is not None]
            if not records:
                continue
            try:
                write_atomic(self.path, records[-1])
            except OSError as e:
                print(f"ModelStream: could not write the job history: {e}")

    def close(self):
        """Flush what is pending and stop."""
        self._queue.put(None)
        self._thread.join(10)
