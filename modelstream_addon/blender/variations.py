"""Keep This One: of a row of variations, keep the selected one and remove the others with
everything only they used, so the file holds no orphans; one undo step."""

import bpy

from .importer import ROW, ROW_PLACE, result_root, row_of
from .operator_base import fail

# What a result brings in, walked from its objects; removed when nothing else uses it.
_OWNED = ("meshes", "materials", "images", "textures", "node_groups", "armatures", "actions",
          "curves")


def siblings(root):
    """The other variations of `root`'s row in the scene."""
    row = row_of(root)
    return [o for o in bpy.context.scene.objects
            if row and o is not root and o.type == 'EMPTY' and row_of(o) == row]


def _used_by(objects):
    """The datablocks `objects` use, found by Blender's own user map rather than by
    walking node trees and modifiers ourselves."""
    users = bpy.data.user_map(subset=[b for name in _OWNED for b in getattr(bpy.data, name)])
    found, frontier = set(), set(objects)
    while frontier:
        found |= frontier
        frontier = {block for block, by in users.items() if by & frontier} - found
    return found - set(objects)


def keep(context, root):
    """Remove `root`'s siblings and whatever only they used; put `root` where the row
    started. Returns how many variations were removed."""
    others = siblings(root)
    objects = {o for s in others for o in (s, *s.children_recursive)}
    task_ids = {s.get("modelstream_task_id") for s in others}
    candidates = _used_by(objects) | {  # the result's preview images have no users
        i for i in bpy.data.images if i.get("modelstream_task_id") in task_ids}
    bpy.data.batch_remove(objects)
    while True:
        unused = {b for b in candidates if b.users == 0 and not b.use_fake_user}
        if not unused:
            break
        candidates -= unused
        bpy.data.batch_remove(unused)
    place = root.get(ROW_PLACE)
    if place is not None and len(place) == 3:
        root.location = place
    for key in (ROW, ROW_PLACE):
        if key in root:
            del root[key]
    return len(others)


class MODELSTREAM_OT_keep_variation(bpy.types.Operator):
    """Keep the selected variation: remove the others of its row (with their meshes,
    materials and images) and move it to where the row started"""

    bl_idname = "modelstream.keep_variation"
    bl_label = "Keep This One"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        root = result_root(context.view_layer.objects.active)
        if root is None or not row_of(root):
            cls.poll_message_set("Select one of a row of variations")
            return False
        return True

    def execute(self, context):
        root = result_root(context.view_layer.objects.active)
        if root is None or not row_of(root):
            return fail(self, context, "Select one of a row of variations to keep.")
        removed = keep(context, root)
        self.report({'INFO'}, f"Kept {root.name}; removed {removed} other variation"
                    + ("" if removed == 1 else "s"))
        return {'FINISHED'}


def register():
    bpy.utils.register_class(MODELSTREAM_OT_keep_variation)


def unregister():
    bpy.utils.unregister_class(MODELSTREAM_OT_keep_variation)
