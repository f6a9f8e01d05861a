"""The add-on's one job engine, and its mirror on the WindowManager for the UI.

Only the main thread calls in here: it drains the engine's queue and copies plain job
data into `WindowManager.modelstream_jobs`, which panels draw. A persistent timer keeps
draining in the GUI, so jobs resumed after a restart, or started by scripts, still finish
and import; headless, `wait()` blocks on the same engine instead.
"""

import time

import bpy

from . import engine as engine_mod
from . import errors, importer, inputs, preferences, tasks

TICK_SECONDS = 0.2
RESUMED_NOTE = "imported after Blender restarted"
_engine = None
_auto_import = set()
_notes = {}
_resume_pending = False
_resume_problem = ""


def engine():
    global _engine
    if _engine is None:
        prefs = preferences.get()
        downloads = bpy.utils.extension_path_user(__package__, path="downloads", create=True)
        history = bpy.utils.extension_path_user(__package__, create=True)
        _engine = engine_mod.Engine(
            downloads, history_path=f"{history}/history.json",
            max_concurrent=prefs.max_concurrent, max_history=prefs.max_history)
    return _engine


def start():
    """On enable: load the history, resume unfinished tasks, and tick in the GUI."""
    resume()
    if not bpy.app.background:
        bpy.app.timers.register(_timer, first_interval=TICK_SECONDS, persistent=True)
    bpy.app.handlers.load_post.append(_after_load)
    if bpy.context.window_manager is not None:
        sync(bpy.context.window_manager)


def resume():
    """Follow again the tasks Blender stopped waiting for; without online access or a key
    they stay in the history, and the timer (or `wait_all`) tries again later."""
    global _resume_pending, _resume_problem
    _resume_pending = bool(engine().unfinished())
    if not _resume_pending or not bpy.app.online_access:
        return
    try:
        client = preferences.make_client()
    except errors.ModelStreamError as e:
        if str(e) != _resume_problem:
            _resume_problem = str(e)
            print(f"ModelStream: unfinished tasks wait until this is fixed: {e}")
        return
    _auto_import.update(job.id for job in engine().resume(client))
    _resume_pending = False


@bpy.app.handlers.persistent
def _after_load(_filepath):
    """A new file brings a new job list to draw: refill it from the engine."""
    if bpy.context.window_manager is not None:
        sync(bpy.context.window_manager)


def shutdown():
    """Stop polling (the add-on is being disabled); history and files stay on disk."""
    global _engine
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    if _after_load in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_after_load)
    if _engine is not None:
        _engine.shutdown()
        _engine = None


def _timer():
    if _resume_pending and bpy.app.online_access:
        resume()
    wm = bpy.context.window_manager
    if wm is not None:
        tick(wm)
    return TICK_SECONDS


def _item(wm, job_id):
    return next((i for i in wm.modelstream_jobs if i.job_id == job_id), None)


def mirror(wm, job):
    item = _item(wm, job.id)
    if item is None:
        item = wm.modelstream_jobs.add()
        item.job_id = job.id
    item.task_type = job.body.get("type", "")
    item.label = (job.body.get("prompt") or item.task_type.replace("_", " "))[:200]
    item.task_id = job.task_id
    item.transport = job.transport
    item.state = job.state
    item.message = job.message
    item.error = job.error
    item.progress = job.progress / 100.0
    item.object_name = job.imported_as
    item.created = job.created
    item.finished = job.finished
    item.queue_position = engine().queue_position(job.id)


def sync(wm):
    """Make the UI list match the engine (after load, remove, clear)."""
    jobs = engine().jobs
    for index in reversed(range(len(wm.modelstream_jobs))):
        if wm.modelstream_jobs[index].job_id not in jobs:
            wm.modelstream_jobs.remove(index)
    for job in jobs.values():
        mirror(wm, job)


def _redraw(wm):
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type == 'VIEW_3D':
                area.tag_redraw()


