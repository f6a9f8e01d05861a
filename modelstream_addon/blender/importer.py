"""Bring a downloaded model into the scene under one Empty, or leave nothing behind."""

import contextlib
import importlib
import math
import os
import pkgutil
import sys

import bpy
from mathutils import Matrix, Vector

from ..core import import_helper, model_tasks, post_tasks, tasks
from .user_files import user_folder

COLLECTION = "ModelStream"
ROW = "modelstream_row"  # on a variation's Empty: the row it landed in
ROW_PLACE = "modelstream_row_place"  # where the row started: Keep This One goes there
PART = "modelstream_part"  # on a part's object: the service's name for it
PARTS = "modelstream_parts"  # on a segmentation result's Empty: its parts' names
_IMPORTERS = {
    "glb": lambda path: bpy.ops.import_scene.gltf(filepath=path),
    "fbx": lambda path: bpy.ops.import_scene.fbx(filepath=path),
}
_DATA = ("objects", "meshes", "materials", "images", "textures", "node_groups", "armatures",
         "actions", "cameras", "lights", "collections", "libraries")
HELPER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             "import_helper_main.py")


# What Blender's glTF importer loads on its first run (its operator imports them then).
GLTF_PACKAGES = ("io_scene_gltf2.io.imp", "io_scene_gltf2.blender.imp")


class ImportFailed(Exception):
    pass


def warm_up():
    """Load the glTF importer's modules ahead of its first run, which would load them on
    the main thread (about 40 ms). Their code only defines functions, classes and
    constants (no Blender data read or changed: so on 4.2 and 5.0), so this may run on a
    thread. Only when the glTF add-on is enabled (its package loaded). Returns the modules
    loaded."""
    if "io_scene_gltf2" not in sys.modules:
        return []
    loaded = []
    for name in GLTF_PACKAGES:
        package = importlib.import_module(name)
        for module in pkgutil.iter_modules(package.__path__, f"{name}."):
            loaded.append(importlib.import_module(module.name))
    return loaded


def helper_command():
    """How to start the import helper: this Blender's own program, in the background
    with factory settings; Blender as a Python module (no program) runs the helper's
    script in this Python."""
    args = ["--", import_helper.TAG, import_helper.COLLECTION, str(import_helper.IDLE),
            import_helper.PREVIEW]
    if bpy.app.binary_path:
        return [bpy.app.binary_path, "--background", "--factory-startup", "--python",
                HELPER_SCRIPT, *args]
    return [sys.executable, HELPER_SCRIPT, *args]


# Blender's user folders, empty ones of the helper's own: no user preference, script or
# add-on runs in it (this one would resume your tasks there), whatever the environment
# names for this Blender.
_HELPER_FOLDERS = {"BLENDER_USER_RESOURCES": "", "BLENDER_USER_CONFIG": "config",
                   "BLENDER_USER_SCRIPTS": "scripts", "BLENDER_USER_EXTENSIONS": "extensions",
                   "BLENDER_USER_DATAFILES": "datafiles"}


def make_helper():
    """The import helper (core/import_helper.py), not started yet."""
    folders = {name: user_folder(os.path.join("import_helper", folder))
               for name, folder in _HELPER_FOLDERS.items()}
    return import_helper.ImportHelper(helper_command(),
                                      import_helper.child_env(os.environ, folders))


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


def _own_matrix(obj):
    """`obj`'s world matrix from its own and its parents' transforms, as the depsgraph
    makes it; None where only the depsgraph knows it (constraints, rigid body, a bone,
    vertex or curve parent)."""
    matrix = obj.matrix_basis
    while obj.parent is not None:
        if obj.constraints or obj.rigid_body or obj.parent_type != 'OBJECT' \
                or obj.parent.type == 'CURVE':
            return None
        matrix = obj.matrix_parent_inverse @ matrix
        obj = obj.parent
        matrix = obj.matrix_basis @ matrix
    return None if obj.constraints or obj.rigid_body else matrix


