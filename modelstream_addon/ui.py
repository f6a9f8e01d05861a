"""The ModelStream tab in the 3D viewport's sidebar."""

import os
import textwrap

import bpy
import bpy.utils.previews

from . import inputs, preferences
from .engine import FINAL_STATES

MAX_FINISHED_SHOWN = 3
_previews = None


def _thumbnail(layout, path, scale=5):
    """A preview of a local input image, so the user sees what will be sent."""
    path = bpy.path.abspath(path or "")
    if _previews is None or not os.path.isfile(path):
        return
    key = f"{path}:{os.path.getmtime(path)}"
    if key not in _previews:
        _previews.load(key, path, 'IMAGE')
    layout.template_icon(icon_value=_previews[key].icon_id, scale=scale)


def _wrapped(layout, context, text, icon='NONE'):
    """Long messages wrap to the sidebar's width instead of being cut off."""
    width = max(20, int(context.region.width / (8 * context.preferences.view.ui_scale)))
    col = layout.column(align=True)
    for i, line in enumerate(textwrap.wrap(text, width) or [""]):
        col.label(text=line, icon=icon if i == 0 else 'BLANK1')


class MODELSTREAM_PT_generate(bpy.types.Panel):
    bl_idname = "MODELSTREAM_PT_generate"
    bl_label = "ModelStream"
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "ModelStream"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.modelstream
        wm = context.window_manager
        if not bpy.app.online_access:
            box = layout.box()
            box.alert = True
            _wrapped(box, context, "Online access is off. Enable Edit > Preferences > System "
                     "> Network > Allow Online Access.", icon='ERROR')
        elif not preferences.has_key(context):
            box = layout.box()
            _wrapped(box, context, "No API key: add it in the add-on preferences or set "
                     "MODELSTREAM_API_KEY.", icon='INFO')
            box.operator("preferences.addon_show", text="Open Preferences",
                         icon='PREFERENCES').module = __package__
        layout.prop(settings, "task_type", text="")
        self._draw_inputs(layout, settings)
        row = layout.row()
        row.scale_y = 1.4
        row.operator("modelstream.generate", icon='PLAY')
        if wm.modelstream_error:
            box = layout.box()
            box.alert = True
            _wrapped(box, context, wm.modelstream_error, icon='ERROR')
        self._draw_jobs(context, layout, wm.modelstream_jobs)

    def _draw_inputs(self, layout, settings):
        """Only the inputs the chosen task type reads."""
        kind = settings.task_type
        col = layout.column(align=True)
        if kind in ("text_to_model", "text_to_image", "generate_image",
                    "generate_multiview_image", "edit_multiview_image"):
            col.prop(settings, "prompt", text="", icon='TEXT')
        if kind in ("image_to_model", "generate_image", "generate_multiview_image"):
            self._draw_image_source(layout, settings)
        if kind == "multiview_to_model":
            col.prop(settings, "original_task_id")
            if not settings.original_task_id:
                self._draw_views(layout, settings)
        if kind == "edit_multiview_image":
            col.prop(settings, "original_task_id")
        if kind == "refine_model":
            col.prop(settings, "draft_model_task_id")
        if inputs.capture_wanted(settings):
            layout.operator("modelstream.capture", icon='RESTRICT_RENDER_OFF')

    def _draw_image_source(self, layout, settings):
        layout.row().prop(settings, "image_source", expand=True)
        source = settings.image_source
        if source == 'FILE':
            layout.prop(settings, "image_path", text="")
            _thumbnail(layout, settings.image_path)
        elif source == 'IMAGE':
            layout.prop_search(settings, "image_name", bpy.data, "images", text="")
        else:
            col = layout.column(align=True)
            if source == 'RENDER':
                col.prop(settings, "render_engine", text="")
            col.prop(settings, "capture_resolution")
            row = col.row(align=True)
            row.prop(settings, "capture_transparent", text="Alpha", toggle=True)
            row.prop(settings, "only_selected", toggle=True)

    def _draw_views(self, layout, settings):
        layout.row().prop(settings, "multiview_source", expand=True)
        if settings.multiview_source == 'ORBIT':
            col = layout.column(align=True)
            col.prop(settings, "capture_resolution")
            row = col.row(align=True)
            row.prop(settings, "orbit_ortho", toggle=True)
            row.prop(settings, "capture_transparent", text="Alpha", toggle=True)
            col.prop(settings, "orbit_front")
            return
        grid = layout.grid_flow(columns=2, even_columns=True, align=True)
        for view in ("front", "left", "back", "right"):
            cell = grid.column(align=True)
            cell.prop(settings, f"view_{view}")
            _thumbnail(cell, getattr(settings, f"view_{view}"), scale=3)

    def _draw_jobs(self, context, layout, jobs):
        running = [j for j in jobs if j.state not in FINAL_STATES]
        finished = [j for j in jobs if j.state in FINAL_STATES][-MAX_FINISHED_SHOWN:]
        for job in running + list(reversed(finished)):
            box = layout.box()
            row = box.row()
            row.label(text=job.label or job.task_type, icon='MESH_MONKEY')
            if job in running:
                row.operator("modelstream.cancel", text="", icon='X').job_id = job.job_id
                box.progress(factor=job.progress, type='BAR', text=job.message)
                if job.transport:
                    box.label(text=f"Images sent by {job.transport}", icon='IMAGE_DATA')
            elif job.state == 'FAILED':
                box.alert = True
                _wrapped(box, context, job.error, icon='ERROR')
            else:
                box.label(text=job.message, icon='CHECKMARK' if job.state == 'IMPORTED'
                          else 'CANCEL')


class MODELSTREAM_PT_options(bpy.types.Panel):
    bl_label = "Options"
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "ModelStream"
    bl_parent_id = "MODELSTREAM_PT_generate"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        settings = context.scene.modelstream
        if settings.task_type not in ("text_to_model", "image_to_model", "multiview_to_model"):
            layout.prop(settings, "extra_params")
            return
        layout.prop(settings, "face_limit")
        layout.prop(settings, "texture")
        row = layout.row()
        row.active = settings.texture
        row.prop(settings, "pbr")
        layout.prop(settings, "texture_quality")
        layout.prop(settings, "quad")
        layout.prop(settings, "auto_size")
        layout.prop(settings, "model_version")
        layout.prop(settings, "style")
        layout.prop(settings, "extra_params")


CLASSES = (MODELSTREAM_PT_generate, MODELSTREAM_PT_options)


def register():
    global _previews
    _previews = bpy.utils.previews.new()
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    global _previews
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    bpy.utils.previews.remove(_previews)
    _previews = None
