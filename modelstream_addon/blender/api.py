"""Python API for scripts running inside Blender (GUI or `blender -b`).

    from bl_ext.user_default.modelstream_addon.blender import api
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

from ..core import post_tasks
from ..core.errors import ModelStreamError, TaskFailedError
from ..core.job import IMPORTED
from ..core.tasks import ValidationError
from . import game_ready, library, own_mesh, preferences, runtime
from .game_ready import GAME_OPTION_NAMES
from .importer import result_root
from .own_mesh import MESH_OPTION_NAMES
from .properties import OPTION_NAMES

__all__ = ["Result", "generate", "submit", "wait", "import_task", "status", "save_to_library",
           "texture_selected", "rig", "animate", "split_parts", "complete_parts", "make_lods",
           "stylize", "export_model", "set_size", "credits_used",
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


def _with_defaults(operator, names, options):
    """`options` over the operator's defaults (never the panel's); an unknown name is
    refused."""
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ValidationError(unknown[0], f"unknown option; known: {', '.join(names)}")
    props = operator.get_rna_type().properties
    defaults = {name: set(props[name].default_flag) if props[name].is_enum_flag
                else props[name].default for name in names}
    return {**defaults, **options}


def submit(task_type="text_to_model", *, context=None, service=None, **options):
    """Start a task and return its job id at once; the result is imported when ready
    (in the GUI by the add-on's timer; headless when you call `wait`). With
    `variations=N` (2-8): a list of N job ids, each task with its own seed."""
    context = context or bpy.context
    options = _with_defaults(bpy.ops.modelstream.generate, OPTION_NAMES, options)
    jobs = runtime.start_jobs(context, {**options, "task_type": task_type},
                              service)
    if not bpy.app.background:
        for job in jobs:
            runtime.follow(context, job)
    return jobs[0].id if len(jobs) == 1 else [job.id for job in jobs]


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
        job = runtime.wait(context, job, timeout)  # a chain's last step
        runtime.outcome(context, job)
        results.append(_result(job))
    return results[0] if single else results


def generate(task_type="text_to_model", *, timeout=None, context=None, service=None,
             **options):
    """Submit, wait and import; returns the Result (a list of them for variations), or
    raises TaskFailedError for the first that failed once all are done."""
    job_ids = submit(task_type, context=context, service=service, **options)
    results = wait(job_ids, timeout=timeout, context=context)
    for result in [results] if isinstance(results, Result) else results:
        if not result.ok:
            raise TaskFailedError(result.error or f"The job ended {result.state.lower()}.",
                                  task_id=result.task_id)
    return results


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
    context = context or bpy.context
    root = library.find_root(context, task_id.strip(), object_name)
    if root is None:
        raise ValidationError("task_id", "no generated model with that task id or name in "
                              "this scene.")
    return library.save(context, root)


# Your own mesh (Tripo API v3) ----------------------------------------------------------------

def _mesh_options(options):
    return _with_defaults(bpy.ops.modelstream.texture_selected, MESH_OPTION_NAMES, options)


def _objects(context, names):
    if names is None:
        return None
    found = [context.scene.objects.get(name) for name in names]
    if None in found:
        raise ValidationError("objects", f"no object {names[found.index(None)]!r} in the scene.")
    return found


def _root(context, object_name):
    if not object_name:
        return own_mesh.generated_root(context)
    root = result_root(context.scene.objects.get(object_name))
    if root is None:
        raise ValidationError("object_name", f"{object_name!r} is not a generated model in "
                              "this scene.")
    return root


def _chain(context, job, wait_for_it, timeout):
    if not wait_for_it:
        if not bpy.app.background:
            runtime.follow(context, job)
        return job.id
    result = wait(job.id, timeout=timeout, context=context)
    if not result.ok:
        raise TaskFailedError(result.error or f"The job ended {result.state.lower()}.",
                              task_id=result.task_id)
    return result


def texture_selected(objects=None, *, wait_for_it=True, timeout=None, context=None,
                     service=None, **options):
    """Texture meshes (object names; default the selection) with a `prompt` and/or a
    reference `image_path`; the result lands beside them (`placement`), which are never
    changed. Returns the Result (the first job's id with wait_for_it=False)."""
    context = context or bpy.context
    job = own_mesh.texture_selected(context, _mesh_options(options), service,
                                    _objects(context, objects))
    return _chain(context, job, wait_for_it, timeout)


def rig(object_name="", *, objects=None, wait_for_it=True, timeout=None, context=None,
        service=None, **options):
    """Rig a generated model (by object name; default the active one's), or meshes given
    by `objects` (imported first): a rig check first, then the rig with `spec`; with
    `animations` (1-5 presets, e.g. {"preset:walk"}) animated too."""
    context = context or bpy.context
    root = None if objects is not None else _root(context, object_name)
    job = own_mesh.rig(context, _mesh_options(options), root, service,
                       _objects(context, objects))
    return _chain(context, job, wait_for_it, timeout)


def animate(object_name="", *, animations=(), wait_for_it=True, timeout=None, context=None,
            service=None, **options):
    """Retarget preset animations onto a model made with `rig` (by object name; default
    the active one's): one Armature, an Action per preset."""
    context = context or bpy.context
    job = own_mesh.animate(context, _mesh_options({**options, "animations": set(animations)}),
                           _root(context, object_name), service)
    return _chain(context, job, wait_for_it, timeout)


# Game Ready ----------------------------------------------------------------------------

def _game_options(options):
    return _with_defaults(bpy.ops.modelstream.split_parts, GAME_OPTION_NAMES, options)


def _chains(context, jobs, wait_for_it, timeout):
    """One job's Result (its id with wait_for_it=False), or a list of them."""
    if isinstance(jobs, list):
        return [_chain(context, job, wait_for_it, timeout) for job in jobs]
    return _chain(context, jobs, wait_for_it, timeout)


def split_parts(object_name="", *, objects=None, wait_for_it=True, timeout=None,
                context=None, service=None, **options):
    """Split a generated model (by object name; default the active one's), or meshes given
    by `objects` (imported first), into named parts that land beside it (Tripo API v3)."""
    context = context or bpy.context
    root = None if objects is not None else _root(context, object_name)
    job = game_ready.split_parts(context, _game_options(options), root, service,
                                 _objects(context, objects))
    return _chain(context, job, wait_for_it, timeout)


def complete_parts(object_name="", *, parts=None, wait_for_it=True, timeout=None,
                   context=None, service=None, **options):
    """Complete `parts` (names; default the ticked ones) of a model made by split_parts."""
    context = context or bpy.context
    job = game_ready.complete_parts(context, _game_options(options),
                                    _root(context, object_name), parts, service)
    return _chain(context, job, wait_for_it, timeout)


def make_lods(object_name="", *, limits=post_tasks.DEFAULT_LODS, quad=False,
              wait_for_it=True, timeout=None, context=None, service=None, **options):
    """Smart-low-poly LODs of a generated model, one per face limit (LOD0 first), named
    <name>_LOD0... in one collection; a Result per LOD (Tripo API v3)."""
    context = context or bpy.context
    opts = _game_options({**options, "lod_limits": ", ".join(map(str, limits))
                          if not isinstance(limits, str) else limits, "lod_quad": quad})
    jobs = game_ready.make_lods(context, opts, _root(context, object_name), service)
    return _chains(context, jobs, wait_for_it, timeout)


def stylize(object_name="", *, style="voxel", wait_for_it=True, timeout=None, context=None,
            service=None, **options):
    """A lego, voxel or voronoi version of a generated model, beside it (the ModelStream
    service: Tripo API v3 retired stylize)."""
    context = context or bpy.context
    job = game_ready.stylize(context, _game_options({**options, "style": style}),
                             _root(context, object_name), service)
    return _chain(context, job, wait_for_it, timeout)


def export_model(object_name="", *, format="FBX", path="", objects=None, wait_for_it=True,
                 timeout=None, context=None, service=None, **options):
    """Convert a generated model (or meshes given by `objects`, imported first) into a file
    for an engine; kept in the job's folder (`Result.output_path`) and copied to `path`
    when given (Tripo API v3)."""
    context = context or bpy.context
    root = None if objects is not None else _root(context, object_name)
    opts = _game_options({**options, "export_format": format, "export_path": path})
    job = game_ready.export_model(context, opts, root, service, _objects(context, objects))
    return _chain(context, job, wait_for_it, timeout)


def set_size(object_name="", *, height=1.8, origin_at_base=True, context=None):
    """Make a generated model `height` metres tall, resting on its origin (no request)."""
    context = context or bpy.context
    game_ready.set_size(context, _root(context, object_name), height, origin_at_base)


def credits_used():
    """Credits this session's jobs consumed, as their services said (0 when none said)."""
    return runtime.session_credits()