def world_matrices(objects):
    """[world matrix] of `objects`, current after any change to their transforms:
    matrix_world is not until the depsgraph has run again, and running it after a
    parenting rebuilds the scene's relations and deforms each skinned vertex again (a
    rigged 2M-triangle model: 40-100 ms a time), so it runs only where our own product of
    transforms cannot say."""
    found = [_own_matrix(o) for o in objects]
    if any(m is None for m in found):
        bpy.context.view_layer.update()
        found = [o.matrix_world.copy() for o in objects]
    return found


def world_bounds(objects):
    """(lowest, highest) corner of the world-space bounding box of `objects`' meshes, or
    None when there is no mesh (each mesh's box as Blender last evaluated it)."""
    meshes = [o for o in objects if o.type == 'MESH']
    corners = [m @ Vector(c) for o, m in zip(meshes, world_matrices(meshes), strict=True)
               for c in o.bound_box]
    if not corners:
        return None
    return (Vector(min(c[i] for c in corners) for i in range(3)),
            Vector(max(c[i] for c in corners) for i in range(3)))


def _model_size(objects):
    """Largest side of the world-space bounding box of `objects`' meshes."""
    bounds = world_bounds(objects)
    return max(bounds[1] - bounds[0]) if bounds else 0.0


def fit_height(context, empty, objects, height):
    """Scale the Empty (never the mesh data) so `objects` stand `height` tall."""
    bounds = world_bounds(objects)
    tall = (bounds[1].z - bounds[0].z) if bounds else 0.0
    if tall > 0 and height > 0:
        empty.scale = empty.scale * (height / tall)


def base_at_origin(context, empty, objects):
    """Move the Empty's children so that `objects` rest on the Empty's origin: their
    lowest point at its Z, their bounding box centred over it in X and Y."""
    bounds = world_bounds(objects)
    if bounds is None:
        return
    low, high = bounds
    [place] = world_matrices([empty])
    at = place.translation
    shift = Matrix.Translation((at.x - (low.x + high.x) / 2, at.y - (low.y + high.y) / 2,
                                at.z - low.z))
    for child in empty.children:  # in world space: on each child's own transform
        parent = place @ child.matrix_parent_inverse
        child.matrix_basis = parent.inverted() @ shift @ parent @ child.matrix_basis


def _place(context, empty, new, options):
    """Cursor, origin or the replaced object's place; scale to a size on the Empty only,
    so the mesh data keeps the service's units."""
    placement = options.get("placement", 'CURSOR')
    target = bpy.data.objects.get(options.get("replace", "")) if placement == 'REPLACE' else None
    if placement == 'REPLACE' and target is None:
        raise ImportFailed(f"The object to replace, {options.get('replace')!r}, is gone.")
    size = _model_size(new)
    goal = None
    if target is not None:
        goal = max(target.dimensions)
    elif options.get("size_mode") == 'FIT':
        goal = options.get("target_size", 1.0)
    if goal and size > 0:
        empty.scale = (goal / size,) * 3
    elif options.get("size_mode") == 'HEIGHT':
        fit_height(context, empty, new, _number(options.get("target_size"), 1.0))
    if target is not None:
        [where] = world_matrices([target])
        empty.location = where.translation
        empty.rotation_euler = where.to_euler()
        target.hide_set(True)
        target.hide_render = True
    elif placement == 'MATRIX':  # your own mesh's result: at the original's transform
        empty.matrix_world = _matrix(options.get("matrix"))
    elif placement == 'AT':
        empty.location = options["location"]
    elif placement == 'CURSOR':
        empty.location = context.scene.cursor.location
    if options.get("origin_at_base") is True:
        base_at_origin(context, empty, new)
    _line_up(context, empty, new, options)
    shading = options.get("shading", 'KEEP')
    for obj in new:
        if obj.type == 'MESH' and shading != 'KEEP':
            (obj.data.shade_smooth if shading == 'SMOOTH' else obj.data.shade_flat)()


def _number(value, default):
    """A positive finite number out of the history, else `default`."""
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and value > 0)
    return value if ok else default


def _matrix(values):
    """A 4x4 matrix from 16 numbers (row by row) out of the history; else identity."""
    if (isinstance(values, list) and len(values) == 16
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in values)):
        return Matrix([values[i:i + 4] for i in range(0, 16, 4)])
    return Matrix.Identity(4)


