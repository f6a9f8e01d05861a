"""Job engine: the job table, the slots and the threads, many jobs at once. No bpy here.

All network and file I/O runs on worker threads (their steps are in worker.py), which only
post plain dicts to a queue.
The main thread calls `tick()` (GUI timer) to apply them; it never waits on the network.
Headless, `wait()` blocks on the same queue, so one code path serves both. At most
`max_concurrent` jobs are at the service at once; the rest wait here, in order. Every job
is kept in a history file, so tasks still running when Blender closed resume later.

The history loads at once, or (in the GUI) on a thread so that enabling the add-on never
waits for thousands of records: until `tick()` merges it in, the table holds only the jobs
submitted since, and nothing is written to the history file, so a partial table never
replaces it. Task ids still reach the task journal at once.

Files: each job downloads into its own folder, downloads/<job id>/, named by the engine;
a path read back from the history is kept only when it lies in the engine's folders, and
nothing is deleted outside them (paths.py checks the resolved path right before).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import copy
import gc
import itertools
import os
import queue
import threading
import time

from . import errors, history, journal, launcher, model_tasks, pacing, paths, worker
from .job import (
    CANCEL_NOTE,
    CANCELLED,
    DOWNLOADING,
    FAILED,
    IMPORTED,
    LOST_NOTE,
    QUEUED,
    READY,
    WAITING,
    Job,
    StoredJob,
)
from .tasks import ValidationError

# Updates that only redraw the UI: the history is rewritten for everything else.
RESUME_SPREAD = 0.1  # seconds between the first polls of tasks resumed together
VOLATILE = frozenset(("progress", "message", "status", "queuing_num", "running_left_time"))


class Engine:
    def __init__(self, download_dir, *, max_concurrent=4, poll_min=2.0, poll_max=30.0,
                 time_limit=1800.0, unknown_limit=120.0, max_download=512 * 1024 * 1024,
                 history_path=None, max_history=200, inputs_dir=None, load_async=False):
        """`inputs_dir` holds the jobs' own input folders (deleted with their job);
        `load_async` reads the history on a thread (see `take_history`)."""
        self.inputs_dir = inputs_dir
        self.settings = worker.Settings(download_dir, poll_min, poll_max, time_limit,
                                        unknown_limit, max_download)
        self.max_concurrent = max_concurrent
        self.max_history = max_history
        self.jobs = {}
        self._records = {}
        # The jobs not settled yet (unfinished, or READY to import), in the table's order:
        # what the timer and the list look at, never a walk over thousands of old jobs.
        self._live = {}
        self._cancels = {}
        # job id -> the file a conversion is copied to: this session's word only, never
        # the history's (a path from a file on disk never becomes a place to write)
        self._copy_to = {}
        self._events = queue.Queue()
        self._slots = threading.Condition()
        self._line = collections.deque()
        self._running = 0
        self._closed = False
        self._dirty = False
        self._writer = None
        self._journal = None
        self._loader = None
        self._launcher = launcher.Launcher()
        if history_path:
            self._journal = journal.TaskJournal(history_path)
            self._writer = history.HistoryWriter(history_path)
            if load_async:
                self._loader = self.call(self._load_frozen, history_path,
                                         name="modelstream-history-load")
            else:
                self._merge(self._load(history_path))

    # Main thread --------------------------------------------------------------------

    def submit(self, client, body, transport="auto", owned="", import_options=None, note="",
               then=(), copy_to=""):
        """Start a job for a validated body; returns at once. `transport` says how local
        images travel: 'auto' (upload, else data URL), 'upload' or 'data_url'; `owned` is
        a folder of input files deleted with the job; `import_options` are kept for
        whoever imports the result; `note` is shown with the job's details; `then` are
        the steps of a chain to send after it (model_tasks.py); `copy_to` is a checked
        path the chain's converted file is copied to (paths.export_destination)."""
        job = Job(body=copy.deepcopy(body), owned=owned, note=note,
                  import_options=copy.deepcopy(import_options or {}), then=list(then))
        if copy_to:
            self._copy_to[job.id] = copy_to
        self._add(job)
        body, fetch = job.body, not job.then
        self._start(job, client,
                    lambda steps: steps.create_and_follow(body, transport, fetch))
        self._prune()
        return job

    def proceed(self, client, job_id, transport="auto"):
        """Send the next step of a chain whose step `job_id` is READY; returns its job.
        The step is marked done and saved first: a crash in between can leave the next
        step unsent (flagged, as any unconfirmed task), never sent twice. Raises
        ValidationError when the chain must stop (the job is then FAILED)."""
        job = self.jobs[job_id]
        step, rest = job.then[0], job.then[1:]
        try:
            body = model_tasks.next_body(
                step, model_tasks.input_of_next(job.body.get("type"), job.task_id, job.body),
                tuple(job.answer) or None)
        except ValidationError as e:
            self._apply(job_id, {"then": [], "state": FAILED, "error": str(e),
                                 "message": str(e)}, final=True)
            raise
        steps = {**job.import_options.get("steps", {}), job.body.get("type", ""): job.task_id}
        self._apply(job_id, {"then": [], "state": IMPORTED,
                             "message": f"Step done; the {step['type']} task follows"},
                    final=True)
        if self._journal is not None:  # on disk before the next step can be sent
            with contextlib.suppress(OSError):  # the history still says so, a moment later
                self._journal.note_step(job_id)
        return self.submit(client, body, transport, import_options={
            **job.import_options, "steps": steps}, note=job.note, then=rest,
            copy_to=self._copy_to.pop(job_id, ""))

    def attach(self, client, task_id, import_options=None):
        """Follow a task created elsewhere (same key): poll, download, ready to import."""
        job = Job(body={"type": ""}, task_id=task_id, message="Looking up the task",
                  import_options=dict(import_options or {}))
        self._add(job)
        self._start(job, client, lambda steps: steps.follow(task_id, ""))
        self._prune()
        return job

    def refetch(self, client, job_id):
        """Fresh URLs and a new download for a finished task whose files are gone."""
        job = self.jobs[job_id]
        job.state, job.message, job.error, job.finished = DOWNLOADING, "Fetching again", "", 0
        self._touch(job)
        self._follow(job, client)
        self._save()

    def unfinished(self):
        """Jobs from the history whose tasks nobody is following yet."""
        return [j for j in self._live.values()
                if not j.done and j.task_id and j.id not in self._cancels]

    def live(self):
        """The jobs not settled yet: unfinished, or READY to import (a chain's step READY
        to go on), oldest first; as cheap with thousands of old jobs as with none."""
        return list(self._live.values())

    def resume(self, client):
        """Follow again the tasks that were still running when Blender stopped. `client`
        may be a function of the job, so each polls the service that created it. Their
        first polls come RESUME_SPREAD apart: all at once, at enable, they took both cores
        of a two-core machine from Blender for a frame."""
        resumed = self.unfinished()
        for n, job in enumerate(resumed):
            job.message = "Resumed after a restart"
            self._touch(job)
            self._follow(job, client(job) if callable(client) else client,
                         after=n * RESUME_SPREAD)
        return resumed

    def configure(self, *, max_concurrent=None, max_download=None, max_history=None):
        """Apply the preferences now: more slots wake waiting jobs, a new download limit
        holds for every download that starts later, a smaller history prunes at once."""
        if max_download is not None:
            self.settings.max_download = max_download
        if max_concurrent is not None:
            with self._slots:
                self.max_concurrent = max_concurrent
                self._slots.notify_all()
        if max_history is not None:
            self.max_history = max_history
            self._prune()

    @property
    def download_dir(self):
        return self.settings.download_dir

    @property
    def max_download(self):
        return self.settings.max_download

    @property
    def poll_min(self):
        return self.settings.poll_min

    @poll_min.setter
    def poll_min(self, value):
        """The CLI's hidden --poll-min, for benchmarks."""
        self.settings.poll_min = value

    @property
    def prebuild(self):
        return self.settings.prebuild

    @prebuild.setter
    def prebuild(self, convert):
        """The import helper's `convert` (core/import_helper.py), or None: each model that
        downloads from now on is imported into a .blend for the main thread to append."""
        self.settings.prebuild = convert

    def quiet(self):
        """A context manager for the main thread's long Blender work (a landing): the
        workers hold their next request until it ends (`pacing.Quiet`)."""
        return self.settings.quiet.hold()

    def call(self, fn, *args, name="modelstream-call"):
        """Run a one-off call (a network request, the history's load) on its own thread;
        returns a Future to poll."""
        future = concurrent.futures.Future()

        def run():
            try:
                future.set_result(fn(*args))
            except BaseException as e:
                future.set_exception(e)

        self._launcher.start(threading.Thread(target=run, name=name, daemon=True))
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
        job = self.jobs.get(job_id)
        if job is not None:
            self._forget([job], delete_files)
        self._save()

    def clear_finished(self):
        self._forget([j for j in self.jobs.values() if j.done])
        self._save()

    def mark_imported(self, job_id, imported_as, message=None):
        """A READY job now in the scene: the import helper's .blend of it has served."""
        job = self.jobs.get(job_id)
        if job is not None and job.prebuilt:
            paths.remove(self.download_dir, job.prebuilt)
        self._apply(job_id, {"state": IMPORTED, "imported_as": imported_as, "prebuilt": "",
                             "message": message or f"Imported as {imported_as}"}, final=True)

    def mark_failed(self, job_id, error):
        """A READY job whose import (or next step) failed."""
        self._apply(job_id, {"state": FAILED, "error": error, "message": error}, final=True)

    def queue_positions(self):
        """{job id: 1-based place} of the jobs waiting for a slot here: one pass over the
        jobs, so a list of thousands is placed at once, not one sort per job."""
        waiting = sorted((j for j in self._live.values() if j.state == WAITING),
                         key=lambda j: j.created)
        return {j.id: place for place, j in enumerate(waiting, 1)}

    def queue_position(self, job_id):
        """1-based place among jobs waiting for a slot here, or 0."""
        return self.queue_positions().get(job_id, 0)

    @property
    def loading(self):
        """The history is still being read on its thread: only new jobs are in the table."""
        return self._loader is not None

    def take_history(self, timeout=0.0):
        """Merge in the history its thread has read (waiting up to `timeout` seconds), the
        new jobs after it; then prune and save the whole table, held until now (the file
        already holds the history: with no new job and nothing to prune, nothing is
        written). True when this call merged it. Main thread; linear in the jobs."""
        if self._loader is None:
            return False
        try:
            loaded = self._loader.result(timeout)
        except concurrent.futures.TimeoutError:
            return False
        self._loader = None
        new = bool(self.jobs)
        self._merge(loaded)
        if new or len(self.jobs) > self.max_history:
            self._prune()
        return True

    def tick(self):
        """Take in the history once read, apply what the workers posted; never blocks.
        Returns the jobs that changed."""
        self.take_history()
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
        self._launcher.close()
        if self._writer is not None:
            self.take_history(10.0)  # else the save stays held: the journal has the task ids
            self._save()
            self._writer.close()

    def _load_frozen(self, path):
        """`_load` on its thread, paced (`pacing`), with every object made so far frozen
        at each rest (gc.freeze): the collections its objects set off then walk only the
        few made since, never all of Blender's objects (a full one is 50 ms and more) nor
        the jobs loaded so far (a middle one was up to 6 ms), and each stops every thread.
        Released after, so the collector is as Blender set it; bench_stalls.py measures."""
        gc.freeze()
        try:
            return self._load(path, pacing.Pacer(on_rest=gc.freeze))
        finally:
            gc.unfreeze()

    def _load(self, path, pace=None):
        """The history's jobs and their records' JSON text, with the task ids the journal
        caught adopted (written to the history before the journal lets go of them).
        Changes no engine state, so it may run on a thread; `take_history` merges what it
        returns."""
        jobs, records = {}, {}

        def keep(job):
            jobs[job.id], records[job.id] = job, history.record_text(job)

        for record in history.stream(path, pace):
            job = self._restored(record)
            records[job.id] = text = history.record_text(job)
            jobs[job.id] = StoredJob(job, text)
        noted, stepped = self._journal.read(), self._journal.stepped()
        _adopt(jobs, keep, noted, _mtime(path))
        _stepped(jobs, keep, stepped)
        if any(a.created > b.created for a, b in itertools.pairwise(jobs.values())):
            ordered = sorted(jobs, key=lambda job_id: jobs[job_id].created)  # stable
            jobs = {job_id: jobs[job_id] for job_id in ordered}
            records = {job_id: records[job_id] for job_id in ordered}
        if noted or stepped:
            history.write_texts_atomic(path, list(records.values()))
            self._journal.clear()
        live = {job_id: job for job_id, job in jobs.items() if _unsettled(job)}
        return jobs, records, live

    def _restored(self, record):
        """A job from a record history.load checked. A path outside the engine's folders is
        re-derived from the job's id (a missing file is fetched again on import)."""
        job = Job(body=record.get("body") or {}, id=record["id"])
        for name in history.FIELDS:
            if name in record and name != "id":
                setattr(job, name, record[name])
        if job.output_path:
            job.output_path = self._local(job, job.output_path,
                                          f"model.{job.output_format or 'glb'}")
        local = ((name, self._local(job, path, f"{name}.png")) for name, path in job.images)
        job.images = [(name, path) for name, path in local if path]
        if not self._owns(job.owned):
            job.owned = ""
        if not job.done and not job.task_id:
            job.state, job.error, job.message = FAILED, LOST_NOTE, LOST_NOTE
        return job

    def _merge(self, loaded):
        """The history's jobs first, then the ones submitted while it loaded: the table
        stays oldest first, as `_load` sorts the history's."""
        jobs, records, live = loaded
        jobs.update(self.jobs)
        records.update(self._records)
        live.update(self._live)
        self.jobs, self._records, self._live = jobs, records, live

    def _local(self, job, path, name):
        """`path` when it is in the download folder, else downloads/<job id>/<name> ('' when
        `name` is not a plain file name)."""
        if paths.under(self.download_dir, path):
            return path
        try:  # resolved (safe_path) before any use, not here: thousands are restored
            return paths.plain_join(self.download_dir, job.id, name)
        except paths.UnsafePathError:
            return ""

    def _owns(self, folder):
        """An input folder the engine may delete: inputs/<12 hex>, as inputs.py makes."""
        return bool(self.inputs_dir and paths.under(self.inputs_dir, folder)
                    and os.path.dirname(os.path.normpath(folder))
                    == os.path.normpath(self.inputs_dir)
                    and paths.JOB_ID.fullmatch(os.path.basename(folder)))

    def _forget(self, gone, delete_files=True):
        """Drop jobs; with their files: each job's own folder, and what it recorded in the
        engine's folders that no remaining job shares (old histories named files by task).
        Only a file outside its job's folder needs the walk over every job's files, so a
        prune with thousands of jobs costs that walk only for such a file."""
        for job in gone:
            self.jobs.pop(job.id, None)
            self._records.pop(job.id, None)
            self._live.pop(job.id, None)
        if not gone or not delete_files:
            return
        root = self.download_dir
        outside = {}  # job id -> its files outside its own folder, which others may share
        for job in gone:
            try:
                own = paths.job_folder(root, job.id)
            except paths.UnsafePathError:
                own = ""
            else:
                paths.remove(root, own)
            files = [p for p in [job.output_path, *(p for _, p in job.images)] if p]
            outside[job.id] = [p for p in files if not (own and paths.under(own, p))]
        if not any(outside.values()) and not any(self._owns(j.owned) for j in gone):
            return  # the usual case: every file was in its job's folder, now gone
        shared = {os.path.normpath(p) for j in self.jobs.values() for p in j.files()}
        for job in gone:
            for path in outside[job.id]:
                if os.path.normpath(path) not in shared:
                    paths.remove(root, path)
            if self._owns(job.owned) and os.path.normpath(job.owned) not in shared:
                paths.remove(self.inputs_dir, job.owned)

    def _add(self, job):
        self.jobs[job.id] = job
        self._touch(job)

    def _touch(self, job):
        """A new record for a changed job (every change of state comes here), kept as its
        JSON text: a write only joins the texts, and thousands of old jobs hold one string
        each rather than dicts and lists for the garbage collector to walk."""
        self._records[job.id] = history.record_text(job)
        if _unsettled(job):
            self._live[job.id] = job
        else:
            self._live.pop(job.id, None)

    def _save(self):
        self._dirty = False
        if self._writer is not None and self._loader is None:  # else the merge saves all
            self._writer.save(list(self._records.values()))

    def _save_if_dirty(self):
        if self._dirty:
            self._save()

    def _prune(self):
        """Keep the history bounded: the oldest finished jobs go, with their files (once the
        history is in: the merge prunes). The table is oldest first (`_merge`), so the
        first finished ones found are those: a prune looks at a handful of jobs, not all."""
        if self._loader is not None:
            return
        excess = len(self.jobs) - self.max_history
        if excess > 0:
            done = (j for j in self.jobs.values() if j.done)
            self._forget(list(itertools.islice(done, excess)))
        self._save()

    def _apply(self, job_id, update, save=True, final=False):
        """Apply an update; a worker's (`final` off) never changes a job that is done,
        the main thread's marks (`final`) end a READY one."""
        job = self.jobs.get(job_id)
        if job is None or (job.done and update.get("state") != IMPORTED
                           and not (final and job.state == READY)):
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

    def _follow(self, job, client, after=0.0):
        task_id, task_type, fetch = job.task_id, job.body.get("type", ""), not job.then
        self._start(job, client,
                    lambda steps: steps.follow(task_id, task_type, fetch, after=after))

    def _start(self, job, client, run):
        cancel = self._cancels[job.id] = threading.Event()
        copy_to = "" if job.then else self._copy_to.pop(job.id, "")
        self._launcher.start(threading.Thread(target=self._work,
                                              args=(job.id, cancel, client, run, copy_to),
                                              name=f"modelstream-{job.id}", daemon=True))

    # Worker threads -----------------------------------------------------------------

    def _work(self, job_id, cancel, client, run, copy_to=""):
        """Waits for a slot, runs one job's steps, always reports back."""
        def post(**update):
            if "task_id" in update and self._journal is not None:
                with contextlib.suppress(OSError):  # the history still gets it, a moment later
                    known = self.jobs.get(job_id)
                    self._journal.note(job_id, update["task_id"],
                                       known.body.get("type", "") if known else "")
            self._events.put((job_id, update))

        steps = worker.Worker(client, cancel, post, self.settings, job_id, copy_to)
        try:
            self._acquire(job_id, cancel)
            try:
                run(steps)
            finally:
                self._release()
        except errors.CancelledError:
            post(state=CANCELLED, message=CANCEL_NOTE)
        except errors.ModelStreamError as e:
            e.task_id = e.task_id or steps.task_id
            post(state=FAILED, error=str(e), message=str(e))
        except Exception as e:  # a worker must always report back
            task = f" (task {steps.task_id})" if steps.task_id else ""
            post(state=FAILED, error=f"Unexpected error: {type(e).__name__}: {e}{task}",
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


def _adopt(jobs, keep, noted, saved_at):
    """Task ids the journal caught that the history missed (the process died first): such a
    job follows its task again instead of being flagged as lost. A job the history no
    longer has comes back only if the history was not written since (else it was removed
    on purpose). `keep` records a changed or new job."""
    for job_id, (task_id, task_type, when) in noted.items():
        job = jobs.get(job_id)
        if job is None:
            if when <= saved_at:
                continue
            job = Job(body={"type": task_type}, id=job_id)
        elif job.task_id:
            continue
        if (job.state == FAILED and job.error == LOST_NOTE) or not job.done:
            job.state, job.error = QUEUED, ""
            job.message = "Task id recovered after a crash"
        job.task_id = task_id
        keep(job)


def _stepped(jobs, keep, stepped):
    """Chain steps that went on before Blender stopped, though the history had not been
    written since: they are done, never sent on twice."""
    for job_id in stepped:
        job = jobs.get(job_id)
        if job is not None and job.then:
            job.then = []
            if job.state == READY:
                job.state = IMPORTED
                job.message = "Step done; the next step was sent before Blender stopped"
            keep(job)


def _unsettled(job):
    """Not done, or READY and not imported yet: a job `Engine.live` lists."""
    return job.state == READY or not job.done


def _mtime(path):
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0
