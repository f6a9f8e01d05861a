"""The add-on's one job engine, the one road from options to the scene, and the job list's
mirror on the WindowManager.

Every caller (operators, the Python API, the command line, the timer) goes through here:
`prepare` (validate, capture, build the body: nothing spent yet), `submit`, then `land`
(the one import of a READY job: placement, note, undo step, history, failure). Only the
main thread calls in here. A persistent timer drains the engine in the GUI; headless,
`wait()` blocks on the same engine instead. In the GUI the history loads on a thread, so
enabling the add-on stays quick: the timer takes it in, then resumes its unfinished tasks;
whatever reads old jobs for a script waits for it (`wait_history`).
"""

import collections
import dataclasses
import time
import uuid
from dataclasses import dataclass, field

import bpy

from ..core import engine as engine_mod
from ..core import errors, joblist, services, tasks
from ..core.job import DOWNLOADING, IMPORTED, READY, RUNNING
from . import importer, inputs, preferences
from .user_files import user_folder

TICK_SECONDS = 0.2
# Seconds between timer calls while a job may be READY any moment, a landing's previews
# wait or the job list is still filling.
LANDING_TICK = 0.02
NEAR_END = 2.0  # seconds left (as the service says) from which a running job may end any moment
SESSION_START = time.time()  # the add-on's modules load anew when it is enabled
HISTORY_WAIT = 30.0  # seconds a script waits for the history to load before going on
RESUMED_NOTE = "imported after Blender restarted"
_engine = None
_auto_import = {}  # job id -> note: jobs this session imports when they become READY
_near_end = set()  # ids of the jobs that may be READY any moment (`_landing_soon`)
_to_land = collections.deque()  # READY jobs of `_auto_import` for the timer, in order
# (job, undo message or None, its opened .blend or None) landed: previews next
_previews_to_load = collections.deque()
_opened = collections.deque()  # (job, its import helper's .blend opened): appended next call
_resume_pending = False
_resume_problem = ""
_balance_future = None
_warm_up = None  # the Future of importer.warm_up, once asked for
_helper = None  # the import helper (core/import_helper.py), once the preferences want it
_helper_start = None  # the Future of its last start
_no_balance = set()  # (service, base URL) that has no balance endpoint: asked once only
balance = ""  # the credit balance the panel shows; '' when the service gives none
balance_service = ""  # the service `balance` is of
# Called with (context, job) once a job has landed in the scene, the way bpy.app.handlers
# are: what sits above the runtime (the library's Save Results to Library) adds its own.
on_landed = []


def engine():
    global _engine
    if _engine is None:
        _engine = engine_mod.Engine(user_folder("downloads"),
                                    history_path=f"{user_folder()}/history.json",
                                    max_history=preferences.get().max_history,
                                    inputs_dir=inputs.inputs_dir(),
                                    load_async=_gui())
        joblist.bind(_engine)
        apply_preferences()
    return _engine


def _gui():
    """The GUI reads the history on a thread (enabling never waits for it), fills the job
    list over a few timer calls and loads the importer's modules on a thread before the
    first result lands; headless, a script reads the history at once, so it loads before
    `engine()` returns, and the list fills at once. A function, so that the benchmarks
    can time the GUI's path in the bpy module, which is always background."""
    return not bpy.app.background


def _fill(wm):
    """List the engine's jobs: in the GUI the timer adds them a chunk a call
    (`joblist.update`), so thousands never hold a frame; headless all at once."""
    joblist.sync(wm, 0 if _gui() else None)


def wait_history():
    """Take in the history now, waiting up to HISTORY_WAIT seconds for its thread: for
    whatever reads old jobs (scripts, the edit check). Headless it is always in."""
    if engine().loading and engine().take_history(HISTORY_WAIT):
        _history_in(bpy.context.window_manager)


def history_loading():
    """Whether the history is still loading (the panel says so)."""
    return _engine is not None and _engine.loading