def result_root(obj):
    """The Empty a result was imported under (it carries the task id), or None."""
    while obj is not None and "modelstream_task_id" not in obj:
        obj = obj.parent
    return obj if obj is not None and obj.type == 'EMPTY' else None


def row_of(obj):
    """The variation row an object's Empty belongs to ('' for none): the history gives
    it, so only text is trusted."""
    row = obj.get(ROW) if obj is not None else None
    return row if isinstance(row, str) else ""


def _line_up(context, empty, new, options):
    """A variation lands right of the siblings already in the scene, a gap apart, so
    none overlap whatever their sizes; the first sits at the placement point."""
    row = options.get("row")
    if not isinstance(row, str) or not row:
        return
    empty[ROW] = row
    empty[ROW_PLACE] = list(empty.location)
    siblings = [o for o in context.scene.objects if o is not empty and row_of(o) == row]
    mine = world_bounds(new)
    taken = world_bounds([c for s in siblings for c in s.children_recursive])
    if mine is None or taken is None:
        return
    gap = max(0.1 * (mine[1].x - mine[0].x), 0.05)
    empty.location.x += taken[1].x + gap - mine[0].x


def _in_view(owners):
    """False for what an importer keeps out of view (`owners`: an object's collections):
    the glTF importer's bone shapes, in its hidden collection, stay there rather than show
    at the model's origin."""
    return not owners or any(not c.hide_viewport for c in owners)


def open_prebuilt(path):
    """The import helper's .blend of a model (core/import_helper.py), opened for
    `import_model`: Blender reads the file's structure here, about 3 ms of the append's 4,
    so a landing opens it in a timer call of its own. None when it cannot be read."""
    try:
        library = bpy.data.libraries.load(path, link=False)
        source, target = library.__enter__()
    except (OSError, RuntimeError, ValueError):
        return None
    target.collections = [n for n in source.collections if n == import_helper.COLLECTION]
    target.images = [n for n in source.images if n.startswith(import_helper.PREVIEW)]
    return library, target, bpy.data.as_pointer()


def _same_file(opened):
    """Whether the Blender data an opened .blend appends into is still the open file's: a
    file loaded or an undo since replaces it, and appending into the old one would crash
    Blender."""
    return opened[2] == bpy.data.as_pointer()


def close_unused(opened):
    """An opened .blend that will not be appended after all."""
    library, target, _ = opened
    target.collections, target.images = [], []
    if _same_file(opened):
        with contextlib.suppress(OSError, RuntimeError, ValueError):
            library.__exit__(None, None, None)


def _append(opened, before):
    """The objects of an opened .blend of the import helper, appended and in no
    collection; None when that fails or the file changed since it was opened, leaving
    nothing of it behind (the model file is imported instead)."""
    library, target, _ = opened
    if not _same_file(opened):
        close_unused(opened)
        return None
    try:
        library.__exit__(None, None, None)
    except (OSError, RuntimeError, ValueError):
        _remove_new(before)
        return None
    holder = next((c for c in target.collections if c is not None), None)
    new = list(holder.objects) if holder is not None else []
    for made in [b for b in bpy.data.libraries if b not in before["libraries"]]:
        bpy.data.libraries.remove(made)  # the appended data is local: it stays
    if holder is not None:
        bpy.data.collections.remove(holder)
    if not new:
        _remove_new(before)
        return None
    return new


def _import(path, fmt, before):
    """({new object: its collections}, [the new objects in view]) from Blender's importer."""
    result = _IMPORTERS[fmt](path)
    owners = {o: list(o.users_collection) for o in bpy.data.objects
              if o not in before["objects"]}  # users_collection walks every collection
    new = [o for o, found in owners.items() if _in_view(found)]
    if result != {'FINISHED'} or not new:
        raise ImportFailed(f"The {fmt.upper()} file imported no objects.")
    return owners, new


