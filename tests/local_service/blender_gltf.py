"""Import GLBs with Blender's own glTF importer (bpy, the venv's wheel) and print what came in:
`python blender_gltf.py FILE...` prints one JSON object, per file its armatures' bones, its
meshes (vertices, vertex groups, modifiers, parent) and the Actions made.

Run in a child process by test_own_mesh.py, so Blender's state never reaches the test's.
"""

from __future__ import annotations

import json
import sys

import bpy


def summary(path: str) -> dict:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    for action in list(bpy.data.actions):
        bpy.data.actions.remove(action)
    bpy.ops.import_scene.gltf(filepath=path)
    objects = list(bpy.data.objects)
    return {
        "armatures": {o.name: [bone.name for bone in o.data.bones]
                      for o in objects if o.type == "ARMATURE"},
        "meshes": {o.name: {"vertices": len(o.data.vertices),
                            "groups": sorted(group.name for group in o.vertex_groups),
                            "modifiers": [(m.type, m.object and m.object.name)
                                          for m in o.modifiers if m.type == "ARMATURE"],
                            "parent": o.parent and o.parent.name}
                   for o in objects if o.type == "MESH"},
        "actions": sorted(action.name for action in bpy.data.actions),
    }


if __name__ == "__main__":
    print("SUMMARY " + json.dumps({path: summary(path) for path in sys.argv[1:]}))
