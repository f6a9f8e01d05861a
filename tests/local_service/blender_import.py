"""Open converted files with Blender's own importers (bpy, the venv's wheel) and print what
came in: `python blender_import.py FILE...` prints one JSON object, per file each mesh
object's name, world bounding box, polygon sizes and whether a material wears an image.

Run in a child process by test_post_blender.py, so Blender's state never reaches the test's.
"""

from __future__ import annotations

import json
import os
import sys

import bpy

IMPORTERS = {
    ".fbx": lambda path: bpy.ops.import_scene.fbx(filepath=path),
    ".obj": lambda path: bpy.ops.wm.obj_import(filepath=path),
    ".stl": lambda path: bpy.ops.wm.stl_import(filepath=path),
    ".usdz": lambda path: bpy.ops.wm.usd_import(filepath=path),
    ".glb": lambda path: bpy.ops.import_scene.gltf(filepath=path),
}


def summary(path: str) -> dict:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    IMPORTERS[os.path.splitext(path)[1]](path)
    bpy.context.view_layer.update()
    meshes = {}
    for obj in bpy.data.objects:
        if obj.type != "MESH":
            continue
        corners = [obj.matrix_world @ v.co for v in obj.data.vertices]
        low = [min(c[i] for c in corners) for i in range(3)]
        high = [max(c[i] for c in corners) for i in range(3)]
        sizes = [len(polygon.vertices) for polygon in obj.data.polygons]
        imaged = any(node.type == "TEX_IMAGE" and node.image is not None
                     for slot in obj.material_slots if slot.material and slot.material.node_tree
                     for node in slot.material.node_tree.nodes)
        meshes[obj.name] = {"low": low, "high": high, "triangles": sizes.count(3),
                            "quads": sizes.count(4), "polygons": len(sizes), "image": imaged}
    return meshes


if __name__ == "__main__":
    print("SUMMARY " + json.dumps({path: summary(path) for path in sys.argv[1:]}))
