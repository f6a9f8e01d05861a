"""Job engine: submit -> poll -> download -> ready, many jobs at once. No bpy here.

All network and file I/O runs on worker threads, which only post plain dicts to a queue.
The main thread calls `tick()` (GUI timer) to apply them; it never waits on the network.
Headless, `wait()` blocks on the same queue, so one code path serves both. At most
`max_concurrent` jobs are at the service at once; the rest wait here, in order. Every job
is kept in a history file, so tasks still running when Blender closed resume later.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import copy
import os
import queue
import shutil
import threading
import time

from . import errors, formats, history, imagefile, tasks
from .job import (
    CANCEL_NOTE,
    CANCELLED,
    DOWNLOADING,
    FAILED,
    IMPORTED,
    LOST_NOTE,
    QUEUED,
    READY,
    RUNNING,
    SUBMITTING,
    WAITING,
    Job,
)

ONGOING_STATUSES = ("queued", "running")
FAILED_STATUSES = {
    "failed": "The task failed at the service.",
    "banned": "The task was refused by the content policy (banned).",
    "expired": "The task expired at the service before it finished.",
    "cancelled": "The task was cancelled at the service.",
}
# Updates that only redraw the UI: the history is rewritten for everything else.
VOLATILE = frozenset(("progress", "message", "status", "queuing_num", "running_left_time"))


class Engine:
    def __init__(self, download_dir, *, max_concurrent=4, poll_min=2.0, poll_max=30.0,
                 time_limit=1800.0, unknown_limit=120.0, max_download=512 * 1024 * 1024,
                 history_path=None, max_history=200):
        self.download_dir = download_dir
        self.max_concurrent = max_concurrent
        self.poll_min = poll_min
        self.poll_max = poll_max
        self.time_limit = time_limit
        self.unknown_limit = unknown_limit
        self.max_download = max_download
        self.max_history = max_history
        self.jobs = {}
        self._records = {}
        self._cancels = {}
        self._events = queue.Queue()
        self._slots = threading.Condition()
        self._line = collections.deque()
        self._running = 0
        self._closed = False
        self._dirty = False
        self._writer = None
        if history_path:
            self._restore(history.load(history_path))
            self._writer = history.HistoryWriter(history_path)

    # Main thread --------------------------------------------------------------------

    def configure(self, *, max_concurrent=None, max_download=None, max_history=None):
        if max_concurrent is not None:
            self.max_concurrent = max_concurrent
        if max_download is not None:
            self.max_download = max_download
        if max_history is not None:
            self.max_history = max_history

    def submit(self, client, body, transport="auto", owned="", import_options=None):
        """Start a job for a validated body; returns at once. `transport` says how local
        images travel: 'auto' (upload, else data URL), 'upload' or 'data_url'; `owned` is
        a folder of input files deleted with the job; `import_options` are kept for
        whoever imports the result."""
        job = Job(body=copy.deepcopy(body), owned=owned,
                  import_options=dict(import_options or {}))
        self._add(job)
        self._start(job, self._create_and_follow, client, job.body, transport)
        self._prune()
        return job

    def attach(self, client, task_id, import_options=None):
        """Follow a task created elsewhere (same key): poll, download, ready to import."""
        job = Job(body={"type": ""}, task_id=task_id, message="Looking up the task",
                  import_options=dict(import_options or {}))
        self._add(job)
        self._start(job, self._follow, client, task_id, "")
        self._prune()
        return job

    def refetch(self, client, job_id):
        """Fresh URLs and a new download for a finished task whose files are gone."""
        job = self.jobs[job_id]
        job.state, job.message, job.error, job.finished = DOWNLOADING, "Fetching again", "", 0
        self._touch(job)
        self._start(job, self._follow, client, job.task_id, job.body.get("type", ""))
        self._save()

    def unfinished(self):
        """Jobs from the history whose tasks nobody is following yet."""
        return [j for j in self.jobs.values()
                if not j.done and j.task_id and j.id not in self._cancels]

    def resume(self, client):
        """Follow again the tasks that were still running when Blender stopped."""
        resumed = self.unfinished()
        for job in resumed:
            job.message = "Resumed after a restart"
            self._touch(job)
            self._start(job, self._follow, client, job.task_id, job.body.get("type", ""))
        return resumed

    def call(self, fn, *args):
        """Run a one-off network call on its own thread; returns a Future to poll."""
        future = concurrent.futures.Future()

        def run():
            try:
                future.set_result(fn(*args))
            except BaseException as e:
                future.set_exception(e)

        threading.Thread(target=run, name="modelstream-call", daemon=True).start()
        return future

    def cancel(self, job_id):
        job = self.jobs.get(job_id)
        if job is None or job.done:
            return
        if job_id in self._cancels:
            self._cancels[job_id].set()
        self._apply(job_id, {"state": CANCELLED, "message": CANCEL_NOTE})

    def remove(self, job_id, delete_files=True):
        """Forget a job (cancelling it first) and delete its cached files."""
        self.cancel(job_id)
        job = self.jobs.pop(job_id, None)
        self._records.pop(job_id, None)
        if job is not None and delete_files:
            _delete(job.files())
        self._save()

    def clear_finished(self):
        for job in [j for j in self.jobs.values() if j.done]:
            self.remove(job.id)

    def mark_imported(self, job_id, imported_as, message=None):
        self._apply(job_id, {"state": IMPORTED, "imported_as": imported_as,
                             "message": message or f"Imported as {imported_as}"})

    def mark_failed(self, job_id, error):
        self._apply(job_id, {"state": FAILED, "error": error, "message": error})

    def queue_position(self, job_id):
        """1-based place among jobs waiting for a slot here, or 0."""
        waiting = [j.id for j in sorted(self.jobs.values(), key=lambda j: j.created)
                   if j.state == WAITING]
        return waiting.index(job_id) + 1 if job_id in waiting else 0

    def tick(self):
        """Apply what the workers posted; never blocks. Returns the jobs that changed."""
        changed = {}
        while True:
            try:
                job_id, update = self._events.get_nowait()
            except queue.Empty:
                break
            if self._apply(job_id, update, save=False):
                changed[job_id] = self.jobs[job_id]
        self._save_if_dirty()
        return list(changed.values())

    def wait(self, job_id, timeout=None):
        """Block until the job is final (background mode). Returns the job."""
        job = self.jobs[job_id]
        deadline = None if timeout is None else time.monotonic() + timeout
        while not job.done:
            left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if left <= 0:
                break
            try:
                event = self._events.get(timeout=left)
            except queue.Empty:
                continue
            self._apply(*event)
        return job

    def shutdown(self):
        """Stop all workers; unfinished tasks stay in the history and resume next time."""
        self._closed = True
        for cancel in self._cancels.values():
            cancel.set()
        with self._slots:
            self._slots.notify_all()
        if self._writer is not None:
            self._save()
            self._writer.close()

    def _restore(self, records):
        for record in records:
            job = Job(body=record.get("body") or {}, id=record["id"])
            for name in history.FIELDS:
                if name in record and name != "id":
                    setattr(job, name, record[name])
            job.images = [tuple(pair) for pair in job.images]
            if not job.done and not job.task_id:
                job.state, job.error, job.message = FAILED, LOST_NOTE, LOST_NOTE
            self._add(job)

    def _add(self, job):
        self.jobs[job.id] = job
        self._touch(job)

    def _touch(self, job):
        """A new record for a changed job; the others' records are reused as they are."""
        self._records[job.id] = history.record_of(job)

    def _save(self):
        self._dirty = False
        if self._writer is not None:
            self._writer.save(list(self._records.values()))

    def _save_if_dirty(self):
        if self._dirty:
            self._save()

    def _prune(self):
        """Keep the history bounded: the oldest finished jobs go, with their files."""
        finished = sorted((j for j in self.jobs.values() if j.done), key=lambda j: j.created)
        for job in finished[:max(0, len(self.jobs) - self.max_history)]:
            self.jobs.pop(job.id)
            self._records.pop(job.id, None)
            _delete(job.files())
        self._save()

    def _apply(self, job_id, update, save=True):
        job = self.jobs.get(job_id)
        if job is None or (job.done and update.get("state") != IMPORTED):
            return False
        for key, value in update.items():
            setattr(job, key, value)
        if job.done and not job.finished:
            job.finished = time.time()
        if not VOLATILE.issuperset(update):
            self._touch(job)
            self._dirty = True
        if save:
            self._save_if_dirty()
        return True

    def _start(self, job, step, *args):
        cancel = self._cancels[job.id] = threading.Event()
        threading.Thread(target=self._worker, args=(job.id, cancel, step, args),
                         name=f"modelstream-{job.id}", daemon=True).start()

    # Worker threads -----------------------------------------------------------------

    def _worker(self, job_id, cancel, step, args):
        """Waits for a slot, runs one job's steps, always reports back."""
        def post(**update):
            self._events.put((job_id, update))

        known = {"task_id": args[1] if step == self._follow else ""}
        try:
            self._acquire(job_id, cancel)
            try:
                step(*args, cancel, post, known)
            finally:
                self._release()
        except errors.CancelledError:
            post(state=CANCELLED, message=CANCEL_NOTE)
        except errors.ModelStreamError as e:
            e.task_id = e.task_id or known["task_id"]
            post(state=FAILED, error=str(e), message=str(e))
        except Exception as e:  # a worker must always report back
            post(state=FAILED, error=f"Unexpected error: {type(e).__name__}: {e}",
                 message="Unexpected error")

    def _acquire(self, job_id, cancel):
        """FIFO slots: at most max_concurrent jobs talk to the service at once."""
        with self._slots:
            self._line.append(job_id)
            try:
                while self._line[0] != job_id or self._running >= self.max_concurrent:
                    if cancel.is_set() or self._closed:
                        raise errors.CancelledError("Cancelled.")
                    self._slots.wait(0.5)
            finally:
                self._line.remove(job_id)
                self._slots.notify_all()
            self._running += 1

    def _release(self):
        with self._slots:
            self._running -= 1
            self._slots.notify_all()

    def _create_and_follow(self, client, body, transport, cancel, post, known):
        post(state=SUBMITTING, message="Sending the task")
        body = self._send_images(client, body, transport, cancel, post)
        delay = self.poll_min
        give_up = time.monotonic() + self.time_limit
        while True:
            try:
                task_id = client.create_task(body, cancel=cancel)
                break
            except errors.RateLimitError as e:
                # The service refused, so nothing was created: wait our turn, never fail.
                if time.monotonic() > give_up:
                    raise
                post(state=WAITING, message="The service is busy (rate or concurrency "
                     "limit); waiting to send")
                delay = min(self.poll_max, e.retry_after or delay * 2)
                if cancel.wait(delay):
                    raise errors.CancelledError("Cancelled.") from None
        known["task_id"] = task_id
        post(task_id=task_id, state=QUEUED, message="Task created, waiting in queue")
        self._follow(client, task_id, body["type"], cancel, post, known)

    def _follow(self, client, task_id, task_type, cancel, post, known):
        data = self._poll(client, task_id, cancel, post)
        if not task_type:
            task_type = str(data.get("type") or "")
            if task_type not in tasks.TASK_TYPES:
                raise errors.TaskFailedError(f"Task type {task_type!r} is not supported.",
                                             task_id=task_id)
            body = {"type": task_type}
            prompt = (data.get("input") or {}).get("prompt")
            if prompt:
                body["prompt"] = prompt
            post(body=body)
        post(state=DOWNLOADING, message="Downloading the result", progress=100)
        os.makedirs(self.download_dir, exist_ok=True)
        result = {}
        if tasks.output_kind(task_type) == "model":
            result["output_path"], result["output_format"] = self._download(
                client, task_id, data, cancel)
        result["images"] = self._download_images(client, task_id, data, task_type, cancel)
        post(state=READY, progress=100, message="Ready to import", **result)

    def _poll_delay(self, data, attempt):
        """max(poll_min, left / 2), as the official SDK polls; near the end, when that
        would poll again just before the finish, wait for the predicted finish instead."""
        left = data.get("running_left_time")
        if isinstance(left, (int, float)) and left > 0:
            if left <= 2 * self.poll_min:
                return max(self.poll_min, left)
            return min(self.poll_max, left / 2)
        return min(self.poll_max, self.poll_min * (1.5 ** attempt))

    def _poll(self, client, task_id, cancel, post):
        start = time.monotonic()
        unknown_since = None
        attempt = 0
        while True:
            if cancel.is_set():
                raise errors.CancelledError("Cancelled.", task_id=task_id)
            data = client.get_task(task_id, cancel=cancel)
            status = str(data.get("status", "")).lower()
            if status == "success":
                return data
            if status in FAILED_STATUSES:
                reason = data.get("error_msg") or data.get("error_code") or ""
                text = FAILED_STATUSES[status] + (f" Reason: {reason}." if reason else "")
                raise errors.TaskFailedError(text, task_id=task_id)
            now = time.monotonic()
            if status == "unknown":
                unknown_since = unknown_since or now
                if now - unknown_since > self.unknown_limit:
                    raise errors.TaskFailedError(
                        f"The service reported status 'unknown' for over "
                        f"{self.unknown_limit:.0f} s.", task_id=task_id)
            elif status in ONGOING_STATUSES:
                unknown_since = None
            else:
                raise errors.TaskFailedError(
                    f"The service reported an unexpected status {status!r}.", task_id=task_id)
            if now - start > self.time_limit:
                raise errors.TaskFailedError(
                    f"Gave up waiting after {self.time_limit / 60:.0f} min; the task may still "
                    "finish at the service.", task_id=task_id)
            post(state=RUNNING if status == "running" else QUEUED, status=status,
                 progress=int(data.get("progress") or 0),
                 queuing_num=_number(data.get("queuing_num")),
                 running_left_time=_number(data.get("running_left_time")),
                 message=_status_text(data))
            if cancel.wait(self._poll_delay(data, attempt)):
                raise errors.CancelledError("Cancelled.", task_id=task_id)
            attempt += 1

    def _send_images(self, client, body, transport, cancel, post):
        """Local images become upload tokens or data URLs; the job's own body keeps the
        paths, so a retry can send them again."""
        body = copy.deepcopy(body)
        refs = [r for r in [body.get("file"), *(body.get("files") or [])]
                if isinstance(r, dict) and "path" in r]
        used = set()
        for ref in refs:
            path = ref.pop("path")
            fmt = imagefile.check(path)
            if transport in ("auto", "upload"):
                try:
                    ref["file_token"] = client.upload(path, imagefile.MIME[fmt], cancel=cancel)
                    used.add("upload")
                    continue
                except errors.UploadUnavailableError as e:
                    if transport == "upload":
                        raise errors.ConfigError(
                            f"{e} Choose the 'Data URL' or 'Auto' image transport in the "
                            "add-on preferences.") from None
            ref["url"] = imagefile.data_url(path, fmt)
            used.add("data URL")
        if used:
            how = " + ".join(sorted(used))
            post(transport=how, message=f"Images sent by {how}")
        return body

    def _fetch(self, client, task_id, data, pick, dest, cancel):
        """Download pick(output) to dest; an expired URL gets one fresh GET of the task."""
        url = pick(data.get("output"))
        try:
            client.download(url, dest, cancel=cancel, max_bytes=self.max_download,
                            task_id=task_id)
        except errors.DownloadError as e:
            if e.status not in (403, 404, 410):
                raise
            url = pick(client.get_task(task_id, cancel=cancel).get("output")) or url
            client.download(url, dest, cancel=cancel, max_bytes=self.max_download,
                            task_id=task_id)

    def _download(self, client, task_id, data, cancel):
        url = formats.model_url(data.get("output"))
        if not url:
            raise errors.TaskFailedError("The task finished but returned no model.",
                                         task_id=task_id)
        dest = os.path.join(self.download_dir,
                            f"{task_id}.{formats.format_from_url(url) or 'bin'}")
        self._fetch(client, task_id, data, formats.model_url, dest, cancel)
        return dest, formats.check_model_file(dest, task_id=task_id)

    def _download_images(self, client, task_id, data, task_type, cancel):
        """[(name, path)]. A model's preview is a bonus: losing it never fails the job."""
        kind = tasks.output_kind(task_type)
        urls = formats.image_urls(data.get("output"), kind)
        if kind != "model" and not urls:
            raise errors.TaskFailedError("The task finished but returned no image.",
                                         task_id=task_id)
        if kind == "multiview" and len(urls) < 4:
            raise errors.TaskFailedError(f"The task returned {len(urls)} of 4 views.",
                                         task_id=task_id)
        images = []
        for name, _ in urls:
            dest = os.path.join(self.download_dir, f"{task_id}_{name}.img")
            try:
                self._fetch(client, task_id, data,
                            lambda out, n=name: dict(formats.image_urls(out, kind)).get(n),
                            dest, cancel)
                fmt = formats.check_image_file(dest, task_id=task_id)
            except errors.DownloadError:
                if kind == "model":
                    continue
                raise
            final = dest[:-4] + "." + ("jpg" if fmt == "jpeg" else fmt)
            os.replace(dest, final)
            images.append((name, final))
        return images


def _status_text(data):
    status = data.get("status", "")
    if status == "queued":
        n = data.get("queuing_num")
        return f"Queued (position {n})" if isinstance(n, int) and n >= 0 else "Queued"
    left = data.get("running_left_time")
    eta = f", about {int(left)} s left" if isinstance(left, (int, float)) and left > 0 else ""
    return f"Running {int(data.get('progress') or 0)}%{eta}"


def _number(value):
    """The API's -1-when-unknown numbers, defensively."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else -1


def _delete(paths):
    for path in paths:
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(path)
