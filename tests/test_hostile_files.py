"""Hostile files end to end: the real add-on in the real bpy wheel asks the local service for
a model or an image and gets a file that must never reach Blender's importers. The job fails
with the check's reason and the task id, the file is gone, the scene is as it was."""

import os

import pytest

from tests.conftest import refused
from tests.test_addon import scene_state
from tests.test_file_checks import huge_png


@pytest.mark.parametrize("fault, args, words", [
    ("external_uri_glb", {}, "refers to a file outside it"),
    ("bogus_fbx", {"quad": True}, "ends past its parent or the file"),
    ("huge_png", {"task_type": "text_to_image"}, "20000x20000 px"),
])
def test_a_hostile_download_fails_the_job_and_leaves_nothing(
        blender, addon, service, fault, args, words):
    bpy = blender
    bpy.ops.mesh.primitive_cube_add()
    before = scene_state(bpy)
    service.faults(**{fault: 1})
    message = refused(bpy.ops.modelstream.generate, prompt="a wooden chair", face_limit=500,
                      **args)
    job = bpy.context.window_manager.modelstream_jobs[-1]
    assert words in message and f"task {job.task_id}" in message, message
    assert job.state == "FAILED" and words in job.error
    assert scene_state(bpy) == before
    downloads = addon.runtime.engine().download_dir
    left = [name for name in os.listdir(downloads) if name.startswith(job.task_id)]
    assert left == [], f"the refused file is still on disk: {left}"
    assert service.stats()["faults"][fault] == 1


def test_a_huge_input_image_is_refused_before_anything_is_sent(blender, service, tmp_path):
    bpy = blender
    before = scene_state(bpy)
    message = refused(bpy.ops.modelstream.generate, task_type="image_to_model",
                      image_path=huge_png(tmp_path / "huge.png"))
    assert "20000x20000 px" in message and "huge.png" in message
    assert scene_state(bpy) == before
    requests = service.stats()["requests"]
    assert requests["create"] == 0 and requests["upload"] == 0


def test_fbx_files_blender_writes_pass_the_check(blender, addon, tmp_path):
    bpy = blender
    bpy.ops.mesh.primitive_monkey_add()
    path = str(tmp_path / "monkey.fbx")
    assert bpy.ops.export_scene.fbx(filepath=path) == {'FINISHED'}
    assert addon.formats.check_model_file(path, folder=str(tmp_path)) == "fbx"
