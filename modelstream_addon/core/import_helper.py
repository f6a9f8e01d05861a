"""The import helper: a second Blender, in the background, that imports each downloaded
model and writes it into a .blend beside it, so that the user's Blender only appends the
result. An append is C that no other thread interrupts for the GIL (about 4 ms for a
1,000-face model, over two timer calls; 0.1 s for 2 M triangles); Blender's glTF importer
is Python on the main thread (5-20 ms for the small one, whoever else wants the GIL, and
2.3 s for the large one).
No bpy here: the Blender side gives the command that starts the helper
(blender/import_helper_main.py inside that Blender) and appends what it writes.

One process, one request at a time: a worker's thread waits for its answer without the
GIL. Started on first use (or ahead of it, `start`), again after it died; a request past
its deadline stops it. Whatever goes wrong, `convert` answers False and the main thread
imports the file itself, as it would without a helper.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import threading

TAG = "MODELSTREAM-HELPER "  # the helper's answers start with it; the rest is its log
COLLECTION = "modelstream_import"  # in the .blend: the imported objects to append
PREVIEW = "modelstream_preview_"  # in the .blend: the start of its preview images' names
START_LIMIT = 120.0  # seconds for the helper to start (a cold Blender on a slow disk)
CONVERT_LIMIT = 60.0  # seconds for one model, plus PER_MB for each MB of its file
PER_MB = 1.0
IDLE = 600.0  # seconds without a request after which the helper ends (memory back)
NICE = 10  # the helper's lower CPU priority: Blender's own window always wins a core
# Windows: below normal priority (see _lower_priority), and no console window of its own.
_WINDOWS_FLAGS = (getattr(subprocess, "BELOW_NORMAL_PRIORITY_CLASS", 0)
                  | getattr(subprocess, "CREATE_NO_WINDOW", 0))
ENV_DROPPED = ("MODELSTREAM_",)  # never handed to the helper: the key, the service


class HelperError(Exception):
    pass


def child_env(env, user_dirs):
    """The helper's environment: `env` without ours (the API key never leaves this
    process) and with Blender's user folders pointed at `user_dirs`' empty ones, so that
    no user preference, script or add-on (this one included) runs in it."""
    kept = {k: v for k, v in env.items() if not k.startswith(ENV_DROPPED)}
    return {**kept, **user_dirs}


def deadline(model_path):
    """Seconds one model may take in the helper, from its file's size."""
    try:
        size = os.path.getsize(model_path)
    except OSError:
        size = 0
    return CONVERT_LIMIT + PER_MB * size / 2**20


def _lower_priority(pid):
    """The helper works in the background: on a busy machine it yields the cores (Windows
    gets BELOW_NORMAL_PRIORITY_CLASS when it starts)."""
    if hasattr(os, "setpriority"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, NICE)


def _read(stream, answers):
    """The helper's stdout, on a thread: its answers go to `answers`, None at its end."""
    with contextlib.suppress(OSError, ValueError):  # the pipe closed: the helper is gone
        for line in stream:
            if line.startswith(TAG):
                try:
                    answers.put(json.loads(line[len(TAG):]))
                except ValueError:
                    answers.put({})
    answers.put(None)


class ImportHelper:
    def __init__(self, command, env=None):
        """`command` starts the helper; `env` is its environment (`child_env`)."""
        self._command = list(command)
        self._env = env
        self._lock = threading.Lock()
        self._proc = None
        self._answers = None
        self._closed = False

    @property
    def running(self):
        proc = self._proc
        return proc is not None and proc.poll() is None

    def start(self):
        """Start the helper now, unless it runs (on a thread: it takes a second or more).
        True when it runs."""
        with self._lock:
            try:
                self._ensure()
                return True
            except HelperError:
                return False

    def convert(self, model_path, fmt, blend_path, images=()):
        """Have the helper import `model_path` (its format `fmt`) and write it into
        `blend_path`, with the preview `images` ([(view, path)]) packed beside it (a
        process reads its first image file slowly: 12-15 ms). True when it did; False for
        any failure (a stuck helper is stopped)."""
        with self._lock:
            try:
                self._ensure()
                self._send({"model": model_path, "format": fmt, "out": blend_path,
                            "images": [list(pair) for pair in images]})
                answer = self._answer(deadline(model_path))
            except HelperError:
                return False
            return answer.get("ok") is True and os.path.isfile(blend_path)

    def close(self):
        """Stop the helper for good: it has a second to end, then is killed; a request in
        progress answers False."""
        self._closed = True
        self._stop()

    def _ensure(self):
        if self._closed:
            raise HelperError("closed")
        if self.running:
            return
        self._stop()
        try:
            proc = subprocess.Popen(
                self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, env=self._env, text=True, encoding="utf-8",
                errors="replace", bufsize=1,
                creationflags=_WINDOWS_FLAGS)
        except (OSError, ValueError) as e:
            raise HelperError(str(e)) from None
        _lower_priority(proc.pid)
        self._proc, self._answers = proc, queue.Queue()
        threading.Thread(target=_read, args=(proc.stdout, self._answers),
                         name="modelstream-import-helper", daemon=True).start()
        if self._closed:  # closed while it started
            self._stop()
            raise HelperError("closed")
        if self._answer(START_LIMIT).get("ready") is not True:
            self._stop()
            raise HelperError("did not start")

    def _send(self, request):
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        except (OSError, ValueError, AttributeError):
            self._stop()
            raise HelperError("gone") from None

    def _answer(self, limit):
        try:
            answer = self._answers.get(timeout=limit)
        except queue.Empty:
            answer = None
        if not isinstance(answer, dict):
            self._stop()
            raise HelperError("no answer")
        return answer

    def _stop(self):
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            proc.stdin.close()  # the helper ends at the end of its input
        try:
            proc.wait(1.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)
