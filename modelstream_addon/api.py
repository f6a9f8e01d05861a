"""Python API for scripts running inside Blender (GUI or `blender -b`).

    from bl_ext.user_default.modelstream_addon import api
    result = api.generate(prompt="a wooden chair", face_limit=8000)   # waits, imports
    print(result.task_id, result.object_name)

    pending = [api.submit(prompt=p) for p in ("a cup", "a lamp")]      # returns at once
    for result in api.wait(pending):                                  # later
        print(result.state, result.error or result.object_name)

Options are the operator's (and the API's) names: task_type, prompt, face_limit,
texture, pbr, image_path, view_front..., placement, size_mode, ... Unset ones take the
operator's defaults, never the panel's settings, so scripts are reproducible. The service
is MODELSTREAM_SERVICE's, else the preferences'; `service="tripo-v3"` (or "modelstream")
picks one for a call. Bad input
raises `ValidationError` (a `ModelStreamError`) before anything is sent. In the GUI,
`submit` never blocks: the result is imported when it arrives. Only `wait`/`generate`
block, and only when asked to.
"""

from dataclasses import dataclass

import bpy

from . import preferences, runtime
from .errors import ModelStreamError, TaskFailedError
from .job import IMPORTED
from .properties import OPTION_NAMES
from .tasks import ValidationError

__all__ = ["Result", "generate", "submit", "wait", "import_task", "status", "save_to_library",
           "ModelStreamError", "ValidationError", "TaskFailedError"]


@dataclass
class Result:
    """What a job came to. `state` is IMPORTED on success; `error` says why not."""

    job_id: str
    task_id: str
    task_type: str
    state: str
    error: str
    object_name: str
    images: list
    output_path: str

    @property
    def ok(self):
        return self.state == IMPORTED


def _result(job):
    return Result(job.id, job.task_id, job.body.get("type", ""), job.state, job.error,
                  job.imported_as, [name for name, _ in job.images], job.output_path)


def _defaults():
    props = bpy.ops.modelstream.generate.get_rna_type().properties
    return {name: props[name].default for name in OPTION_NAMES}


def submit(task_type="text_to_model", *, context=None, service=None, **options):
    """Start a task and return its job id at once; the result is imported when ready
    (in the GUI by the add-on's timer; headless when you call `wait`)."""
    context = context or bpy.context
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise ValidationError(unknown[0], f"unknown option; known: {', '.join(OPTION_NAMES)}")
    job = runtime.start_job(context, {**_defaults(), **options, "task_type": task_type},
                            service)
    if not bpy.app.background:
        runtime.follow(context, job)
    return job.id


def wait(job_ids, *, timeout=None, context=None):
    """Block until the jobs are done and imported; returns a Result per job, in order."""
    context = context or bpy.context
    runtime.wait_history()  # a job id from an earlier session is in the history
    single = isinstance(job_ids, str)
    results = []
    for job_id in [job_ids] if single else list(job_ids):
        job = runtime.job(job_id)
        if job is None:
            raise ValidationError("job_id", f"no job {job_id!r} in this session's list.")
        runtime.outcome(context, runtime.wait(context, job, timeout))
        results.append(_result(job))
    return results[0] if single else results


def generate(task_type="text_to_model", *, timeout=None, context=None, service=None,
             **options):
    """Submit, wait and import; returns the Result, or raises TaskFailedError."""
    result = wait(submit(task_type, context=context, service=service, **options),
                  timeout=timeout, context=context)
    if not result.ok:
        raise TaskFailedError(result.error or f"The job ended {result.state.lower()}.",
                              task_id=result.task_id)
    return result


def import_task(task_id, *, wait_for_it=True, timeout=None, context=None):
    """Import a task started elsewhere with the same key, by its id."""
    context = context or bpy.context
    job = runtime.attach(context, task_id)
    if not wait_for_it:
        if not bpy.app.background:
            runtime.follow(context, job, "imported by task id")
        return job.id
    return wait(job.id, timeout=timeout, context=context)


def status(task_id, *, context=None):
    """The service's current data for a task (status, progress, output URLs...)."""
    runtime.check_online()
    return preferences.make_client(context or bpy.context).get_task(task_id.strip())


def save_to_library(task_id="", *, object_name="", context=None):
    """Save an imported result (by task id or object name; default the selection) to the
    ModelStream asset library; returns the .blend's path."""
    from . import library

    context = context or bpy.context
    root = library.find_root(context, task_id.strip(), object_name)
    if root is None:
        raise ValidationError("task_id", "no generated model with that task id or name in "
                              "this scene.")
    return library.save(context, root)
