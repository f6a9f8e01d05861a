"""One job's steps on its worker thread: send, follow, download. No bpy here.

A step talks only to the service and the disk, and says what happened through
`post(**update)`; the engine applies the updates on the main thread. Settings are read
when a step uses them, so a new limit applies to every download that starts after it.
Downloads go into the job's own folder under fixed names (model.glb, preview.png...):
nothing the service sends, task id or URL, ever becomes part of a path.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import errors, formats, imagefile, model_tasks, pacing, paths, polling, tasks
from .job import DOWNLOADING, QUEUED, READY, RUNNING, SUBMITTING, WAITING

ONGOING_STATUSES = ("queued", "running")
FAILED_STATUSES = {
    "failed": "The task failed at the service.",
    "banned": "The task was refused by the content policy (banned).",
    "expired": "The task expired at the service before it finished.",
    "cancelled": "The task was cancelled at the service.",
}
EXPIRED_LINK = (403, 404, 410)
PREPARING = "Preparing the model for the scene"  # the import helper at work: downloaded


@dataclass
class Settings:
    """Shared by all of an engine's workers; the engine changes it in place."""

    download_dir: str
    poll_min: float = 2.0
    poll_max: float = 30.0
    time_limit: float = 1800.0
    unknown_limit: float = 120.0
    max_download: int = 512 * 1024 * 1024
    # task id -> {view: path} the history downloaded, to complete a partial edit without
    # the network; filled on the main thread before the job that reads it starts.
    known_views: dict = field(default_factory=dict)
    # Held by the main thread while it lands a model: workers wait before their next request.
    quiet: pacing.Quiet = field(default_factory=pacing.Quiet)
    # (model path, format, .blend path, [(view, preview path)]) -> True once the import
    # helper wrote the .blend; None: the main thread imports every model itself.
    prebuild: Callable[[str, str, str, list], bool] | None = None


