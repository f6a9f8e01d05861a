"""Save to Library (issue 13): a result becomes an asset .blend that a fresh Blender lists
with its preview, tags, catalog and provenance, and that appends with its mesh and
textures and no missing files."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ADDON, ROOT

READ = """
import json, sys, bpy
path = sys.argv[1]
with bpy.data.libraries.load(path, assets_only=True) as (src, dst):
    listed = [str(name) for name in src.collections]
    dst.collections = list(listed)
coll = dst.collections[0]
data = coll.asset_data
meshes = [o for o in coll.all_objects if o.type == 'MESH']
bpy.ops.file.find_missing_files(directory="/nonexistent")
preview = coll.preview
pixels = list(preview.image_pixels_float) if preview is not None else []
print("FOUND " + json.dumps({
    "preview_size": list(preview.image_size) if preview is not None else [0, 0],
    "preview_alpha": {"corner": pixels[3] if pixels else None,
                      "most": max(pixels[3::4], default=None)},
    "preview_sum": sum(pixels),
    "listed": listed, "tags": [t.name for t in data.tags], "catalog": data.catalog_id,
    "description": data.description, "task_id": data.get("modelstream_task_id"),
    "meshes": len(meshes), "faces": sum(len(o.data.polygons) for o in meshes),
    "images": [(i.name, i.packed_file is not None) for i in bpy.data.images
               if i.source == 'FILE'],
}))
"""


def read_asset(path):
    proc = subprocess.run([sys.executable, "-c", READ, path], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("FOUND "))
    return json.loads(line[len("FOUND "):])


def test_save_to_library_makes_an_asset_a_fresh_blender_can_use(blender, addon, service):
    bpy = blender
    assert bpy.ops.modelstream.generate(prompt="a carved wooden chair", face_limit=400,
                                        texture=True) == {'FINISHED'}
    root = bpy.context.view_layer.objects.active
    before = (len(bpy.data.collections), len(bpy.data.objects))
    assert bpy.ops.modelstream.save_to_library() == {'FINISHED'}
    assert (len(bpy.data.collections), len(bpy.data.objects)) == before  # file unchanged
    library = bpy.context.preferences.filepaths.asset_libraries[addon.library.LIBRARY_NAME]
    folder = bpy.path.abspath(library.path)
    assert "modelstream_addon" in folder
    [path] = [p for p in __import__("glob").glob(f"{folder}/*.blend")
              if root["modelstream_task_id"][:8] in p]
    found = read_asset(path)
    assert len(found["listed"]) == 1
    assert {"carved", "wooden", "chair", "text_to_model"} <= set(found["tags"])
    assert found["catalog"] == addon.library.catalog_id("text_to_model")
    assert found["description"] == "a carved wooden chair"
    assert found["task_id"] == root["modelstream_task_id"]
    assert found["meshes"] >= 1 and found["faces"] > 0
    assert found["images"] and all(packed for _, packed in found["images"])
    with open(f"{folder}/{addon.library.CATALOG_FILE}", encoding="utf-8") as f:
        assert addon.library.catalog_id("text_to_model") in f.read()
    assert min(found["preview_size"]) > 0 and found["preview_sum"] > 0, "no asset preview"
    # the service's rendered preview (an opaque picture), not a render of the model
    assert found["preview_alpha"]["corner"] == 1.0, found["preview_alpha"]
    assert not [p for p in os.listdir(folder) if p.startswith(".") or p.endswith(".blend1")]


def test_without_the_services_preview_the_asset_shows_a_render_of_the_model(
        blender, addon, service):
    result = addon.api.generate(prompt="a clay teapot", face_limit=300)
    job = addon.runtime.job(result.job_id)
    preview = dict(job.images)["preview"]
    os.remove(preview)  # as when the service sent none, or the cache was cleared
    found = read_asset(addon.api.save_to_library(result.task_id))
    assert min(found["preview_size"]) > 0 and found["preview_sum"] > 0, "no asset preview"
    alpha = found["preview_alpha"]  # a render of the model on a transparent background
    assert alpha["corner"] == 0.0 and alpha["most"] > 0.5, alpha
    previews = blender.utils.extension_path_user(ADDON, path="previews")
    assert not os.path.isdir(previews) or not os.listdir(previews), "render left behind"


def test_save_to_library_needs_a_generated_model(blender):
    bpy = blender
    bpy.ops.mesh.primitive_cube_add()
    assert not bpy.ops.modelstream.save_to_library.poll()


def test_save_to_library_from_the_python_api_and_the_jobs_list(blender, addon, service):
    import os

    bpy = blender
    result = addon.api.generate(prompt="a stone lantern", face_limit=300)
    bpy.ops.object.select_all(action='DESELECT')
    bpy.context.view_layer.objects.active = None
    path = addon.api.save_to_library(result.task_id)
    assert os.path.isfile(path) and result.task_id[:8] in path
    assert read_asset(path)["task_id"] == result.task_id
    os.remove(path)
    assert bpy.ops.modelstream.save_to_library(task_id=result.task_id) == {'FINISHED'}
    assert os.path.isfile(path)
    with pytest.raises(addon.api.ValidationError):
        addon.api.save_to_library("no-such-task")


def library_files(bpy, addon):
    library = bpy.context.preferences.filepaths.asset_libraries.get(addon.library.LIBRARY_NAME)
    folder = bpy.path.abspath(library.path) if library else ""
    return {p for p in __import__("glob").glob(f"{folder}/*.blend")} if folder else set()


def test_save_results_to_library_saves_every_model_that_lands(blender, addon, service):
    bpy = blender
    prefs = addon.preferences.get()
    assert not prefs.save_results_to_library  # off unless the user turns it on
    before = library_files(bpy, addon)
    addon.api.generate(prompt="a brass key", face_limit=300)
    assert library_files(bpy, addon) == before, "saved although the preference is off"
    prefs.save_results_to_library = True
    try:
        assert bpy.ops.modelstream.generate(prompt="a tin robot", face_limit=300) == {
            'FINISHED'}
        root = bpy.context.view_layer.objects.active
        added = library_files(bpy, addon) - before
        assert len(added) == 1, "the landed model was not saved to the library"
        [path] = added
        assert root["modelstream_task_id"][:8] in path
        found = read_asset(path)
        assert found["task_id"] == root["modelstream_task_id"]
        assert min(found["preview_size"]) > 0, "no asset preview"
        images = addon.api.generate("text_to_image", prompt="a tin robot poster")
        assert images.ok and len(library_files(bpy, addon) - before) == 1  # models only
    finally:
        prefs.save_results_to_library = False


def test_a_result_that_cannot_be_saved_to_the_library_still_lands(blender, addon, service,
                                                                  tmp_path, capfd):
    bpy = blender
    prefs = addon.preferences.get()
    library = bpy.context.preferences.filepaths.asset_libraries.get(
        addon.library.LIBRARY_NAME) or bpy.context.preferences.filepaths.asset_libraries.new(
        name=addon.library.LIBRARY_NAME, directory=str(tmp_path))
    kept = library.path
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where a folder should be")
    library.path = str(blocker / "library")  # a folder that cannot be made
    prefs.save_results_to_library = True
    try:
        capfd.readouterr()
        assert bpy.ops.modelstream.generate(prompt="a paper lantern", face_limit=300) == {
            'FINISHED'}
        root = bpy.context.view_layer.objects.active
        assert root is not None and root.get("modelstream_prompt") == "a paper lantern"
        job = addon.runtime.jobs()[-1]
        assert job.state == "IMPORTED" and job.imported_as == root.name
        assert "not saved to the library" in job.message
        out = capfd.readouterr()
        warning = f"Warning: {root.name} was not saved to the library: "
        assert warning in out.out + out.err, "the operator reported no WARNING"
    finally:
        prefs.save_results_to_library = False
        library.path = kept
