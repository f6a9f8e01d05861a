"""The add-on's one job engine, and its mirror on the WindowManager for the UI.

Only the main thread calls in here: it drains the engine's queue and copies plain job
data into `WindowManager.modelstream_jobs`, which panels draw.
"""

import bpy

from . import engine as engine_mod

_engine = None


def engine():
    global _engine
    if _engine is None:
        downloads = bpy.utils.extension_path_user(__package__, path="downloads", create=True)
        _engine = engine_mod.Engine(downloads)
    return _engine


def shutdown():
    """Stop polling (the add-on is being disabled); downloaded files stay on disk."""
    global _engine
    if _engine is not None:
        _engine.shutdown()
        _engine = None


def _mirror(wm, job):
    items = wm.modelstream_jobs
    item = next((i for i in items if i.job_id == job.id), None)
    if item is None:
        item = items.add()
        item.job_id = job.id
        item.task_type = job.body.get("type", "")
        item.label = job.body.get("prompt", "")[:200]
    item.task_id = job.task_id
    item.transport = job.transport
    item.state = job.state
    item.message = job.message
    item.error = job.error
    item.progress = job.progress / 100.0


def _redraw(wm):
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type == 'VIEW_3D':
                area.tag_redraw()


def submit(context, client, body, transport="auto", max_download_mb=512):
    engine().max_download = max_download_mb * 1024 * 1024
    job = engine().submit(client, body, transport)
    _mirror(context.window_manager, job)
    return job


def tick(context):
    """Apply worker results; called from a modal timer. Never blocks."""
    wm = context.window_manager
    for job in engine().tick():
        _mirror(wm, job)
    _redraw(wm)


def wait(context, job):
    """Block until the job is final: background mode only."""
    engine().wait(job.id)
    _mirror(context.window_manager, job)
    return job


def cancel(context, job_id):
    engine().cancel(job_id)
    job = engine().jobs.get(job_id)
    if job is not None:
        _mirror(context.window_manager, job)


def finish(context, job, *, error="", object_name=""):
    """Record the import's outcome on the job and its mirror."""
    if error:
        engine().mark_failed(job.id, error)
    else:
        engine().mark_imported(job.id, object_name)
    _mirror(context.window_manager, job)
    item = next(i for i in context.window_manager.modelstream_jobs if i.job_id == job.id)
    item.object_name = object_name
