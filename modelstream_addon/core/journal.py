"""The task journal: every task id the moment the service returns it, so a paid task is
never lost even when the process dies before the history is written. No bpy here."""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time

from . import history
from .paths import JOB_ID


class TaskJournal:
    """Task ids the moment the service returns them, appended and synced from the worker
    thread: a process that dies before the main thread saves the history (a script that
    submits and crashes) still knows every paid task. Folded into the history on the next
    start.

    `read` and `clear` see only what earlier runs noted (the file as it was when the
    journal was made): in the GUI the history loads on a thread while new jobs already
    note their task ids, and those must stay until the history holds them."""

    LIMIT = 4 * 1024 * 1024

    def __init__(self, history_path):
        self.path = history_path + ".tasks"
        self._lock = threading.Lock()
        try:
            self._earlier = os.path.getsize(self.path)
        except OSError:
            self._earlier = 0

    def note(self, job_id, task_id, task_type):
        self._append({"id": job_id, "task_id": task_id, "type": task_type,
                      "time": time.time()})

    def note_step(self, job_id):
        """A chain's step went on to the next, noted before that one is sent: after a
        crash the step is not sent on again (the history may not have been written)."""
        self._append({"id": job_id, "continued": True, "time": time.time()})

    def stepped(self):
        """The job ids noted by note_step."""
        return {entry["id"] for entry in self._entries() if entry.get("continued") is True}

    def _append(self, entry):
        line = json.dumps(entry) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def _entries(self):
        """The sound lines earlier runs noted: objects naming a job id."""
        found = []
        try:
            with open(self.path, "rb") as f:
                data = f.read(min(self._earlier, self.LIMIT))
        except OSError:
            return found
        for line in data.decode("utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if (isinstance(entry, dict) and isinstance(entry.get("id"), str)
                    and JOB_ID.fullmatch(entry["id"])):
                found.append(entry)
        return found

    def read(self):
        """{job id: (task id, task type, time noted)} from the sound lines; the rest are
        skipped."""
        found = {}
        for entry in self._entries():
            if (history.task_id_ok(entry.get("task_id")) and entry["task_id"]
                    and history.is_text(entry.get("type", ""))):
                noted = entry.get("time")
                noted = noted if isinstance(noted, (int, float)) and math.isfinite(noted) else 0
                found[entry["id"]] = (entry["task_id"], entry.get("type", ""), noted)
        return found

    def clear(self):
        """Drop what earlier runs noted; lines noted since stay."""
        with self._lock, contextlib.suppress(OSError):
            with open(self.path, "rb") as f:
                f.seek(self._earlier)
                since = f.read()
            if since:
                history.write_text_atomic(self.path, since.decode("utf-8", errors="replace"))
            else:
                os.remove(self.path)
            self._earlier = 0