def _history_in(wm):
    """The history was just merged in: list its jobs, follow its unfinished tasks."""
    if wm is not None:
        _fill(wm)
        _redraw(wm)
    resume()


def apply_preferences(context=None):
    """The one place preferences reach the engine: at start-up and whenever one changes."""
    if _engine is None:
        return
    prefs = preferences.get(context)
    _engine.configure(max_concurrent=prefs.max_concurrent, max_history=prefs.max_history,
                      max_download=prefs.max_download_mb * 1024 * 1024)
    _use_helper(prefs.import_helper and _helper_wanted())


def _helper_wanted():
    """The import helper is the GUI's: headless, a script waits for its results anyway
    and a second Blender would only cost it. A function, for the benchmarks."""
    return not bpy.app.background


def _use_helper(wanted):
    global _helper, _helper_start
    if wanted and _helper is None:
        _helper, _helper_start = importer.make_helper(), None
    elif not wanted and _helper is not None:
        _helper.close()
        _helper, _helper_start = None, None
    _engine.prebuild = _helper.convert if _helper is not None else None


def _start_helper():
    """Start the import helper on a thread (it takes a second or two), so the result it
    is started for needs no wait for it (else the worker starts it)."""
    global _helper_start
    if _helper is None or _helper.running or _helper_start and not _helper_start.done():
        return
    _helper_start = engine().call(_helper.start, name="modelstream-import-helper-start")


def _preferences_changed(context, name):
    if name == "service":
        refresh_balance(context)
    else:
        apply_preferences(context)


def start():
    """On enable: load the history, resume unfinished tasks, and tick in the GUI (where the
    history loads on a thread: the timer takes it in and resumes them then)."""
    preferences.on_change.append(_preferences_changed)
    resume()
    if not bpy.app.background:
        bpy.app.timers.register(_timer, first_interval=TICK_SECONDS, persistent=True)
        refresh_balance()
    bpy.app.handlers.load_post.append(_after_load)
    for handlers in _FILE_CHANGES:
        handlers.append(_before_file_change)
    if bpy.context.window_manager is not None:
        sync(bpy.context.window_manager)


def resume():
    """Follow again the tasks Blender stopped waiting for, and send the next step of a
    chain whose step finished meanwhile; without online access or a key they stay in the
    history, and the timer (or `wait_all`) tries again later."""
    global _resume_pending, _resume_problem
    unfinished = engine().unfinished()
    stopped = [j for j in engine().live() if j.state == READY and j.then]
    _resume_pending = bool(unfinished or stopped)
    if not _resume_pending or not bpy.app.online_access:
        return
    try:  # each job polls the service that created it ('' is from before there were two)
        clients = {name: preferences.make_client(service_name=name) for name in
                   {j.service or services.DEFAULT for j in unfinished + stopped}}
    except errors.ModelStreamError as e:
        if str(e) != _resume_problem:
            _resume_problem = str(e)
            print(f"ModelStream: unfinished tasks wait until this is fixed: {e}")
        return
    for job in unfinished:
        _hand_over_views(job.body)
    for job in engine().resume(lambda j: clients[j.service or services.DEFAULT]):
        _will_land(job.id, RESUMED_NOTE, resumed=True)
        if bpy.context.window_manager is not None:
            mirror(bpy.context.window_manager, job)
    for job in stopped:
        _will_land(job.id, RESUMED_NOTE, resumed=True)
        step_on(bpy.context, job)
    _resume_pending = False


@bpy.app.handlers.persistent
def _after_load(_filepath):
    """A new file brings a new job list to draw: refill it from the engine."""
    if bpy.context.window_manager is not None:
        _fill(bpy.context.window_manager)


# What replaces Blender's data: an opened .blend must be closed before, while its
# data is still there to close it against.
_FILE_CHANGES = (bpy.app.handlers.load_pre, bpy.app.handlers.undo_pre,
                 bpy.app.handlers.redo_pre)


