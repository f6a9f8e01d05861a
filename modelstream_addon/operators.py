"""Operators. Generate is modal in the GUI and synchronous in background mode.

Both paths run the same engine: the GUI drains it from a window-manager timer, background
mode blocks on it. Everything is validated before a request, so bad input costs nothing and
leaves the scene as it was.
"""

import concurrent.futures
import sys

import bpy
from bpy.props import StringProperty

from . import errors, importer, inputs, preferences, runtime, tasks
from .engine import CANCELLED, READY
from .properties import OPTION_NAMES, OperatorOptions

OFFLINE = ("Online access is off: enable Edit > Preferences > System > Network > "
           "Allow Online Access (or start Blender with --online-mode)")


def online_poll(cls):
    if not bpy.app.online_access:
        cls.poll_message_set(OFFLINE)
        return False
    return True


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
        """Properties a caller set win; the rest come from the panel's scene settings."""
        settings = context.scene.modelstream
        return {name: getattr(self if self.properties.is_property_set(name) else settings,
                              name) for name in OPTION_NAMES}

    def _start(self, context):
        opts, workdir = inputs.gather(context, self._options(context))
        try:
            body = tasks.build_task(opts)
            client = preferences.make_client(context)
        except errors.ModelStreamError:
            inputs.discard(workdir)
            raise
        return runtime.submit(context, client, body, workdir)

    def _fail(self, context, message, job=None):
        if job is not None:
            runtime.finish(context, job, error=message)
        else:
            context.window_manager.modelstream_error = message
        if bpy.app.background:
            print(f"ModelStream: {message}", file=sys.stderr)
            self.report({'WARNING'}, message)
        else:
            self.report({'ERROR'}, message)
        return {'CANCELLED'}

    def _finish(self, context, job):
        if job.state == CANCELLED:
            self.report({'WARNING'}, job.message)
            return {'CANCELLED'}
        if job.state != READY:
            return self._fail(context, job.error or job.message, job)
        try:
            added = importer.add_result(context, job)
        except importer.ImportFailed as e:
            where = job.output_path or ", ".join(path for _, path in job.images)
            return self._fail(context, f"{e} (task {job.task_id}; files kept at {where})", job)
        runtime.finish(context, job, object_name=added)
        self.report({'INFO'}, f"ModelStream: added {added} (task {job.task_id})")
        return {'FINISHED'}

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        context.window_manager.modelstream_error = ""
        try:
            self._job_id = self._start(context).id
        except errors.ModelStreamError as e:
            return self._fail(context, str(e))
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        if event.type == 'ESC' and event.value == 'PRESS':
            runtime.cancel(context, self._job_id)
        elif event.type != 'TIMER' or event.timer is not self._timer:
            return {'PASS_THROUGH'}
        runtime.tick(context.window_manager)
        job = runtime.engine().jobs[self._job_id]
        if not job.done:
            return {'PASS_THROUGH'}
        context.window_manager.event_timer_remove(self._timer)
        return self._finish(context, job)

    def execute(self, context):
        """Blocking: background mode, and scripts that call the operator directly."""
        context.window_manager.modelstream_error = ""
        try:
            job = self._start(context)
        except errors.ModelStreamError as e:
            return self._fail(context, str(e))
        return self._finish(context, runtime.wait(context, job))


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
            captured = inputs.capture_sources(context, opts, workdir)
        except errors.ModelStreamError as e:
            inputs.discard(workdir)
            context.window_manager.modelstream_error = str(e)
            self.report({'WARNING' if bpy.app.background else 'ERROR'}, str(e))
            return {'CANCELLED'}
        inputs.keep_only(workdir)
        context.window_manager.modelstream_error = ""
        if settings.task_type == "multiview_to_model":
            for view in ("front", "left", "back", "right"):
                setattr(settings, f"view_{view}", captured[f"view_{view}"])
            settings.multiview_source = 'FILES'
        else:
            settings.image_path = captured["image_path"]
            settings.image_source = 'FILE'
        self.report({'INFO'}, "Captured: check the previews, then Generate")
        return {'FINISHED'}


class MODELSTREAM_OT_cancel(bpy.types.Operator):
    """Stop waiting for a job (the service has no cancel endpoint: it may still be charged)"""

    bl_idname = "modelstream.cancel"
    bl_label = "Cancel Job"
    bl_options = {'INTERNAL'}

    job_id: StringProperty(options={'SKIP_SAVE', 'HIDDEN'})

    def execute(self, context):
        runtime.cancel(context, self.job_id)
        return {'FINISHED'}


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
            level = 'INFO'
        except errors.ModelStreamError as e:
            text = f"Failed: {e}"
            level = 'WARNING' if bpy.app.background else 'ERROR'
        context.window_manager.modelstream_connection_report = text
        self.report({level}, text)
        return {'FINISHED'} if level == 'INFO' else {'CANCELLED'}

    def _submit(self, context):
        context.window_manager.modelstream_connection_report = "Testing..."
        try:
            return runtime.engine().call(preferences.make_client(context).check)
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
           MODELSTREAM_OT_test_connection)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