def import_model(context, path, fmt, *, name, task_id, task_type, prompt, options=None,
                 provenance=None, prebuilt=None):
    """Import `path` under a new Empty placed by `options` (placement, replace, size_mode,
    target_size, shading, a variation's row); returns the Empty, which carries the task's
    provenance. `prebuilt`, the import helper's .blend of it opened (`open_prebuilt`), is
    appended instead when it can be. On failure nothing new is left behind."""
    if fmt not in _IMPORTERS:
        raise ImportFailed(f"Cannot import a {fmt!r} file.")
    before = _snapshot()
    try:
        new = _append(prebuilt, before) if prebuilt else None
        owners = {}
        if not new:
            owners, new = _import(path, fmt, before)
        coll = _collection(context.scene)
        empty = bpy.data.objects.new(name, None)
        empty.empty_display_type = 'PLAIN_AXES'
        coll.objects.link(empty)
        empty["modelstream_task_id"] = task_id
        empty["modelstream_type"] = task_type
        empty["modelstream_prompt"] = prompt
        for key, value in (provenance or {}).items():
            empty[f"modelstream_{key}"] = value
        new_set = set(new)
        for obj in new:
            for owner in owners.get(obj, ()):
                owner.objects.unlink(obj)
            coll.objects.link(obj)
            if obj.parent not in new_set:
                obj.parent = empty
        _place(context, empty, new, options or {})
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


def _label(image, view, task_id, task_type, keep):
    """A result image named by task and view; `keep` gives it a fake user."""
    image.name = tasks.safe_name(f"{task_type}_{task_id[:8]}_{view}", 60)
    image["modelstream_task_id"] = task_id
    image["modelstream_view"] = view
    image.use_fake_user = keep


def load_images(images, *, task_id, task_type, keep=True):
    """Load downloaded result images as datablocks named by task and view, packed into
    the .blend so they travel with it; `keep` gives them a fake user so they are saved."""
    loaded = []
    try:
        for view, path in images:
            image = bpy.data.images.load(path, check_existing=False)
            loaded.append(image)
            image.pack()
            _label(image, view, task_id, task_type, keep)
    except Exception as e:
        for image in loaded:
            bpy.data.images.remove(image)
        raise ImportFailed(f"Loading the result images failed: {e}") from None
    return loaded


def _appended_previews(opened):
    """{view: image} of the preview images an opened .blend of the import helper
    appended with its model (packed already); none when its data is gone."""
    if opened is None or not _same_file(opened):
        return {}
    try:
        found = [(image.get("modelstream_view"), image) for image in opened[1].images
                 if image is not None]
    except ReferenceError:  # removed: the model was imported from its file instead
        return {}
    return {view: image for view, image in found if isinstance(view, str)}


def add_result(context, job, previews=True, opened=None):
    """Import a finished job's model (its preview images are a bonus: `previews` off
    leaves them for `load_previews`) or load its images. `opened` is its import helper's
    .blend opened already, else it is opened here when there is one. Returns what was
    added, for messages."""
    task_type = job.body["type"]
    if model_tasks.output_kind(task_type) == "file":
        return job.message  # a conversion is a file to keep: nothing enters the scene
    if model_tasks.output_kind(task_type) != "model":
        images = load_images(job.images, task_id=job.task_id, task_type=task_type)
        return ", ".join(image.name for image in images)
    prebuilt = opened or (open_prebuilt(job.prebuilt) if job.prebuilt else None)
    empty = import_model(
        context, job.output_path, job.output_format, name=tasks.describe(job.body),
        task_id=job.task_id, task_type=task_type, prompt=job.body.get("prompt", ""),
        options=job.import_options, provenance=_provenance(job), prebuilt=prebuilt)
    if task_type in (post_tasks.SEGMENT, post_tasks.COMPLETE):
        _name_parts(empty)
    _gather_lod(context, empty, job.import_options.get("lod"))
    if previews:
        load_previews(job, prebuilt)
    return empty.name


def load_previews(job, opened=None):
    """A landed model's preview images, when it has any: never saved with the file unless
    used, and a failure costs only them. Those its import helper's .blend (`opened`)
    appended with the model are named only; the others load from their files."""
    if not job.images or model_tasks.output_kind(job.body["type"]) != "model":
        return
    appended = _appended_previews(opened)
    for view, image in appended.items():
        _label(image, view, job.task_id, job.body["type"], keep=False)
    with contextlib.suppress(ImportFailed):
        load_images([(view, path) for view, path in job.images if view not in appended],
                    task_id=job.task_id, task_type=job.body["type"], keep=False)


