"""Operators. Generate is modal in the GUI and synchronous in background mode.

Both paths run the same engine: the GUI drains it from a window-manager timer, background
mode blocks on it. Everything is validated before a request, so bad input costs nothing and
leaves the scene as it was.
"""

import concurrent.futures
import os

import bpy
from bpy.props import EnumProperty, StringProperty

from ..core import errors, model_tasks, tasks
from ..core.job import (
    CANCELLED,
    DOWNLOADING,
    FAILED,
    IMPORTED,
    QUEUED,
    READY,
    RUNNING,
    SUBMITTING,
    WAITING,
)
from . import importer, inputs, library, preferences, runtime
from .operator_base import caller_options, fail, online_poll
from .properties import OPTION_NAMES, OperatorOptions


def modal_step(event_type, event_value, our_timer, job):
    """What Generate's modal handler does with one event: 'CANCEL' (Esc: stop waiting),
    'WAIT' (let the event through), 'GONE' (the job was removed) or 'FINISH' (final)."""
    if event_type == 'ESC' and event_value == 'PRESS':
        return 'CANCEL'
    if event_type != 'TIMER' or not our_timer:
        return 'WAIT'
    if job is None:
        return 'GONE'
    return 'FINISH' if job.done else 'WAIT'


class MODELSTREAM_OT_generate(bpy.types.Operator, OperatorOptions):
    """Generate a 3D model with ModelStream and add it at the 3D cursor"""

    bl_idname = "modelstream.generate"
    bl_label = "Generate Model"
    # UNDO without REGISTER: the redo panel would re-run execute() and pay for a new task.
    bl_options = {'UNDO'}

    @classmethod
    def poll(cls, context):
        return online_poll(cls)

    def _options(self, context):
        return caller_options(self, context.scene.modelstream, OPTION_NAMES)

    def _finish(self, context, job):
        if job.state == CANCELLED:
            self.report({'WARNING'}, job.message)
            return {'CANCELLED'}
        problem = runtime.outcome(context, job)
        if problem:
            return fail(self, context, problem)
        self.report({'INFO'}, f"ModelStream: added {job.imported_as} (task {job.task_id})")
        if job.id in library.warnings:
            self.report({'WARNING'}, library.warnings.pop(job.id))
        return {'FINISHED'}

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        context.window_manager.modelstream_error = ""
        try:
            jobs = runtime.start_jobs(context, self._options(context))
        except errors.ModelStreamError as e:
            return fail(self, context, str(e))
        if len(jobs) > 1:  # each variation lands when it arrives, one undo step each
            for job in jobs:
                runtime.follow(context, job)
            self.report({'INFO'}, f"ModelStream: {len(jobs)} variations started")
            return {'FINISHED'}
        self._job_id = jobs[0].id
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        job = runtime.job(self._job_id)  # the add-on's timer drains the engine
        step = modal_step(event.type, event.value, getattr(event, "timer", None) is self._timer,
                          job)
        if step == 'CANCEL':
            runtime.cancel(context, self._job_id)
            return {'RUNNING_MODAL'}
        if step == 'WAIT':
            return {'PASS_THROUGH'}
        context.window_manager.event_timer_remove(self._timer)
        return {'CANCELLED'} if step == 'GONE' else self._finish(context, job)

    def execute(self, context):
        """Blocking: background mode, and scripts that call the operator directly."""
        context.window_manager.modelstream_error = ""
        try:
            jobs = runtime.start_jobs(context, self._options(context))
        except errors.ModelStreamError as e:
            return fail(self, context, str(e))
        outcomes = [self._finish(context, runtime.wait(context, job)) for job in jobs]
        return {'FINISHED'} if {'FINISHED'} in outcomes else outcomes[0]


class MODELSTREAM_OT_capture(bpy.types.Operator):
    """Capture the scene as the task's input images, to look at them before generating"""

    bl_idname = "modelstream.capture"
    bl_label = "Capture Inputs"

    @classmethod
    def poll(cls, context):
        settings = context.scene.modelstream
        if inputs.capture_wanted(settings):
            return True
        cls.poll_message_set("Choose Viewport or Render as the image source, or Orbit "
                             "Capture for multiview")
        return False

    def execute(self, context):
        settings = context.scene.modelstream
        opts = {name: getattr(settings, name) for name in OPTION_NAMES}
        workdir = inputs.new_workdir("captures")
        try:
            captured = inputs.capture_sources(context, opts, workdir, tasks.image_fields(opts))
        except errors.ModelStreamError as e:
            inputs.discard(workdir)
            return fail(self, context, str(e))
        inputs.keep_only(workdir)
        context.window_manager.modelstream_error = ""
        if settings.task_type == "multiview_to_model":
            for view in tasks.VIEWS:
                setattr(settings, f"view_{view}", captured[f"view_{view}"])
            settings.multiview_source = 'FILES'
        else:
            settings.image_path = captured["image_path"]
            settings.image_source = 'FILE'
        self.report({'INFO'}, "Captured: check the previews, then Generate")
        return {'FINISHED'}