@bpy.app.handlers.persistent
def _before_file_change(*_args):
    """A file loads, or an undo or redo comes: the .blend opened to land a model is
    closed first, and the model lands anew after."""
    for job, _ in reversed(_opened):
        _to_land.appendleft(job)
    _close_opened()
    waiting = [(job, added, None) for job, added, _ in _previews_to_load]
    _previews_to_load.clear()
    _previews_to_load.extend(waiting)  # their images load from their files


def shutdown():
    """Stop polling (the add-on is being disabled); history and files stay on disk."""
    global _engine
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    if _after_load in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_after_load)
    for handlers in _FILE_CHANGES:
        if _before_file_change in handlers:
            handlers.remove(_before_file_change)
    if _preferences_changed in preferences.on_change:
        preferences.on_change.remove(_preferences_changed)
    _close_opened()
    _to_land.clear()
    _previews_to_load.clear()
    if _engine is not None:
        _engine.shutdown()
        _use_helper(False)
        _engine = None
        joblist.bind(None)


def _timer():
    if _resume_pending and bpy.app.online_access:
        resume()
    wm = bpy.context.window_manager
    if wm is not None:
        _near_end.update(j.id for j in tick(wm) if _landing_soon(j))
    jobs = engine().jobs
    _near_end.intersection_update([i for i in _near_end if i in jobs and _landing_soon(jobs[i])])
    if _near_end:
        _start_helper()
    soon = (_near_end or _to_land or _opened or _previews_to_load
            or wm is not None and joblist.filling(wm))
    return LANDING_TICK if soon else TICK_SECONDS


def _landing_soon(job):
    """READY may come any moment (downloading, or the service says it is nearly done):
    the timer then calls again soon, so the job lands a moment after, not a tick after."""
    return job.state == DOWNLOADING or job.state == RUNNING and (
        0 < job.running_left_time <= NEAR_END or job.progress >= 95)


# The job list ---------------------------------------------------------------------------------

def sync(wm):
    """Make the jobs list match the engine (after load, remove, clear)."""
    joblist.sync(wm)


def mirror(wm, job):
    joblist.update(wm, [job])


def _redraw(wm):
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type == 'VIEW_3D':
                area.tag_redraw()


def tick(wm):
    """Take in the history once read, apply worker results and land the jobs waiting for
    it. Never blocks."""
    loading = engine().loading
    changed = engine().tick()
    if loading and not engine().loading:
        _history_in(wm)
    running = joblist.fill(wm) | joblist.update(wm, changed)
    if any(j.done for j in changed):
        refresh_balance()
    if poll_balance():
        _redraw(wm)
    for job in changed:
        if job.state == READY and job.id in _auto_import:
            if job.then:
                step_on(bpy.context, job)
            else:
                _to_land.append(job)
    _land_next()
    if changed or running or _to_land or _previews_to_load:
        _redraw(wm)
    return changed


def _land_next():
    """Land the oldest READY job waiting for it: one import per timer call, so a row of
    variations that arrives at once lands over as many frames, never all in one. The
    import helper's .blend of the model is opened in a call of its own, then appended in
    the next; its preview images, then its undo step, in the call after (the first images
    a Blender process reads cost it about 12 ms more)."""
    if _land_previews():
        return
    if _opened:
        job, opened = _opened.popleft()
        if _still_to_land(job):
            land(bpy.context, job, _auto_import[job.id], push_undo=True, previews=False,
                 opened=opened)
        else:
            importer.close_unused(opened)
        return
    while _to_land:
        job = _to_land.popleft()
        if not _still_to_land(job):
            continue
        opened = importer.open_prebuilt(job.prebuilt) if job.prebuilt else None
        if opened is not None:
            _opened.append((job, opened))
        else:
            land(bpy.context, job, _auto_import[job.id], push_undo=True, previews=False)
        return


def _still_to_land(job):
    return job.state == READY and job.id in _auto_import and job.id in engine().jobs