def _service_name(obj):
    """The name the file gave an object: Blender adds .001 when the name is taken."""
    base, dot, number = obj.name.rpartition(".")
    return base if dot and number.isdigit() and len(number) == 3 else obj.name


def parts_of(root):
    """{part name: object} of a segmentation result's mesh parts."""
    return {obj[PART]: obj for obj in root.children_recursive
            if obj.type == 'MESH' and isinstance(obj.get(PART), str)}


def _name_parts(empty):
    """Each mesh of a segmentation is a part, named as the service named its node."""
    names = []
    for obj in empty.children_recursive:
        if obj.type == 'MESH':
            obj[PART] = tasks.safe_name(_service_name(obj), post_tasks.MAX_PART_NAME)
            names.append(obj[PART])
    empty[PARTS] = names


def lod_name(group, index):
    """`<group>_LOD<index>`: the suffix Unreal's and Unity's importers group into one
    asset with LODs."""
    return f"{group}_LOD{index}"


def _gather_lod(context, empty, lod):
    """An LOD lands named `<group>_LOD<n>` (its Empty and meshes), in the group's own
    collection; the history's values are checked, a bad one leaves the result as it is."""
    if not isinstance(lod, dict):
        return
    group, index = lod.get("group"), lod.get("index")
    if not (isinstance(group, str) and tasks.is_int(index)
            and 0 <= index < post_tasks.MAX_LODS):
        return
    group = tasks.safe_name(group, 48) or "model"
    name = lod_name(group, index)
    empty.name = name
    empty["modelstream_lod"] = index
    meshes = [o for o in empty.children_recursive if o.type == 'MESH']
    for obj in meshes:
        obj.name = name
    parent = _collection(context.scene)
    coll = bpy.data.collections.get(f"{group}_LODs")
    if coll is None:
        coll = bpy.data.collections.new(f"{group}_LODs")
    if coll.name not in parent.children:
        parent.children.link(coll)
    for obj in (empty, *empty.children_recursive):
        for owner in list(obj.users_collection):
            owner.objects.unlink(obj)
        coll.objects.link(obj)


def _provenance(job):
    """The seeds a task was sent with and which variation it is, to make it again; the
    task id of each step of a chain. A seed beyond a custom property's 32 bits is text."""
    found = {"seed": job.body.get("model_seed"), "texture_seed": job.body.get("texture_seed")}
    found = {name: value if 0 <= value <= tasks.MAX_SEED else str(value)
             for name, value in found.items() if tasks.is_int(value)}
    steps = job.import_options.get("steps")
    steps = {**(steps if isinstance(steps, dict) else {}), job.body.get("type"): job.task_id}
    for kind, task_id in steps.items():
        if kind in model_tasks.TYPES and isinstance(task_id, str):
            found[f"{kind}_task_id"] = task_id
    source = job.import_options.get("source")
    if isinstance(source, str) and source:
        found["source_object"] = tasks.safe_name(source, 63)
    index, count = job.import_options.get("row_index"), job.import_options.get("row_count")
    if tasks.is_int(index) and tasks.is_int(count):
        found["variation"] = f"{index + 1} of {count}"
    return found


def add_reference(context, path, task_id):
    """An image Empty at the 3D cursor, facing the front, to model against."""
    image = bpy.data.images.load(path, check_existing=True)
    image["modelstream_task_id"] = task_id
    image.pack()
    empty = bpy.data.objects.new(tasks.safe_name(f"Reference {task_id[:8]}"), None)
    empty.empty_display_type = 'IMAGE'
    empty.data = image
    empty.empty_display_size = 2.0
    empty.location = context.scene.cursor.location
    empty.rotation_euler = (1.5707963, 0.0, 0.0)
    empty["modelstream_task_id"] = task_id
    _collection(context.scene).objects.link(empty)
    return empty