def _job(context, job_id):
    """The job named, else the one active in the jobs list."""
    if not job_id:
        wm = context.window_manager
        if 0 <= wm.modelstream_job_index < len(wm.modelstream_jobs):
            job_id = wm.modelstream_jobs[wm.modelstream_job_index].job_id
    return runtime.job(job_id)


class JobOperator:
    """Acts on `job_id`, or on the job active in the panel's list."""

    job_id: StringProperty(name="Job", options={'SKIP_SAVE', 'HIDDEN'})
    needs = ()

    @classmethod
    def poll(cls, context):
        job = _job(context, "")
        if job is None:
            cls.poll_message_set("Select a job in the ModelStream jobs list")
            return False
        if cls.needs and job.state not in cls.needs:
            cls.poll_message_set(f"The job is {job.state.lower()}")
            return False
        return True

    def _follow(self, context, job, note=""):
        problem = runtime.follow(context, job, note)
        return fail(self, context, problem) if problem else {'FINISHED'}


class MODELSTREAM_OT_cancel(JobOperator, bpy.types.Operator):
    """Stop waiting for a job (the service has no cancel endpoint: it may still be charged)"""

    bl_idname = "modelstream.cancel"
    bl_label = "Cancel Job"
    needs = (WAITING, SUBMITTING, QUEUED, RUNNING, DOWNLOADING)

    def execute(self, context):
        job = _job(context, self.job_id)
        if job is None:
            return {'CANCELLED'}
        runtime.cancel(context, job.id)
        return {'FINISHED'}


class MODELSTREAM_OT_retry_job(JobOperator, bpy.types.Operator):
    """Send the job's request again as a new task (charged again)"""

    bl_idname = "modelstream.retry_job"
    bl_label = "Retry Job"
    needs = (FAILED, CANCELLED)

    @classmethod
    def poll(cls, context):
        return online_poll(cls) and super().poll(context)

    def execute(self, context):
        try:
            new = runtime.submit(context, runtime.again(context, _job(context, self.job_id)))
        except errors.ModelStreamError as e:
            return fail(self, context, str(e))
        return self._follow(context, new)


class MODELSTREAM_OT_import_job(JobOperator, bpy.types.Operator):
    """Import the job's result again, from the cached file or fetched afresh"""

    bl_idname = "modelstream.import_job"
    bl_label = "Import Result"
    bl_options = {'UNDO'}
    needs = (READY, IMPORTED)

    def execute(self, context):
        job = _job(context, self.job_id)
        if all(os.path.exists(path) for path in job.files() if path != job.owned):
            problem = runtime.land(context, job)
            return fail(self, context, problem) if problem else {'FINISHED'}
        try:
            runtime.refetch(context, job.id)
        except errors.ModelStreamError as e:
            return fail(self, context, str(e))
        return self._follow(context, job, "fetched again")


class MODELSTREAM_OT_copy_task_id(JobOperator, bpy.types.Operator):
    """Copy the job's task id to the clipboard"""

    bl_idname = "modelstream.copy_task_id"
    bl_label = "Copy Task ID"

    def execute(self, context):
        job = _job(context, self.job_id)
        if not job.task_id:
            return fail(self, context, "This job has no task id yet.")
        context.window_manager.clipboard = job.task_id
        self.report({'INFO'}, f"Copied {job.task_id}")
        return {'FINISHED'}


class MODELSTREAM_OT_remove_job(JobOperator, bpy.types.Operator):
    """Remove the job from the list and delete its cached files (stops waiting first)"""

    bl_idname = "modelstream.remove_job"
    bl_label = "Remove Job"

    def execute(self, context):
        runtime.remove(context, _job(context, self.job_id).id)
        return {'FINISHED'}


class MODELSTREAM_OT_clear_finished(bpy.types.Operator):
    """Remove every finished job from the list, with its cached files"""

    bl_idname = "modelstream.clear_finished"
    bl_label = "Clear Finished Jobs"

    def execute(self, context):
        runtime.clear_finished(context)
        return {'FINISHED'}


class MODELSTREAM_OT_import_task(bpy.types.Operator):
    """Import the result of a task by its id (tasks started elsewhere with the same key)"""

    bl_idname = "modelstream.import_task"
    bl_label = "Import Task by ID"
    bl_options = {'UNDO'}

    task_id: StringProperty(name="Task ID", options={'SKIP_SAVE'})

    @classmethod
    def poll(cls, context):
        return online_poll(cls)

    def invoke(self, context, event):
        if bpy.app.background or self.task_id:
            return self.execute(context)
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context):
        try:
            job = runtime.attach(context, self.task_id)
        except errors.ModelStreamError as e:
            return fail(self, context, str(e))
        problem = runtime.follow(context, job, "imported by task id")
        return fail(self, context, problem) if problem else {'FINISHED'}


