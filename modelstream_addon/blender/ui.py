"""The ModelStream tab in the 3D viewport's sidebar."""

import os
import textwrap

import bpy
import bpy.utils.previews

from ..core import errors, post_tasks, services, tasks
from ..core.job import FINAL_STATES
from . import inputs, preferences, runtime
from .importer import parts_of, result_root, row_of
from .presets import MODELSTREAM_PT_presets
from .user_files import PACKAGE

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


class SidebarPanel:
    """The ModelStream tab of the 3D viewport's sidebar."""

    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "ModelStream"


class MODELSTREAM_PT_generate(SidebarPanel, bpy.types.Panel):
    bl_idname = "MODELSTREAM_PT_generate"
    bl_label = "ModelStream"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.modelstream
        wm = context.window_manager
        layout.menu("MODELSTREAM_MT_main", text="Menu", icon='DOWNARROW_HLT')
        if not bpy.app.online_access:
            box = layout.box()
            box.alert = True
            _wrapped(box, context, errors.OFFLINE_MESSAGE, icon='ERROR')
        elif not preferences.has_key(context):
            box = layout.box()
            _wrapped(box, context, "No API key: add it in the add-on preferences or set "
                     "MODELSTREAM_API_KEY.", icon='INFO')
            box.operator("preferences.addon_show", text="Open Preferences",
                         icon='PREFERENCES').module = PACKAGE
        service = preferences.shown_service(context)
        if runtime.balance and runtime.balance_service == service.name:
            layout.label(text=f"{service.label} credits: {runtime.balance}", icon='FUND')
        layout.prop(settings, "task_type", text="")
        self._draw_inputs(layout, settings)
        unsupported = service.unsupported(settings.task_type)
        if settings.task_type in tasks.SEEDED_TYPES:
            layout.prop(settings, "variations")
        row = layout.row()
        row.scale_y = 1.4
        row.enabled = not unsupported
        row.operator("modelstream.generate", icon='PLAY')
        if unsupported:
            _wrapped(layout, context, unsupported, icon='INFO')
        if row_of(result_root(context.view_layer.objects.active)):
            layout.operator("modelstream.keep_variation", icon='CHECKMARK')
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
            sub = layout.column(align=True)
            sub.label(text="Per-view edits (optional):")
            for view in ("front", "left", "back", "right"):
                sub.prop(settings, f"prompt_{view}")
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
        """Running jobs and the newest failure here; everything else in Jobs below."""
        running = [j for j in jobs if j.state not in FINAL_STATES]
        failed = [j for j in jobs if j.state == 'FAILED'][-1:]
        for job in running:
            box = layout.box()
            row = box.row()
            row.label(text=job.label or job.task_type, icon=_ICONS.get(job.task_type, 'MESH_DATA'))
            row.operator("modelstream.cancel", text="", icon='X').job_id = job.job_id
            box.progress(factor=job.progress, type='BAR', text=_status(job))
            if job.transport:
                box.label(text=f"Images sent by {job.transport}", icon='IMAGE_DATA')
        for job in failed:
            box = layout.box()
            box.alert = True
            _wrapped(box, context, job.error, icon='ERROR')


def _status(item):
    if item.state == 'WAITING' and item.queue_position:
        return f"Waiting here, #{item.queue_position} in line"
    return item.message


_ICONS = {"text_to_model": 'MESH_MONKEY', "image_to_model": 'IMAGE_DATA',
          "multiview_to_model": 'VIEW_CAMERA', "refine_model": 'MODIFIER',
          "text_to_image": 'IMAGE', "generate_image": 'IMAGE',
          "generate_multiview_image": 'RENDERLAYERS', "edit_multiview_image": 'RENDERLAYERS'}