def tick(wm):
    """Apply worker results. Never blocks; redraws only when something changed."""
    changed = engine().tick()
    for job in changed:
        mirror(wm, job)
        if job.state == engine_mod.READY and job.id in _auto_import:
            import_result(bpy.context, job, _notes.pop(job.id, RESUMED_NOTE), push_undo=True)
    if changed or any(not j.done for j in engine().jobs.values()):
        _redraw(wm)
    return changed


def import_options(context, opts):
    """Where the result goes, fixed at submit: the selection may change while it runs."""
    options = {name: opts.get(name, default) for name, default in (
        ("placement", 'CURSOR'), ("size_mode", 'KEEP'), ("target_size", 1.0),
        ("shading", 'KEEP'))}
    if options["placement"] == 'REPLACE':
        active = context.view_layer.objects.active
        if active is None:
            raise tasks.ValidationError("placement", "select the object to replace.")
        options["replace"] = active.name
    elif options["placement"] == 'CURSOR':
        options["placement"] = 'AT'
        options["location"] = list(context.scene.cursor.location)
    return options


def start_job(context, opts):
    """Validate, capture or convert the inputs, and submit: everything before any
    credit is spent. Raises ModelStreamError (ValidationError, ConfigError) on bad input."""
    placement = import_options(context, opts)
    opts, workdir = inputs.gather(context, opts)
    try:
        body = tasks.build_task(opts)
        client = preferences.make_client(context)
    except errors.ModelStreamError:
        inputs.discard(workdir)
        raise
    return submit(context, client, body, workdir, placement)


def submit(context, client, body, owned="", import_options=None):
    """Start a job with the preferences' transport, limits and concurrency."""
    prefs = preferences.get(context)
    eng = engine()
    eng.max_download = prefs.max_download_mb * 1024 * 1024
    eng.max_concurrent = prefs.max_concurrent
    job = eng.submit(client, body, prefs.image_transport.lower(), owned, import_options)
    sync(context.window_manager)
    return job


def attach(context, client, task_id):
    prefs = preferences.get(context)
    engine().max_download = prefs.max_download_mb * 1024 * 1024
    job = engine().attach(client, task_id, {"placement": 'CURSOR'})
    sync(context.window_manager)
    return job


def wait(context, job, timeout=None):
    """Block until the job is final: background mode and scripts that ask to wait."""
    engine().wait(job.id, timeout)
    mirror(context.window_manager, job)
    return job


def cancel(context, job_id):
    engine().cancel(job_id)
    job = engine().jobs.get(job_id)
    if job is not None:
        mirror(context.window_manager, job)


def finish(context, job, *, error="", object_name="", note=""):
    """Record the import's outcome on the job and its mirror."""
    if error:
        engine().mark_failed(job.id, error)
    else:
        engine().mark_imported(job.id, object_name,
                               f"{object_name}: {note}" if note else None)
    mirror(context.window_manager, job)


def import_result(context, job, note="", push_undo=False):
    """Import a READY job outside its operator (resumed, import again, by id).
    Returns the error message, or '' on success."""
    _auto_import.discard(job.id)
    try:
        added = importer.add_result(context, job)
    except importer.ImportFailed as e:
        finish(context, job, error=f"{e} (task {job.task_id})")
        return str(e)
    finish(context, job, object_name=added, note=note)
    if push_undo and not bpy.app.background:
        bpy.ops.ed.undo_push(message=f"ModelStream: {added}")
    return ""


def follow(context, job, note=""):
    """Import `job` when it is ready: at once headless (blocking), else from the timer."""
    if bpy.app.background:
        wait(context, job)
        if job.state != engine_mod.READY:
            return job.error or job.message
        return import_result(context, job, note)
    _auto_import.add(job.id)
    _notes[job.id] = note
    return ""


def wait_all(context, timeout=None):
    """Headless: finish every unfinished job and import the resumed ones."""
    if _resume_pending:
        resume()
    for job in list(engine().jobs.values()):
        if not job.done:
            wait(context, job, timeout)
            if job.state == engine_mod.READY and job.id in _auto_import:
                import_result(context, job, RESUMED_NOTE)


def elapsed(item):
    end = item.finished or time.time()
    return max(0.0, end - item.created)
