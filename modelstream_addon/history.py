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
import time

VERSION = 1
FIELDS = ("id", "task_id", "state", "status", "message", "error", "transport",
          "output_path", "output_format", "images", "created", "finished", "imported_as",
          "owned", "import_options", "service", "credits")


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


def write_text_atomic(path, text):
    """Replace `path` with `text`: temp file, fsync, rename."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".history-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _document(texts):
    jobs = ",\n".join(texts)
    return f'{{"version": {VERSION}, "jobs": [\n{jobs}\n]}}\n'


def write_atomic(path, records):
    write_text_atomic(path, _document(json.dumps(r, indent=1) for r in records))


class HistoryWriter:
    """Writes the newest snapshot on its own thread, at most every `interval` seconds.

    Records are never changed once handed over (the engine makes a new one per change),
    so a record seen before reuses its JSON text: a write encodes only what changed."""

    def __init__(self, path, interval=0.5):
        self.path = path
        self.interval = interval
        self._texts = {}
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="modelstream-history",
                                        daemon=True)
        self._thread.start()

    def save(self, records):
        self._queue.put(records)

    def _encode(self, records):
        texts = {}
        for record in records:
            cached = self._texts.get(record["id"])
            if cached is None or cached[0] is not record:
                cached = (record, json.dumps(record, indent=1))
            texts[record["id"]] = cached
        self._texts = texts
        return _document(text for _, text in texts.values())

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
                write_text_atomic(self.path, self._encode(records[-1]))
            except OSError as e:
                print(f"ModelStream: could not write the job history: {e}")
            if not stop:
                time.sleep(self.interval)

    def close(self):
        """Flush what is pending and stop."""
        self._queue.put(None)
        self._thread.join(10)
