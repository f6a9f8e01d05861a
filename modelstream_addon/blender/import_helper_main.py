"""What runs inside the import helper (core/import_helper.py): a background Blender with no
user preference, script or add-on of its own. It imports each model it is sent with
Blender's own importer, as the user's Blender would, and writes the objects in view into a
.blend for that Blender to append. Standalone: it imports nothing of the add-on.

Arguments after "--": the answers' tag, the collection to write, the idle seconds after
which it ends, the start of the preview images' names. Each request is a JSON line on
stdin ({"model", "format", "out", "images": [[view, path]]}); each answer one tagged JSON
line on stdout; it ends at the end of its input.
"""

import json
import os
import queue
import sys
import threading

import bpy

IMPORTERS = {
    "glb": lambda path: bpy.ops.import_scene.gltf(filepath=path),
    "fbx": lambda path: bpy.ops.import_scene.fbx(filepath=path),
}


def _in_view(obj):
    """The glTF importer's bone shapes stay in its hidden collection: not appended as
    objects of their own (their armature brings them)."""
    owners = obj.users_collection
    return not owners or any(not c.hide_viewport for c in owners)


def _previews(images, prefix):
    """The preview images, each packed and named `prefix` + its view; one that does not
    load is left out (the user's Blender loads it from its file)."""
    loaded = []
    for view, path in images:
        try:
            image = bpy.data.images.load(path, check_existing=False)
            image.pack()
        except RuntimeError:
            continue
        image.name = prefix + view
        image["modelstream_view"] = view
        loaded.append(image)
    return loaded


def convert(request, collection, prefix):
    bpy.ops.wm.read_homefile(use_empty=True)
    model, out = request["model"], request["out"]
    if IMPORTERS[request["format"]](model) != {'FINISHED'}:
        raise RuntimeError("the importer did not finish")
    objects = [o for o in bpy.data.objects if _in_view(o)]
    if not objects:
        raise RuntimeError("the file imported no objects")
    holder = bpy.data.collections.new(collection)
    for obj in objects:
        holder.objects.link(obj)
    part = out + ".part"
    previews = _previews(request.get("images", []), prefix)
    bpy.data.libraries.write(part, {holder, *previews}, compress=False)
    os.replace(part, out)
    return len(objects)


def _lines(requests):
    for line in sys.stdin:
        requests.put(line)
    requests.put(None)


def main():
    tag, collection, idle, prefix = sys.argv[sys.argv.index("--") + 1:][:4]
    requests = queue.Queue()
    threading.Thread(target=_lines, args=(requests,), daemon=True).start()
    print(tag + json.dumps({"ready": True}), flush=True)
    while True:
        try:
            line = requests.get(timeout=float(idle))
        except queue.Empty:
            return
        if line is None:
            return
        try:
            answer = {"ok": True, "objects": convert(json.loads(line), collection, prefix)}
        except Exception as e:  # any failure: the user's Blender imports the file itself
            answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        print(tag + json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
