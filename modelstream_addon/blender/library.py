"""Every keeper an asset: a result saved as one .blend in the "ModelStream" asset library,
with tags, provenance and a catalog per task type, so it can be dragged from the
Asset Browser into any file later. Uses Blender's own asset machinery, no parallel UI.

The library is registered on first use under the extension's user folder and shows in
Preferences > File Paths > Asset Libraries, where the user may point it elsewhere.

The asset's preview is the service's rendered image of the task, else a small Workbench
render of the model. `bpy.data.libraries.write` keeps no object or collection preview on
Blender 4.3+ (it writes copies, and their copies drop previews), so a fresh Blender adds
the preview to the written file with Blender's own Load Custom Preview and saves it whole:
one road on every version. Headless it runs before `save` returns; in the GUI on a thread,
so Blender never waits for it.
"""

import os
import re
import subprocess
import sys
import uuid

import bpy
from bpy.props import StringProperty

from ..core import errors, model_tasks, paths, tasks
from . import capture, inputs, preferences, runtime
from .importer import result_root
from .operator_base import fail
from .user_files import user_folder

LIBRARY_NAME = "ModelStream"
CATALOG_FILE = "blender_assets.cats.txt"
_CATALOG_NAMESPACE = uuid.UUID("6f1c2b8e-4d0a-4d6b-9a55-0d7f3c1e2a90")
_STOP_WORDS = frozenset(("and", "the", "with", "for", "from"))  # 3+ letters only
PREVIEW_SIZE = 128  # the fallback render's side, in pixels
PREVIEW_TIMEOUT = 300  # seconds a fresh Blender may take to add a preview to a large asset
warnings = {}  # job id -> why Save Results to Library could not save its model
# Run by a fresh Blender: open the asset .blend, give the asset its preview, save it whole
# to a temporary name (no .blend1 backup), then put it in place.
_ADD_PREVIEW = """
import os, sys, bpy
blend, image, temporary = sys.argv[sys.argv.index("--") + 1:]
bpy.ops.wm.open_mainfile(filepath=blend, load_ui=False)
asset = next(c for c in bpy.data.collections if c.asset_data is not None)
with bpy.context.temp_override(id=asset):
    bpy.ops.ed.lib_id_load_custom_preview(filepath=image)
bpy.ops.wm.save_as_mainfile(filepath=temporary, compress=True, copy=True)
os.replace(temporary, blend)
"""


def catalog_id(task_type):
    """The same catalog for a task type in every library and session."""
    return str(uuid.uuid5(_CATALOG_NAMESPACE, task_type))


def library_dir(context=None):
    """The ModelStream library's folder, registering the library on first use."""
    context = context or bpy.context
    libraries = context.preferences.filepaths.asset_libraries
    found = libraries.get(LIBRARY_NAME)
    if found is None:
        path = user_folder("library")
        found = libraries.new(name=LIBRARY_NAME, directory=path)
    return asset_folder(bpy.path.abspath(found.path))


def asset_folder(folder):
    """`folder` made ready to hold assets: it exists and has the task type catalogs."""
    os.makedirs(folder, exist_ok=True)
    _write_catalogs(folder)
    return folder