class MODELSTREAM_UL_jobs(bpy.types.UIList):
    """One row a job: what, state, progress, time."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_prop):
        row = layout.row(align=True)
        row.label(text=item.label or item.task_type, icon=_ICONS.get(item.task_type, 'MESH_DATA'))
        if item.state in FINAL_STATES:
            row.label(text=item.state.title(), icon={'IMPORTED': 'CHECKMARK', 'READY': 'IMPORT',
                                                     'FAILED': 'ERROR'}.get(item.state, 'X'))
        else:
            row.progress(factor=item.progress, type='BAR', text=f"{item.progress:.0%}")
        row.label(text=f"{runtime.elapsed(item):.0f} s")


class MODELSTREAM_PT_jobs(SidebarPanel, bpy.types.Panel):
    bl_label = "Jobs"
    bl_parent_id = "MODELSTREAM_PT_generate"

    def draw(self, context):
        layout = self.layout
        wm = context.window_manager
        if runtime.history_loading():
            layout.label(text="Loading history...", icon='TIME')
        layout.template_list("MODELSTREAM_UL_jobs", "", wm, "modelstream_jobs", wm,
                             "modelstream_job_index", rows=3)
        row = layout.row(align=True)
        row.operator("modelstream.import_task", icon='IMPORT')
        row.operator("modelstream.clear_finished", text="", icon='BRUSH_DATA')
        spent = runtime.session_credits()
        if spent:
            layout.label(text=f"Credits used this session: {spent:g}", icon='FUND')
        if not 0 <= wm.modelstream_job_index < len(wm.modelstream_jobs):
            return
        job = wm.modelstream_jobs[wm.modelstream_job_index]
        box = layout.box()
        col = box.column(align=True)
        col.label(text=f"{job.task_type.replace('_', ' ')}: {_status(job)}")
        if job.task_id:
            col.label(text=f"Task {job.task_id}")
        if job.transport:
            col.label(text=f"Images sent by {job.transport}")
        found = runtime.job(job.job_id)
        if found is not None and found.service and found.service != services.DEFAULT:
            col.label(text=f"Service: {services.named(found.service).label}")
        if found is not None and found.note:
            _wrapped(col, context, found.note, icon='INFO')
        if found is not None and found.credits >= 0:
            col.label(text=f"Credits used: {found.credits:g}")
        if job.error:
            _wrapped(col, context, job.error, icon='ERROR')
        row = box.row(align=True)
        row.operator("modelstream.cancel", text="", icon='X')
        row.operator("modelstream.retry_job", text="", icon='FILE_REFRESH')
        row.operator("modelstream.import_job", text="", icon='IMPORT')
        row.operator("modelstream.copy_task_id", text="", icon='COPYDOWN')
        row.operator("modelstream.remove_job", text="", icon='TRASH')
        if job.state not in ('READY', 'IMPORTED'):
            return
        row = box.row(align=True)
        if job.task_type in ("text_to_model", "image_to_model", "multiview_to_model"):
            if job.state == 'IMPORTED':
                box.operator("modelstream.save_to_library", icon='ASSET_MANAGER').task_id = \
                    job.task_id
            row.enabled = not preferences.shown_service(context).unsupported("refine_model")
            row.operator("modelstream.use_result", text="Refine").use = 'REFINE'
        elif job.task_type in ("generate_multiview_image", "edit_multiview_image"):
            row.operator("modelstream.use_result", text="Edit Views").use = 'EDIT_VIEWS'
            row.operator("modelstream.use_result", text="Make Model").use = 'MAKE_MODEL'
        elif job.task_type in ("text_to_image", "generate_image"):
            row.operator("modelstream.use_result", text="To Model").use = 'IMAGE_INPUT'
            row.operator("modelstream.use_result", text="Reference").use = 'REFERENCE'


MENU_OPERATORS = (
    ("modelstream.generate", 'PLAY'), ("modelstream.capture", 'RESTRICT_RENDER_OFF'),
    ("modelstream.refine_selected", 'MODIFIER'), ("modelstream.import_task", 'IMPORT'),
    ("modelstream.save_to_library", 'ASSET_MANAGER'), ("modelstream.preset_add", 'PRESET'),
    ("modelstream.keep_variation", 'CHECKMARK'), ("modelstream.texture_selected", 'TEXTURE'),
    ("modelstream.rig", 'ARMATURE_DATA'), ("modelstream.animate", 'ACTION'),
    None,
    ("modelstream.split_parts", 'MOD_EXPLODE'), ("modelstream.complete_parts", 'MOD_REMESH'),
    ("modelstream.make_lods", 'MOD_DECIM'), ("modelstream.stylize", 'MOD_BUILD'),
    ("modelstream.set_size", 'FIXED_SIZE'), ("modelstream.export_model", 'EXPORT'),
    None,
    ("modelstream.cancel", 'X'), ("modelstream.retry_job", 'FILE_REFRESH'),
    ("modelstream.import_job", 'IMPORT'), ("modelstream.use_result", 'FORWARD'),
    ("modelstream.copy_task_id", 'COPYDOWN'), ("modelstream.remove_job", 'TRASH'),
    ("modelstream.clear_finished", 'BRUSH_DATA'),
    None,
    ("modelstream.test_connection", 'PLUGIN'),
)


class MODELSTREAM_MT_main(bpy.types.Menu):
    """Every ModelStream operator, so F3 search finds them all."""

    bl_label = "ModelStream"

    def draw(self, context):
        layout = self.layout
        for entry in MENU_OPERATORS:
            if entry is None:
                layout.separator()
            elif entry[0] == "modelstream.use_result":
                layout.operator_menu_enum(entry[0], "use", icon=entry[1])
            else:
                layout.operator(entry[0], icon=entry[1])


def _add_menu(self, context):
    self.layout.menu("MODELSTREAM_MT_main", icon='MESH_MONKEY')


class MODELSTREAM_PT_options(SidebarPanel, bpy.types.Panel):
    bl_label = "Options"
    bl_parent_id = "MODELSTREAM_PT_generate"
    bl_options = {'DEFAULT_CLOSED'}

    def draw_header_preset(self, context):
        MODELSTREAM_PT_presets.draw_panel_header(self.layout)

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        settings = context.scene.modelstream
        if settings.task_type not in ("text_to_model", "image_to_model", "multiview_to_model"):
            layout.prop(settings, "extra_params")
            return
        if settings.face_limit == 0:  # shown the way Blender shows "0 = no limit"
            layout.prop(settings, "face_limit", text="Face Limit (Auto)")
        else:
            layout.prop(settings, "face_limit")
        layout.prop(settings, "texture")
        row = layout.row()
        row.active = settings.texture
        row.prop(settings, "pbr")
        row = layout.row()
        row.active = settings.texture or settings.pbr  # not sent without a texture
        row.prop(settings, "texture_quality")
        layout.prop(settings, "quad")
        layout.prop(settings, "auto_size")
        layout.prop(settings, "model_version")
        layout.prop(settings, "style")
        layout.prop(settings, "extra_params")
        layout.separator()
        layout.prop(settings, "generate_parts")
        layout.prop(settings, "smart_low_poly")
        layout.prop(settings, "geometry_quality")
        layout.separator()
        layout.prop(settings, "placement")
        layout.prop(settings, "size_mode")
        if settings.size_mode != 'KEEP':
            layout.prop(settings, "target_size",
                        text="Height" if settings.size_mode == 'HEIGHT' else None)
        layout.prop(settings, "origin_at_base")
        layout.prop(settings, "shading")


class MODELSTREAM_PT_own_mesh(SidebarPanel, bpy.types.Panel):
    """Your own mesh in: texture, rig and animate it (Tripo API v3)."""

    bl_label = "Your Model"
    bl_parent_id = "MODELSTREAM_PT_generate"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout = self.layout
        settings = context.scene.modelstream_mesh
        unsupported = preferences.shown_service(context).unsupported("texture_model")
        if unsupported:
            _wrapped(layout, context, unsupported, icon='INFO')
        col = layout.column(align=True)
        col.enabled = not unsupported
        col.prop(settings, "prompt", text="", icon='TEXTURE')
        col.row(align=True).prop(settings, "image_source", expand=True)
        if settings.image_source == 'FILE':
            col.prop(settings, "image_path", text="")
        elif settings.image_source == 'IMAGE':
            col.prop_search(settings, "image_name", bpy.data, "images", text="")
        row = col.row(align=True)
        row.prop(settings, "pbr", toggle=True)
        row.prop(settings, "texture_quality", text="")
        col.prop(settings, "texture_seed")
        col.prop(settings, "placement", text="")
        col.operator("modelstream.texture_selected", icon='TEXTURE')
        col.separator()
        col.prop(settings, "spec")
        col.prop(settings, "rig_model", text="")
        col.label(text="Animations:")
        col.grid_flow(columns=3, even_columns=True, align=True).prop(settings, "animations")
        row = col.row(align=True)
        row.operator("modelstream.rig", icon='ARMATURE_DATA')
        row.operator("modelstream.animate", icon='ACTION')


class MODELSTREAM_PT_game_ready(SidebarPanel, bpy.types.Panel):
    """Output a pipeline can ship: parts, LODs, a style, a real size, a file for an engine."""

    bl_label = "Game Ready"
    bl_parent_id = "MODELSTREAM_PT_generate"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout = self.layout
        settings = context.scene.modelstream_game
        service = preferences.shown_service(context)
        reason = service.unsupported(post_tasks.SEGMENT)
        if reason:
            _wrapped(layout, context, reason, icon='INFO')
        col = layout.column(align=True)
        col.prop(settings, "segment_model", text="")
        col.operator("modelstream.split_parts", icon='MOD_EXPLODE')
        root = result_root(context.view_layer.objects.active)
        parts = parts_of(root) if root is not None else {}
        if parts:
            box = col.box()
            flow = box.grid_flow(columns=2, even_columns=True, align=True)
            for name, obj in parts.items():
                flow.prop(obj, "modelstream_complete", text=name)
            box.prop(settings, "completion_mode", text="")
            box.operator("modelstream.complete_parts", icon='MOD_REMESH')
        col.separator()
        row = col.row(align=True)
        row.prop(settings, "lod_limits", text="LODs")
        row.prop(settings, "lod_quad", text="", icon='MESH_GRID')
        col.operator("modelstream.make_lods", icon='MOD_DECIM')
        col.separator()
        row = col.row(align=True)
        row.prop(settings, "style", text="")
        if settings.style == "minecraft":
            row.prop(settings, "block_size")
        col.operator("modelstream.stylize", icon='MOD_BUILD')
        col.separator()
        row = col.row(align=True)
        row.prop(settings, "height")
        row.prop(settings, "origin_at_base", text="", icon='TRIA_DOWN_BAR')
        op = col.operator("modelstream.set_size", icon='FIXED_SIZE')
        op.height, op.origin_at_base = settings.height, settings.origin_at_base
        col.separator()
        col.prop(settings, "export_format", text="")
        if settings.export_format == "FBX":
            col.prop(settings, "fbx_preset", text="")
        col.prop(settings, "export_orientation")
        col.prop(settings, "export_face_limit")
        col.prop(settings, "texture_size")
        col.prop(settings, "pivot_to_center_bottom")
        col.prop(settings, "export_path", text="")
        col.operator("modelstream.export_model", icon='EXPORT')


CLASSES = (MODELSTREAM_MT_main, MODELSTREAM_UL_jobs, MODELSTREAM_PT_generate,
           MODELSTREAM_PT_options, MODELSTREAM_PT_own_mesh, MODELSTREAM_PT_game_ready,
           MODELSTREAM_PT_jobs)


def register():
    global _previews
    _previews = bpy.utils.previews.new()
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.VIEW3D_MT_add.append(_add_menu)


def unregister():
    global _previews
    bpy.types.VIEW3D_MT_add.remove(_add_menu)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    bpy.utils.previews.remove(_previews)
    _previews = None
