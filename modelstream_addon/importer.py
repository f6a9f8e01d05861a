"""Bring a downloaded model into the scene under one Empty, or leave nothing behind."""

import contextlib

import bpy

from . import tasks

COLLECTION = "ModelStream"
_IMPORTERS = {
    "glb": lambda path: bpy.ops.import_scene.gltf(filepath=path),
    "fbx": lambda path: bpy.ops.import_scene.fbx(filepath=path),
}
_DATA = ("objects", "meshes", "materials", "images", "textures", "node_groups", "armatures",
         "actions", "cameras", "lights", "collections")


class ImportFailed(Exception):
    pass


def _snapshot():
    return {name: set(getattr(bpy.data, name)) for name in _DATA}


def _remove_new(before):
    for name in _DATA:
        collection = getattr(bpy.data, name)
        for block in [b for b in collection if b not in before[name]]:
            collection.remove(block)


def _collection(scene):
    coll = bpy.data.collections.get(COLLECTION)
    if coll is None:
        coll = bpy.data.collections.new(COLLECTION)
    if coll.name not in scene.collection.children:
        scene.collection.children.link(coll)
    return coll


def import_model(context, path, fmt, *, name, task_id, task_type, prompt, location):
    """Import `path` and parent it under a new Empty at `location`; returns the Empty."""
    if fmt not in _IMPORTERS:
        raise ImportFailed(f"Cannot import a {fmt!r} file.")
    before = _snapshot()
    try:
        result = _IMPORTERS[fmt](path)
        new = [o for o in bpy.data.objects if o not in before["objects"]]
        if result != {'FINISHED'} or not new:
            raise ImportFailed(f"The {fmt.upper()} file imported no objects.")
        coll = _collection(context.scene)
        empty = bpy.data.objects.new(name, None)
        empty.empty_display_type = 'PLAIN_AXES'
        empty.location = location
        coll.objects.link(empty)
        empty["modelstream_task_id"] = task_id
        empty["modelstream_type"] = task_type
        empty["modelstream_prompt"] = prompt
        new_set = set(new)
        for obj in new:
            for owner in list(obj.users_collection):
                owner.objects.unlink(obj)
            coll.objects.link(obj)
            if obj.parent not in new_set:
                obj.parent = empty
        for obj in context.view_layer.objects.selected:
            obj.select_set(False)
        empty.select_set(True)
        context.view_layer.objects.active = empty
    except Exception as e:
        _remove_new(before)
        if isinstance(e, ImportFailed):
            raise
        raise ImportFailed(f"Importing the model failed: {e}") from None
    return empty


def load_images(images, *, task_id, task_type, keep=True):
    """Load downloaded result images as datablocks named by task and view, packed into
    the .blend so they travel with it; `keep` gives them a fake user so they are saved."""
    loaded = []
    try:
        for view, path in images:
            image = bpy.data.images.load(path, check_existing=False)
            loaded.append(image)
            image.name = f"{task_type}_{task_id[:8]}_{view}"
            image["modelstream_task_id"] = task_id
            image["modelstream_view"] = view
            image.pack()
            image.use_fake_user = keep
    except Exception as e:
        for image in loaded:
            bpy.data.images.remove(image)
        raise ImportFailed(f"Loading the result images failed: {e}") from None
    return loaded


def add_result(context, job):
    """Import a finished job's model (its preview image is a bonus) or load its images.
    Returns what was added, for messages."""
    task_type = job.body["type"]
    if tasks.output_kind(task_type) != "model":
        images = load_images(job.images, task_id=job.task_id, task_type=task_type)
        return ", ".join(image.name for image in images)
    empty = import_model(
        context, job.output_path, job.output_format, name=tasks.describe(job.body),
        task_id=job.task_id, task_type=task_type, prompt=job.body.get("prompt", ""),
        location=context.scene.cursor.location.copy())
    with contextlib.suppress(ImportFailed):
        load_images(job.images, task_id=job.task_id, task_type=task_type, keep=False)
    return empty.name