class Worker:
    """The steps of one job. `task_id` is the service's task once known, so an error
    raised anywhere can name it."""

    def __init__(self, client, cancel, post, settings, job_id, copy_to=""):
        self.client = client
        self.copy_to = copy_to  # a conversion's checked destination, or ''

        self.cancel = cancel
        self.post = post
        self.settings = settings
        self.job_id = job_id
        self.task_id = ""
        self.source = ""  # the task an edit_multiview_image job edits

    def dest(self, name):
        """downloads/<job id>/<name>, checked to stay inside the download folder."""
        return paths.job_folder(self.settings.download_dir, self.job_id, name)

    def _stop(self):
        raise errors.CancelledError("Cancelled.", task_id=self.task_id or None)

    def create_and_follow(self, body, transport, fetch=True):
        # The service goes into the job (and its history record) before the task exists,
        # so a resumed job polls the service that created it.
        self.post(state=SUBMITTING, message="Sending the task",
                  service=self.client.service.name)
        self.source = body.get("original_task_id", "")
        sent = self.send_images(body, transport)
        delay = self.settings.poll_min
        give_up = time.monotonic() + self.settings.time_limit
        while True:
            try:
                task_id = self.client.create_task(sent, cancel=self.cancel)
                break
            except errors.RateLimitError as e:
                # The service refused, so nothing was created: wait our turn, never fail.
                if time.monotonic() > give_up:
                    raise
                self.post(state=WAITING, message="The service is busy (rate or concurrency "
                          "limit); waiting to send")
                # The service's own word wins over our back-off cap (bounded like the client).
                delay = (min(120.0, e.retry_after) if e.retry_after is not None
                         else min(self.settings.poll_max, delay * 2))
                if self.cancel.wait(delay):
                    self._stop()
        created = time.monotonic()
        self.task_id = task_id
        self.post(task_id=task_id, state=QUEUED, message="Task created, waiting in queue")
        self.follow(task_id, body["type"], fetch, created)

    def send_images(self, body, transport):
        """Local images become upload tokens or data URLs ('auto' tries the upload first);
        the job's own body keeps the paths, so a retry can send them again."""
        body = copy.deepcopy(body)
        refs = [r for r in [body.get("file"), *(body.get("files") or [])]
                if isinstance(r, dict) and "path" in r]
        used = set()
        for ref in refs:
            path = ref.pop("path")
            if ref.get("type") in model_tasks.MODEL_MIME:  # your own model: upload only
                with open(path, "rb") as f:
                    ref["file_token"] = self.client.upload_model(
                        os.path.basename(path), f.read(), model_tasks.MODEL_MIME[ref["type"]],
                        cancel=self.cancel)
                continue
            fmt, data = imagefile.load(path)
            if transport in ("auto", "upload"):
                try:
                    ref["file_token"] = self.client.upload(
                        os.path.basename(path), data, imagefile.MIME[fmt], cancel=self.cancel)
                    used.add("upload")
                    continue
                except errors.UploadUnavailableError as e:
                    if transport == "upload":
                        raise errors.ConfigError(
                            f"{e} Choose the 'Data URL' or 'Auto' image transport in the "
                            "add-on preferences.") from None
            ref["url"] = imagefile.data_url(data, fmt)
            used.add("data URL")
        if used:
            how = " + ".join(sorted(used))
            self.post(transport=how, message=f"Images sent by {how}")
        return body

    def follow(self, task_id, task_type, fetch=True, created=None, after=0.0):
        """Poll to the end, then download (unless `fetch` is off: a step a chain goes on
        from needs only its task id); an empty `task_type` is read from the task.
        `created` is when we created it (monotonic), else it is polled `after` seconds
        from now."""
        self.task_id = task_id
        self.post(service=self.client.service.name)
        data = self.poll(created, after)
        credits = self.client.service.credits(data)
        spent = {} if credits is None else {"credits": credits}
        kind = model_tasks.output_kind(task_type)
        if kind == "check" or not fetch:
            answer = model_tasks.check_answer(data.get("output")) if kind == "check" else None
            self.post(state=READY, progress=100, answer=list(answer or ()),
                      message="Done: the next step follows", **spent)
            return
        if not task_type:
            task_type = self.client.service.task_type(data)
            if task_type not in tasks.TASK_TYPES + model_tasks.RESULTS:
                raise errors.TaskFailedError(f"Task type {task_type!r} is not supported.",
                                             task_id=task_id)
            body = {"type": task_type}
            prompt = (data.get("input") or {}).get("prompt")
            if prompt:
                body["prompt"] = prompt
            self.post(body=body)
        self.post(state=DOWNLOADING, message="Downloading the result", progress=100)
        folder = paths.job_folder(self.settings.download_dir, self.job_id)
        os.makedirs(folder, exist_ok=True)
        result = {}
        try:
            if model_tasks.output_kind(task_type) == "model":
                result["output_path"], result["output_format"] = self.download_model(data)
            elif model_tasks.output_kind(task_type) == "file":
                result["output_path"], result["output_format"] = self.download_file(data)
                result["message"] = self.copy_out(result["output_path"])
            result["images"] = self.download_images(data, task_type)
            if model_tasks.output_kind(task_type) == "model":
                result["prebuilt"] = self.prebuild(result["output_path"],
                                                   result["output_format"], result["images"])
        except BaseException:
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # only when the failed download left it empty
            raise
        self.post(state=READY, progress=100, **{"message": "Ready to import", **result},
                  **spent)

    def poll(self, created=None, after=0.0):
        """The task's data once it succeeded; any other end is a TaskFailedError. Polls
        when polling.Schedule says, from what the service answers."""
        task_id, settings = self.task_id, self.settings
        start = time.monotonic()
        schedule = polling.Schedule(start if created is None else created, created is not None)
        delay = schedule.first(start, settings.poll_min) + after
        unknown_since = None
        while True:
            if self.cancel.wait(delay):
                self._stop()
            settings.quiet.wait()
            data = self.client.get_task(task_id, cancel=self.cancel)
            status = str(data.get("status", "")).strip().lower()
            if status == "success":
                return data
            if status in FAILED_STATUSES:
                raise errors.TaskFailedError(_failure_text(status, data), task_id=task_id)
            now = time.monotonic()
            if status in ONGOING_STATUSES:
                unknown_since = None
            else:
                # 'unknown', or a status nobody has seen yet: keep polling a paid task for a
                # while, as the official SDK does, then fail quoting it.
                unknown_since = unknown_since or now
                if now - unknown_since > settings.unknown_limit:
                    raise errors.TaskFailedError(
                        f"The service reported status {status!r} for over "
                        f"{settings.unknown_limit:.0f} s.", task_id=task_id)
            if now - start > settings.time_limit:
                raise errors.TaskFailedError(
                    f"Gave up waiting after {settings.time_limit / 60:.0f} min; the task may "
                    "still finish at the service.", task_id=task_id)
            progress, position = _progress(data.get("progress")), _number(data.get("queuing_num"))
            left = _number(data.get("running_left_time"))
            self.post(state=RUNNING if status == "running" else QUEUED, status=status,
                      progress=progress, queuing_num=position, running_left_time=left,
                      message=_status_text(data))
            delay = schedule.after(now, status, progress, left, position,
                                   settings.poll_min, settings.poll_max)

    def fetch(self, data, pick, dest):
        """Download pick(output) to dest; an expired URL gets one fresh GET of the task."""
        url = pick(data.get("output"))
        for attempt in range(2):
            try:
                self.settings.quiet.wait()
                self.client.download(url, dest, cancel=self.cancel, task_id=self.task_id,
                                     max_bytes=self.settings.max_download)
                return
            except errors.DownloadError as e:
                if attempt or e.status not in EXPIRED_LINK:
                    raise
            fresh = self.client.get_task(self.task_id, cancel=self.cancel)
            url = pick(fresh.get("output")) or url

    def download_model(self, data):
        """(path, format) of the task's model: model.glb or model.fbx in the job's folder."""
        url = formats.model_url(data.get("output"))
        if not url:
            raise errors.TaskFailedError("The task finished but returned no model.",
                                         task_id=self.task_id)
        dest = self.dest(f"model.{formats.format_from_url(url) or 'bin'}")
        self.fetch(data, formats.model_url, dest)
        return dest, formats.check_model_file(dest, folder=self.settings.download_dir,
                                             task_id=self.task_id)

    def prebuild(self, path, fmt, images):
        """model.blend, the model imported by the import helper (`Settings.prebuild`),
        its preview `images` with it, for the main thread to append; '' without one, or
        when it failed: the main thread imports the files itself."""
        if self.settings.prebuild is None:
            return ""
        dest = self.dest("model.blend")
        self.post(message=PREPARING)
        return dest if self.settings.prebuild(path, fmt, dest, images) else ""

    def download_file(self, data):
        """(path, format) of a conversion: converted.<format> in the job's folder, its
        format named by its link and confirmed by its content."""
        url = formats.model_url(data.get("output"))
        if not url:
            raise errors.TaskFailedError("The conversion finished but returned no file.",
                                         task_id=self.task_id)
        fmt = formats.export_format_from_url(url)
        dest = self.dest(f"converted.{fmt or 'bin'}")
        self.fetch(data, formats.model_url, dest)
        return dest, formats.check_export_file(dest, fmt, folder=self.settings.download_dir,
                                               task_id=self.task_id)

    def copy_out(self, path):
        """A conversion's file, also where the user asked for it; a failed copy is said,
        never a lost result (the file stays in the job's folder)."""
        if not self.copy_to:
            return f"Converted: {path}"
        extension = os.path.splitext(path)[1][1:]
        try:
            return f"Exported to {paths.copy_out(path, self.copy_to, extension)}"
        except (OSError, paths.UnsafePathError) as e:
            return f"Converted, kept at {path}; copying to {self.copy_to} failed: {e}"

    def download_images(self, data, task_type):
        """[(name, path)]. A model's preview is a bonus: losing it never fails the job."""
        kind = model_tasks.output_kind(task_type)
        urls = formats.image_urls(data.get("output"), kind)
        if kind in ("image", "multiview") and not urls:
            raise errors.TaskFailedError("The task finished but returned no image.",
                                         task_id=self.task_id)
        if kind == "multiview" and len(urls) < 4 and task_type != "edit_multiview_image":
            raise errors.TaskFailedError(f"The task returned {len(urls)} of 4 views.",
                                         task_id=self.task_id)
        images = []
        for name, _ in urls:
            dest = self.dest(f"{name}.img")
            try:
                self.fetch(data, lambda out, n=name: dict(formats.image_urls(out, kind)).get(n),
                           dest)
                images.append((name, self._settle_image(dest)))
            except errors.DownloadError:
                if kind == "model":
                    continue
                raise
        if kind == "multiview" and len(images) < 4:
            images = self.complete_views(images, data)
        return images

    def complete_views(self, images, data):
        """An edit may return only the views it changed: the others are the source task's,
        from the history's downloads when it has them, else one GET of the source task."""
        have = dict(images)
        source = self.source or _source_of(data)
        if not source:
            raise errors.TaskFailedError(
                f"The edit returned {len(have)} of 4 views and names no source task to "
                "complete them from.", task_id=self.task_id)
        for view, path in self.settings.known_views.get(source, {}).items():
            if view not in have and os.path.isfile(path):
                have[view] = self._own_copy(view, path)
        missing = [v for v in tasks.VIEWS if v not in have]
        if missing:
            found = dict(formats.image_urls(
                self.client.get_task(source, cancel=self.cancel).get("output"), "multiview"))
            for view in missing:
                if view in found:
                    have[view] = self._source_download(view, found[view])
        missing = [v for v in tasks.VIEWS if v not in have]
        if missing:
            raise errors.TaskFailedError(
                f"The edit returned {4 - len(missing)} of 4 views, and the source task "
                f"{source} has no {', '.join(missing)} view.", task_id=self.task_id)
        self.post(message=f"Views not edited come from task {source}")
        return [(view, have[view]) for view in tasks.VIEWS]

    def _own_copy(self, view, path):
        """The job's own file: removing this job must not delete the source job's."""
        dest = self.dest(f"{view}{os.path.splitext(path)[1].lower()}")
        shutil.copyfile(path, dest)
        return dest

    def _source_download(self, view, url):
        dest = self.dest(f"{view}.img")
        self.client.download(url, dest, cancel=self.cancel, task_id=self.task_id,
                             max_bytes=self.settings.max_download)
        return self._settle_image(dest)

    def _settle_image(self, dest):
        """A downloaded `.img` checked and renamed to its real extension, in the job's
        folder."""
        fmt = formats.check_image_file(dest, folder=self.settings.download_dir,
                                       task_id=self.task_id)
        final = self.dest(os.path.basename(dest)[:-4] + "." + ("jpg" if fmt == "jpeg" else fmt))
        os.replace(dest, final)
        return final


