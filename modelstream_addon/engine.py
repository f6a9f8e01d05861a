"""Job engine: submit -> poll -> download -> ready. No bpy here.

All network and file I/O runs on worker threads, which only post plain dicts to a queue.
The main thread calls `tick()` (GUI timer) to apply them; it never waits on the network.
Headless, `wait()` blocks on the same queue, so one code path serves both.
"""

from __future__ import annotations

import copy
import os
import queue
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import errors, formats, imagefile, tasks

SUBMITTING = "SUBMITTING"
QUEUED = "QUEUED"
RUNNING = "RUNNING"
DOWNLOADING = "DOWNLOADING"
READY = "READY"
IMPORTED = "IMPORTED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
FINAL_STATES = (READY, IMPORTED, FAILED, CANCELLED)

ONGOING_STATUSES = ("queued", "running")
FAILED_STATUSES = {
    "failed": "The task failed at the service.",
    "banned": "The task was refused by the content policy (banned).",
    "expired": "The task expired at the service before it finished.",
    "cancelled": "The task was cancelled at the service.",
}
CANCEL_NOTE = ("Stopped waiting. The service has no cancel endpoint: the task may still "
               "finish and be charged.")


@dataclass
class Job:
    """The main thread's view of one job; only `tick()`/`wait()` change it."""

    body: dict
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    state: str = SUBMITTING
    task_id: str = ""
    status: str = ""
    progress: int = 0
    queuing_num: int = -1
    running_left_time: float = -1
    message: str = "Sending the task"
    error: str = ""
    transport: str = ""
    output_path: str = ""
    output_format: str = ""
    images: list = field(default_factory=list)
    created: float = field(default_factory=time.time)
    finished: float = 0.0

    @property
    def done(self):
        return self.state in FINAL_STATES


class Engine:
    def __init__(self, download_dir, *, max_workers=4, poll_min=2.0, poll_max=30.0,
                 time_limit=1800.0, unknown_limit=120.0,
                 max_download=512 * 1024 * 1024):
        self.download_dir = download_dir
        self.poll_min = poll_min
        self.poll_max = poll_max
        self.time_limit = time_limit
        self.unknown_limit = unknown_limit
        self.max_download = max_download
        self.jobs = {}
        self._cancels = {}
        self._events = queue.Queue()
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="modelstream")

    def submit(self, client, body, transport="auto"):
        """Start a job for a validated body; returns at once. `transport` says how local
        images travel: 'auto' (upload, else data URL), 'upload' or 'data_url'."""
        job = Job(body=copy.deepcopy(body))
        self.jobs[job.id] = job
        cancel = self._cancels[job.id] = threading.Event()
        self._pool.submit(self._run, job.id, client, job.body, transport, cancel)
        return job

    def call(self, fn, *args):
        """Run a one-off network call on a worker; returns a Future to poll."""
        return self._pool.submit(fn, *args)

    def cancel(self, job_id):
        job = self.jobs.get(job_id)
        if job is None or job.done:
            return
        self._cancels[job_id].set()
        self._apply(job_id, {"state": CANCELLED, "message": CANCEL_NOTE})

    def mark_imported(self, job_id, message="Imported"):
        self._apply(job_id, {"state": IMPORTED, "message": message})

    def mark_failed(self, job_id, error):
        self._apply(job_id, {"state": FAILED, "error": error, "message": error})

    def tick(self):
        """Apply what the workers posted; never blocks. Returns the jobs that changed."""
        changed = {}
        while True:
            try:
                job_id, update = self._events.get_nowait()
            except queue.Empty:
                break
            if self._apply(job_id, update):
                changed[job_id] = self.jobs[job_id]
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
        for job_id in list(self.jobs):
            self.cancel(job_id)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _apply(self, job_id, update):
        job = self.jobs.get(job_id)
        if job is None or (job.done and update.get("state") != IMPORTED):
            return False
        for key, value in update.items():
            setattr(job, key, value)
        if job.done and not job.finished:
            job.finished = time.time()
        return True

    def _poll_delay(self, data, attempt):
        left = data.get("running_left_time")
        if isinstance(left, (int, float)) and left > 0:
            return min(self.poll_max, max(self.poll_min, left / 2))
        return min(self.poll_max, self.poll_min * (1.5 ** attempt))

    def _run(self, job_id, client, body, transport, cancel):
        """Worker thread: plain data out through the queue, nothing else shared."""
        def post(**update):
            self._events.put((job_id, update))

        task_id = None
        try:
            body = self._send_images(client, body, transport, cancel, post)
            task_id = client.create_task(body, cancel=cancel)
            post(task_id=task_id, state=QUEUED, message="Task created, waiting in queue")
            data = self._poll(client, task_id, cancel, post)
            post(state=DOWNLOADING, message="Downloading the result", progress=100)
            os.makedirs(self.download_dir, exist_ok=True)
            result = {}
            if tasks.output_kind(body["type"]) == "model":
                result["output_path"], result["output_format"] = self._download(
                    client, task_id, data, cancel)
            result["images"] = self._download_images(client, task_id, data, body["type"],
                                                     cancel)
            post(state=READY, progress=100, message="Ready to import", **result)
        except errors.CancelledError:
            post(state=CANCELLED, message=CANCEL_NOTE)
        except errors.ModelStreamError as e:
            e.task_id = e.task_id or task_id
            post(state=FAILED, error=str(e), message=str(e))
        except Exception as e:  # a worker must always report back
            post(state=FAILED, error=f"Unexpected error: {type(e).__name__}: {e}",
                 message="Unexpected error")

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