class MODELSTREAM_OT_use_result(JobOperator, bpy.types.Operator):
    """Use a finished job's result as the input of the next step"""

    bl_idname = "modelstream.use_result"
    bl_label = "Use Result"
    bl_options = {'UNDO'}
    needs = (READY, IMPORTED)

    use: EnumProperty(name="Use", options={'SKIP_SAVE'}, items=[
        ('REFINE', "Refine Model", "Set up a refine_model task from this model"),
        ('EDIT_VIEWS', "Edit Views", "Set up an edit_multiview_image task for these views"),
        ('MAKE_MODEL', "Make Model", "Set up a multiview_to_model task from these views"),
        ('IMAGE_INPUT', "Use as Image Input", "Set up an image_to_model task from this image"),
        ('REFERENCE', "Add as Reference", "Add the image to the scene as a reference image")])

    def execute(self, context):
        job = _job(context, self.job_id)
        settings = context.scene.modelstream
        kind = model_tasks.output_kind(job.body.get("type", ""))
        wanted = {'REFINE': "model", 'EDIT_VIEWS': "multiview", 'MAKE_MODEL': "multiview",
                  'IMAGE_INPUT': "image", 'REFERENCE': "image"}[self.use]
        if kind != wanted and not (wanted == "image" and kind == "multiview"):
            return fail(self, context, f"A {kind} result cannot be used for this.")
        if self.use == 'REFINE':
            settings.task_type, settings.draft_model_task_id = "refine_model", job.task_id
        elif self.use in ('EDIT_VIEWS', 'MAKE_MODEL'):
            settings.task_type = ("edit_multiview_image" if self.use == 'EDIT_VIEWS'
                                  else "multiview_to_model")
            settings.original_task_id = job.task_id
        elif self.use == 'IMAGE_INPUT':
            settings.task_type, settings.image_source = "image_to_model", 'FILE'
            settings.image_path = job.images[0][1]
        else:
            importer.add_reference(context, job.images[0][1], job.task_id)
        self.report({'INFO'}, f"Ready: {settings.task_type.replace('_', ' ')} from task "
                    f"{job.task_id}")
        return {'FINISHED'}


class MODELSTREAM_OT_refine_selected(bpy.types.Operator):
    """Refine the selected generated model (refine_model with the task id on its Empty)"""

    bl_idname = "modelstream.refine_selected"
    bl_label = "Refine Selected Model"

    @staticmethod
    def _task_id(context):
        obj = context.active_object
        while obj is not None and "modelstream_task_id" not in obj:
            obj = obj.parent
        if obj is None or obj.get("modelstream_type") not in ("text_to_model",
                                                              "image_to_model",
                                                              "multiview_to_model"):
            return ""
        return obj["modelstream_task_id"]

    @classmethod
    def poll(cls, context):
        if not cls._task_id(context):
            cls.poll_message_set("Select a model generated by ModelStream (not refined yet)")
            return False
        retired = preferences.shown_service(context).unsupported("refine_model")
        if retired:
            cls.poll_message_set(retired)
            return False
        return online_poll(cls)

    def invoke(self, context, event):
        return bpy.ops.modelstream.generate(
            'INVOKE_DEFAULT', task_type="refine_model",
            draft_model_task_id=self._task_id(context))

    def execute(self, context):
        return bpy.ops.modelstream.generate(task_type="refine_model",
                                            draft_model_task_id=self._task_id(context))


class MODELSTREAM_OT_test_connection(bpy.types.Operator):
    """Check the base URL and API key without creating a task (nothing is charged)"""

    bl_idname = "modelstream.test_connection"
    bl_label = "Test Connection"

    @classmethod
    def poll(cls, context):
        return online_poll(cls)

    def _report(self, context, future):
        try:
            text = future.result()
        except errors.ModelStreamError as e:
            return fail(self, context, f"Failed: {e}", "modelstream_connection_report")
        context.window_manager.modelstream_connection_report = text
        self.report({'INFO'}, text)
        return {'FINISHED'}

    def _submit(self, context):
        context.window_manager.modelstream_connection_report = "Testing..."
        try:
            return runtime.check_connection(context)
        except errors.ModelStreamError as e:
            future = concurrent.futures.Future()
            future.set_exception(e)
            return future

    def execute(self, context):
        """Blocking: background mode and scripts."""
        return self._report(context, self._submit(context))

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        self._future = self._submit(context)
        if self._future.done():
            return self._report(context, self._future)
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        if event.type != 'TIMER' or not self._future.done():
            return {'PASS_THROUGH'}
        context.window_manager.event_timer_remove(self._timer)
        for area in context.screen.areas:
            area.tag_redraw()
        return self._report(context, self._future)


CLASSES = (MODELSTREAM_OT_generate, MODELSTREAM_OT_capture, MODELSTREAM_OT_cancel,
           MODELSTREAM_OT_retry_job, MODELSTREAM_OT_import_job, MODELSTREAM_OT_copy_task_id,
           MODELSTREAM_OT_remove_job, MODELSTREAM_OT_clear_finished,
           MODELSTREAM_OT_import_task, MODELSTREAM_OT_use_result,
           MODELSTREAM_OT_refine_selected, MODELSTREAM_OT_test_connection)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