def _close_opened():
    """The .blend files opened for landing, closed unused."""
    while _opened:
        importer.close_unused(_opened.pop()[1])


def _land_previews():
    """The preview images of the last model landed and its undo step. True when there
    was one."""
    if not _previews_to_load:
        return False
    job, added, opened = _previews_to_load.popleft()
    importer.load_previews(job, opened)
    if added is not None and not bpy.app.background:
        bpy.ops.ed.undo_push(message=f"ModelStream: {added}")
    return True


def jobs():
    """The engine's jobs, oldest first (for scripts and the command line)."""
    wait_history()
    return list(engine().jobs.values())


def job(job_id):
    return engine().jobs.get(job_id)


def remove(context, job_id):
    """Forget a job and delete its files (stops waiting for it first)."""
    engine().remove(job_id)
    sync(context.window_manager)


def clear_finished(context):
    engine().clear_finished()
    sync(context.window_manager)


def cancel(context, job_id):
    engine().cancel(job_id)
    found = engine().jobs.get(job_id)
    if found is not None:
        mirror(context.window_manager, found)


# Start: prepare, then submit ---------------------------------------------------------------

@dataclass
class Prepared:
    """A task ready to send: everything that can fail before any credit is spent."""

    body: dict
    client: object
    workdir: str = ""
    placement: dict = field(default_factory=dict)
    note: str = ""
    variants: list = field(default_factory=list)  # bodies with their own seeds, or []
    then: list = field(default_factory=list)  # a chain's steps after this task
    copy_to: str = ""  # a checked path the chain's converted file is copied to

    def each(self):
        """One Prepared per task to send: itself, or one per variation, each with its
        seeds and its place in the row the variations land in."""
        if not self.variants:
            return [self]
        row = {"row": uuid.uuid4().hex[:12], "row_count": len(self.variants)}
        return [dataclasses.replace(self, body=body, variants=[],
                                    placement={**self.placement, **row, "row_index": i})
                for i, body in enumerate(self.variants)]


def import_options(context, opts):
    """Where the result goes, fixed at submit: the selection may change while it runs."""
    options = {name: opts.get(name, default) for name, default in (
        ("placement", 'CURSOR'), ("size_mode", 'KEEP'), ("target_size", 1.0),
        ("origin_at_base", False), ("shading", 'KEEP'))}
    if options["placement"] == 'REPLACE':
        active = context.view_layer.objects.active
        if active is None:
            raise tasks.ValidationError("placement", "select the object to replace.")
        options["replace"] = active.name
    elif options["placement"] == 'CURSOR':
        options["placement"] = 'AT'
        options["location"] = list(context.scene.cursor.location)
    return options


def check_online():
    if not bpy.app.online_access:
        raise errors.ConfigError(errors.OFFLINE_MESSAGE)


def prepare(context, opts, service=None):
    """Validate, capture or convert the inputs and build the bodies. Raises
    ModelStreamError (ValidationError, ConfigError) on bad input, leaving nothing behind.
    `service` (a services.py name) instead of the chosen one."""
    check_online()
    placement = import_options(context, opts)
    client = preferences.make_client(context, service)

    def check(body):
        _check_source(body)
        client.service.check(body)

    workdir = inputs.new_workdir()
    try:
        request = tasks.build_request(
            opts, lambda o, fields: inputs.gather(context, o, fields, workdir), check)
    except Exception:
        inputs.discard(workdir)
        raise
    bodies = request.bodies
    return Prepared(bodies[0], client, inputs.kept(workdir), placement, request.note,
                    bodies if len(bodies) > 1 else [])


def _source_job(body):
    """The history's job for the task an edit_multiview_image body edits, or None."""
    source = body.get("original_task_id")
    if body.get("type") != "edit_multiview_image" or not source:
        return None
    wait_history()
    return next((j for j in engine().jobs.values() if j.task_id == source), None)