def _write_catalogs(folder):
    """One catalog per task type, kept if the user has added their own."""
    path = os.path.join(folder, CATALOG_FILE)
    lines = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    if not lines:
        lines = ["# Blender asset catalog definitions, written by ModelStream.", "VERSION 1", ""]
    known = {line.split(":", 1)[0] for line in lines if ":" in line}
    for task_type in tasks.TASK_TYPES:
        if catalog_id(task_type) not in known:
            label = task_type.replace("_", " ").title()
            lines.append(f"{catalog_id(task_type)}:{LIBRARY_NAME}/{label}:{label}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def tags_for(prompt, task_type, limit=12):
    words = [w for w in re.findall(r"[^\W\d_]{3,}", prompt.lower()) if w not in _STOP_WORDS]
    return list(dict.fromkeys([*words[:limit], task_type]))


def save(context, root, folder=None):
    """Write `root`'s hierarchy as an asset .blend with a preview into `folder` (default:
    the ModelStream library); returns its path. The open file is left as it was (images
    are packed so the asset carries them)."""
    objects = [root, *root.children_recursive]
    task_id = str(root["modelstream_task_id"])
    task_type = str(root.get("modelstream_type", ""))
    prompt = str(root.get("modelstream_prompt", ""))
    for obj in objects:
        for slot in getattr(obj, "material_slots", ()):
            tree = getattr(slot.material, "node_tree", None)
            for node in tree.nodes if tree else ():
                image = getattr(node, "image", None)
                if image is not None and image.packed_file is None and image.source == 'FILE':
                    image.pack()
    folder = asset_folder(os.path.abspath(folder)) if folder else library_dir(context)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", tasks.safe_name(prompt or task_type)).strip("._")
    path = os.path.join(folder, f"{stem or 'model'}_{re.sub(r'[^A-Za-z0-9]', '', task_id)[:8]}"
                                ".blend")
    if os.path.dirname(os.path.realpath(path)) != os.path.realpath(folder):
        raise errors.ConfigError(f"Refusing to write outside the library folder {folder}.")
    coll = bpy.data.collections.new(tasks.safe_name(prompt or task_type, 60) or "ModelStream")
    try:
        for obj in objects:
            coll.objects.link(obj)
        coll.asset_mark()
        data = coll.asset_data
        data.description = prompt
        data.catalog_id = catalog_id(task_type) if task_type in tasks.TASK_TYPES else ""
        for tag in tags_for(prompt, task_type):
            data.tags.new(tag, skip_if_exists=True)
        for key in ("modelstream_task_id", "modelstream_type", "modelstream_prompt",
                    "modelstream_seed"):
            if key in root:
                data[key] = root[key]
        bpy.data.libraries.write(path, {coll}, fake_user=True, compress=True)
    finally:
        bpy.data.collections.remove(coll)
    _add_preview(context, root, path)
    return path


def save_job(context, job, folder=None):
    """Save a landed model job's result (its Empty) like Save to Library; returns the path."""
    root = find_root(context, object_name=job.imported_as)
    if root is None:
        raise errors.ConfigError(f"The result {job.imported_as!r} is not in this scene.")
    return save(context, root, folder)


def _preview_image(context, root):
    """(image, folder to delete after): the service's rendered preview of the task when it
    was downloaded, else a small render of the model; ('', '') when there is neither."""
    task_id = root["modelstream_task_id"]
    for job in reversed(runtime.jobs()):
        image = dict(job.images).get("preview", "") if job.task_id == task_id else ""
        if image and os.path.isfile(image):
            return image, ""
    workdir = inputs.new_workdir("previews")
    try:
        views = capture.capture_orbit(context, workdir, resolution=PREVIEW_SIZE,
                                      objects=[root], transparent=True, views=("front",))
    except capture.CaptureError as e:
        inputs.discard(workdir)
        print(f"ModelStream: no preview for {root.name}: {e}")
        return "", ""
    return views["front"], workdir


def _add_preview(context, root, path):
    """Give the asset in `path` its preview (see the module's docstring)."""
    image, workdir = _preview_image(context, root)
    if not image:
        return
    own = user_folder()
    binary = bpy.app.binary_path  # '' in the bpy module: its Python imports bpy instead
    blender = ([binary, "-b", "--factory-startup", "--python-exit-code", "1",
                "--python-expr"] if binary else [sys.executable, "-c"])
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}")
    command = [*blender, _ADD_PREVIEW, "--", path, image, temporary]

    def run():
        try:
            done = subprocess.run(command, capture_output=True, text=True,
                                  timeout=PREVIEW_TIMEOUT)
            if done.returncode:
                print(f"ModelStream: no preview for {path}: {done.stderr[-500:]}")
        except (OSError, subprocess.SubprocessError) as e:
            print(f"ModelStream: no preview for {path}: {e}")
        finally:
            paths.remove(folder, temporary)  # left by a failed run
            if workdir:
                paths.remove(own, workdir)

    if _in_background():
        run()
    else:
        runtime.engine().call(run)


def _in_background():
    """Headless, the preview is added before `save` returns; in the GUI on a thread. A
    function, so that bench_stalls.py can time the GUI's path in the bpy module, which is
    always background."""
    return bpy.app.background


def find_root(context, task_id="", object_name=""):
    """The result Empty named, else the one with this task id, else the active one's."""
    if object_name:
        return result_root(context.scene.objects.get(object_name))
    if task_id:
        return next((o for o in context.scene.objects if o.type == 'EMPTY'
                     and o.get("modelstream_task_id") == task_id), None)
    return result_root(context.active_object)


def save_landed(context, job):
    """Save Results to Library (a preference): a landed model is saved as an asset too. A
    failure is a warning (the job's message, `warnings`, the console), never a lost result.
    A runtime.on_landed handler while the add-on is enabled."""
    if (not preferences.get(context).save_results_to_library
            or model_tasks.output_kind(job.body.get("type", "")) != "model"):
        return
    try:
        save_job(context, job)
    except (errors.ModelStreamError, OSError, RuntimeError) as e:
        warning = f"{job.imported_as} was not saved to the library: {e}"
        warnings[job.id] = warning
        runtime.engine().mark_imported(job.id, job.imported_as, f"{job.message}; {warning}")
        print(f"ModelStream: WARNING: {warning}")


class MODELSTREAM_OT_save_to_library(bpy.types.Operator):
    """Save a generated model to the ModelStream asset library (one .blend with tags,
    its task id and prompt), to drag into any file later"""

    bl_idname = "modelstream.save_to_library"
    bl_label = "Save to Library"

    task_id: StringProperty(name="Task ID", options={'SKIP_SAVE', 'HIDDEN'},
                            description="The result of this task (default: the selection)")

    @classmethod
    def poll(cls, context):
        if not any("modelstream_task_id" in o and o.type == 'EMPTY'
                   for o in context.scene.objects):
            cls.poll_message_set("Generate a model first; then select it")
            return False
        return True

    def execute(self, context):
        root = find_root(context, self.task_id.strip())
        if root is None:
            return fail(self, context, "Select a model generated by ModelStream (or give "
                        "the task id of one in this scene).")
        try:
            path = save(context, root)
        except (errors.ModelStreamError, OSError, RuntimeError) as e:
            return fail(self, context, f"Saving to the library failed: {e}")
        self.report({'INFO'}, f"Saved {root.name} to the {LIBRARY_NAME} library: {path}")
        return {'FINISHED'}


def register():
    bpy.utils.register_class(MODELSTREAM_OT_save_to_library)
    runtime.on_landed.append(save_landed)


def unregister():
    runtime.on_landed.remove(save_landed)
    bpy.utils.unregister_class(MODELSTREAM_OT_save_to_library)
