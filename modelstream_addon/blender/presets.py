"""Option presets through Blender's own preset menu, in the Options panel's header.

The shipped presets are files of the add-on (presets/modelstream/generate/ in its top
folder), found through a registered preset path and read-only like every extension file.
The user's own presets are written under the extension's user folder, registered the same
way, so the add-on writes nothing into Blender's scripts folder. Both are run by
`script.execute_preset`.
"""

import os

import bpy
from bl_operators.presets import AddPresetBase
from bl_ui.utils import PresetPanel

from ..core import paths
from .user_files import user_folder

SUBDIR = "modelstream/generate"
# The generate options a preset holds: how, not what (no prompt, inputs or task type).
OPTIONS = ("model_version", "face_limit", "texture", "pbr", "texture_quality", "quad",
           "auto_size", "placement", "size_mode", "target_size", "shading")
# The add-on's top folder: it holds presets/<SUBDIR>, the shipped presets.
SHIPPED = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_root():
    """The extension's user folder: it holds presets/<SUBDIR>, the user's own presets."""
    return user_folder()


class MODELSTREAM_PT_presets(PresetPanel, bpy.types.Panel):
    bl_label = "Option Presets"
    preset_subdir = SUBDIR
    preset_operator = "script.execute_preset"
    preset_add_operator = "modelstream.preset_add"


class MODELSTREAM_OT_preset_add(AddPresetBase, bpy.types.Operator):
    """Save the current options as a preset, or remove one of your presets"""

    bl_idname = "modelstream.preset_add"
    bl_label = "Add Option Preset"
    preset_menu = "MODELSTREAM_PT_presets"
    preset_subdir = SUBDIR

    def execute(self, context):
        """Blender's own removal (it refuses shipped presets); adding writes under the
        extension's user folder instead of Blender's scripts folder."""
        if self.remove_name or self.remove_active:
            return super().execute(context)
        filename = self.as_filename(self.name)
        if not filename:
            return {'CANCELLED'}
        if (bpy.utils.preset_find(filename, SUBDIR)
                or bpy.utils.preset_find(self.name.strip(), SUBDIR, display_name=True)):
            self.report({'WARNING'}, f"A preset named {self.name.strip()!r} exists already")
            return {'CANCELLED'}
        path = paths.safe_path(user_root(), "presets", *SUBDIR.split("/"), f"{filename}.py")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        settings = context.scene.modelstream
        lines = ["import bpy", "", "settings = bpy.context.scene.modelstream",
                 *(f"settings.{name} = {getattr(settings, name)!r}" for name in OPTIONS)]
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        wm = context.window_manager
        if self.name.strip() == wm.preset_name:
            wm.preset_name = "New Preset"
        MODELSTREAM_PT_presets.bl_label = bpy.path.display_name(filename)
        return {'FINISHED'}


CLASSES = (MODELSTREAM_PT_presets, MODELSTREAM_OT_preset_add)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    for root in (SHIPPED, user_root()):
        bpy.utils.register_preset_path(root)


def unregister():
    for root in (SHIPPED, user_root()):
        bpy.utils.unregister_preset_path(root)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