def _check_source(body):
    """An edited set of views cannot be edited again: refuse it when the history knows."""
    known = _source_job(body)
    if known is not None and known.body.get("type") == "edit_multiview_image":
        raise tasks.ValidationError(
            "original_task_id", "that task is an edit; an edited set cannot be edited again. "
            "Edit the generate_multiview_image task it came from.")
    _hand_over_views(body)


def _hand_over_views(body):
    """The source's downloaded views, for the worker to complete a partial edit with."""
    known = _source_job(body)
    views = {name: path for name, path in known.images if name in tasks.VIEWS} if known else {}
    if views:
        engine().settings.known_views[known.task_id] = views


def again(context, old):
    """A finished job's request, ready to send again (Retry)."""
    check_online()
    _check_source(old.body)
    return Prepared(old.body, preferences.make_client(context, old.service or None),
                    placement=old.import_options, note=old.note)


def submit(context, prepared):
    """Send a prepared task; returns its job at once."""
    image_transport = preferences.get(context).image_transport.lower()
    new = engine().submit(prepared.client, prepared.body, image_transport, prepared.workdir,
                          prepared.placement, prepared.note, prepared.then, prepared.copy_to)
    sync(context.window_manager)
    return new


def start_jobs(context, opts, service=None):
    """Send the task, or each of its variations; returns the jobs at once."""
    return [submit(context, each) for each in prepare(context, opts, service).each()]


def attach(context, task_id, placement=None):
    """Follow a task created elsewhere with the same key."""
    check_online()
    task_id = task_id.strip()
    if not task_id:
        raise tasks.ValidationError("task_id", "enter the id of a task.")
    new = engine().attach(preferences.make_client(context), task_id,
                          placement or {"placement": 'CURSOR'})
    sync(context.window_manager)
    return new


def check_connection(context):
    """Test Connection off the main thread: a Future of the service's answer."""
    check_online()
    return engine().call(preferences.make_client(context).check)


def refetch(context, job_id):
    """Fresh URLs and a new download for a finished task whose files are gone."""
    check_online()
    engine().refetch(preferences.make_client(context, job(job_id).service or None), job_id)
    mirror(context.window_manager, engine().jobs[job_id])


# Credits -------------------------------------------------------------------------------------

def refresh_balance(context=None):
    """Ask the chosen service for the credit balance on a thread; `poll_balance` (the
    timer) takes the answer. Returns the request's Future, or None when nothing was asked
    (no key, no online access, one in flight, or a service without the endpoint)."""
    global _balance_future
    if not bpy.app.online_access or (_balance_future and not _balance_future.done()):
        return None
    try:
        client = preferences.make_client(context)
    except errors.ModelStreamError:
        return None  # no key yet or a bad setting: the panel and the next task say so
    where = (client.service.name, client.base_url)
    if where in _no_balance:
        return None
    _balance_future = engine().call(lambda: (where, client.balance()))
    return _balance_future


def poll_balance():
    """Take the balance once it has come; True when an answer was taken (the panel
    redraws). A service without the endpoint, or a failed request, shows nothing and logs
    nothing: the balance is a convenience, never an error."""
    global _balance_future, balance, balance_service
    if _balance_future is None or not _balance_future.done():
        return False
    future, _balance_future = _balance_future, None
    try:
        (service, base_url), value = future.result()
    except errors.ModelStreamError:
        service, value = "", None
    else:
        if value is None:
            _no_balance.add((service, base_url))
    balance = "" if value is None else f"{value:,.2f}".rstrip("0").rstrip(".")
    balance_service = service
    return True


# Finish: wait, then land ---------------------------------------------------------------------