CONTENT_POLICY_CODES = (2008, 2018)


def _source_of(data):
    """The edited task's id from the task's echoed input (v2 `original_task_id`, v3
    `input`), for a job resumed or imported by id."""
    echoed = data.get("input")
    if not isinstance(echoed, dict):
        return ""
    source = echoed.get("original_task_id") or echoed.get("input")
    return source if isinstance(source, str) else ""


def _failure_text(status, data):
    """Why a task ended, from either shape of error field."""
    code = data.get("error_code")
    if status == "failed" and code in CONTENT_POLICY_CODES:
        status = "banned"
    reason = data.get("error_msg") or data.get("error_message") or code or ""
    return FAILED_STATUSES[status] + (f" Reason: {reason}." if reason else "")


def _progress(value):
    """0-100 from an int, a float or text like '50%'; anything else is 0."""
    try:
        number = float(str(value).strip().rstrip("%"))
    except ValueError:
        return 0
    return int(min(100.0, max(0.0, number))) if number == number else 0


def _status_text(data):
    """What the job list says while a task runs, from fields of any shape."""
    status = str(data.get("status", "")).strip().lower()
    if status == "queued":
        n = _number(data.get("queuing_num"))
        return f"Queued (position {int(n)})" if 0 <= n < 1e9 else "Queued"
    left = _number(data.get("running_left_time"))
    eta = f", about {int(left)} s left" if 0 < left < 1e7 else ""
    return f"Running {_progress(data.get('progress'))}%{eta}"


def _number(value):
    """The API's -1-when-unknown numbers, defensively: never a bool, NaN or infinity,
    which the history could not keep."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return -1
    return value if math.isfinite(value) else -1