def wait(context, job, timeout=None):
    """Block until the job is final: background mode and scripts that ask to wait. A
    chain is followed to its last step, whose job is returned."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        engine().wait(job.id, None if deadline is None else max(0.0, deadline - time.monotonic()))
        mirror(context.window_manager, job)
        if job.state != READY or not job.then:
            return job
        job = step_on(context, job) or job


def step_on(context, job):
    """Send the next step of a chain whose step `job` is READY; returns its job, or None
    when the chain stops (`job` is then FAILED, saying why)."""
    note = _auto_import.pop(job.id, None)
    try:
        client = preferences.make_client(context, job.service or None)
        transport = preferences.get(context).image_transport.lower()
        nxt = engine().proceed(client, job.id, transport)
    except errors.ModelStreamError as e:
        if job.state == READY:
            engine().mark_failed(job.id, str(e))
        mirror(context.window_manager, job)
        return None
    if note is not None:
        _will_land(nxt.id, note)
    sync(context.window_manager)
    return nxt


def land(context, job, note="", push_undo=False, previews=True, opened=None):
    """The one way a READY job reaches the scene. Returns the error message, '' on
    success; a failed import marks the job FAILED and leaves the scene as it was.
    `previews` off: the model's preview images and the undo step are left to
    `_land_previews`, the next timer call. `opened`: its import helper's .blend, opened
    in an earlier call (`importer.open_prebuilt`)."""
    _auto_import.pop(job.id, None)
    try:
        with engine().quiet():
            added = importer.add_result(context, job, previews, opened)
    except importer.ImportFailed as e:
        where = job.output_path or ", ".join(path for _, path in job.images)
        message = f"{e} (task {job.task_id}; files kept at {where})"
        engine().mark_failed(job.id, message)
        mirror(context.window_manager, job)
        return message
    engine().mark_imported(job.id, added, f"{added}: {note}" if note else None)
    for handler in list(on_landed):
        handler(context, job)
    mirror(context.window_manager, job)
    if not previews:
        _previews_to_load.append((job, added if push_undo else None, opened))
    elif push_undo and not bpy.app.background:
        bpy.ops.ed.undo_push(message=f"ModelStream: {added}")
    return ""


def outcome(context, job, note="", push_undo=False):
    """A final job in the scene: lands it when READY. Returns '' when it is imported,
    else why not."""
    if job.state == READY and job.then:
        return "The chain of tasks has not finished: wait for its last step."
    if job.state == READY:
        return land(context, job, note, push_undo)
    if job.state == IMPORTED:
        return ""
    return job.error or job.message


def follow(context, job, note=""):
    """Land `job` when it is ready: at once headless (blocking), else from the timer.
    Returns the error message ('' when imported or still on its way)."""
    if bpy.app.background:
        return outcome(context, wait(context, job), note)
    _will_land(job.id, note)
    return ""


def _will_land(job_id, note, resumed=False):
    """`job_id` lands from the timer once READY. The first time in the GUI, the importer's
    modules load on a thread meanwhile (`importer.warm_up`): the first landing would
    otherwise load them in its timer call, about 40 ms. A job just asked for starts the
    import helper; a `resumed` one, minutes from done perhaps, only once it is near."""
    global _warm_up
    _auto_import[job_id] = note
    if _warm_up is None and _gui():
        _warm_up = engine().call(importer.warm_up, name="modelstream-warm-up")
    if not resumed:
        _start_helper()


def wait_all(context, timeout=None):
    """Headless: finish every unfinished job and land the ones this session follows."""
    if _resume_pending:
        resume()
    for pending in [j for j in engine().live() if not j.done]:
        last = wait(context, pending, timeout)
        if last.id in _auto_import:
            outcome(context, last, _auto_import[last.id])


def session_credits():
    """What this session's jobs consumed, as their services said (0 when none said)."""
    return sum(j.credits for j in engine().jobs.values()
               if j.credits > 0 and j.created >= SESSION_START)


def elapsed(item):
    end = item.finished or time.time()
    return max(0.0, end - item.created)


def set_poll_floor(seconds):
    """Dev and benchmarks: the shortest wait between polls far from a task's end; below a
    second it is also the average spacing the budget allows (core/polling.py)."""
    engine().poll_min = seconds
