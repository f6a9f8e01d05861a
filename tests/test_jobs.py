"""Jobs in the real add-on: resume after a restart, placement, failed imports, job actions,
chains and the Python API, against the local service."""

import os
import time

import pytest

from tests.conftest import (
    ADDON,
    SlowHistory,
    needs_fifo,
    refused,
    task_input,
    wait_until,
    write_png,
)


def data_counts(bpy):
    return {name: len(getattr(bpy.data, name)) for name in (
        "objects", "meshes", "materials", "images", "collections", "textures")}


def test_resume_after_a_simulated_restart_imports_the_result(blender, addon, service):
    import addon_utils

    bpy = blender
    runtime = addon.runtime
    job, = runtime.start_jobs(bpy.context, {"task_type": "text_to_model", "prompt": "a buoy",
                                          "face_limit": 500})
    wait_until(lambda: runtime.engine().wait(job.id, timeout=0.1).task_id, 30,
               "the task was never created")
    addon_utils.disable(ADDON, default_set=True)
    addon_utils.enable(ADDON, default_set=True)
    runtime = addon.runtime
    restored = runtime.engine().jobs[job.id]
    assert not restored.done and restored.task_id == job.task_id
    runtime.wait_all(bpy.context)
    assert restored.state == "IMPORTED", restored.error
    assert "restarted" in restored.message
    assert service.stats()["tasks_created"] == 1
    empty = bpy.data.objects[restored.imported_as]
    assert empty["modelstream_task_id"] == job.task_id


@needs_fifo
@pytest.mark.parametrize("taken_in_by", ["the timer", "a script"])
def test_in_the_gui_the_history_loads_on_a_thread_then_is_listed_and_resumed(
        blender, addon, service, monkeypatch, taken_in_by):
    """Enabling in the GUI never waits for the history: the panel says it is loading, the
    timer takes it in (or a script that reads the jobs waits for it), lists its jobs and
    resumes a task still running once online access is on (bench_jobs.py times this path
    with 5,000 jobs). A named pipe stands in for a slow disk; the timer callback is called
    here, as headless Blender never fires it."""
    from modelstream_addon.core import history
    from tests.test_ui_draw import draw

    bpy = blender
    runtime = addon.runtime
    wm = bpy.context.window_manager
    client = addon.preferences.make_client(bpy.context)
    running = {"id": os.urandom(6).hex(), "task_id": client.create_task(
        {"type": "text_to_model", "prompt": "a lighthouse", "face_limit": 400}),
        "state": "RUNNING", "body": {"type": "text_to_model", "prompt": "a lighthouse"},
        "created": time.time()}
    client.close()
    runtime.shutdown()
    path = os.path.join(bpy.utils.extension_path_user(ADDON), "history.json")
    records = [*history.load(path), running]
    os.remove(path)
    slow = SlowHistory(path, records)
    with monkeypatch.context() as patch:
        patch.setattr(runtime, "_gui", lambda: True)
        try:
            runtime.start()
            assert runtime.history_loading() and not wm.modelstream_jobs
            assert ("label", "Loading history...") in draw(bpy.types.MODELSTREAM_PT_jobs, bpy)
            bpy.context.preferences.system.use_online_access = False  # resumed later, then
            slow.feed()
            if taken_in_by == "a script":
                assert [j.id for j in runtime.jobs()] == [r["id"] for r in records]
            wait_until(lambda: runtime._timer() and not runtime.history_loading(), 30,
                       "the timer never took the history in")
            assert [row.job_id for row in wm.modelstream_jobs] == [r["id"] for r in records]
            job = runtime.job(running["id"])
            bpy.context.preferences.system.use_online_access = True
            wait_until(lambda: runtime._timer() and job.done, 60,
                       "the task still running was not resumed")
            assert job.state == "IMPORTED" and "restarted" in job.message, job.error
        finally:
            slow.feed()
            runtime.shutdown()
    runtime.start()


def test_replace_selection_takes_place_rotation_and_size(blender):
    bpy = blender
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(2.0, -1.0, 0.5),
                                    rotation=(0.0, 0.0, 0.7))
    old = bpy.context.object
    old.scale = (3.0, 1.0, 1.0)
    bpy.context.view_layer.update()
    assert bpy.ops.modelstream.generate(prompt="a sofa", face_limit=500,
                                        placement='REPLACE') == {'FINISHED'}
    empty = bpy.context.view_layer.objects.active
    assert tuple(round(v, 5) for v in empty.location) == (2.0, -1.0, 0.5)
    assert round(empty.rotation_euler.z, 5) == 0.7
    assert old.hide_get() and old.hide_render
    assert largest_side(bpy, empty) == pytest.approx(3.0, abs=1e-4)


def largest_side(bpy, empty):
    from mathutils import Vector

    bpy.context.view_layer.update()
    meshes = [o for o in empty.children_recursive if o.type == 'MESH']
    rotation = empty.matrix_world.to_quaternion().inverted()
    corners = [rotation @ (o.matrix_world @ Vector(c)) for o in meshes for c in o.bound_box]
    return max(max(c[i] for c in corners) - min(c[i] for c in corners) for i in range(3))


def test_fit_size_scales_the_empty_not_the_mesh(blender):
    bpy = blender
    assert bpy.ops.modelstream.generate(prompt="a tall tower", face_limit=500,
                                        size_mode='FIT', target_size=2.5,
                                        placement='ORIGIN') == {'FINISHED'}
    empty = bpy.context.view_layer.objects.active
    assert tuple(empty.location) == (0.0, 0.0, 0.0)
    assert largest_side(bpy, empty) == pytest.approx(2.5, abs=1e-4)
    mesh = [o for o in empty.children_recursive if o.type == 'MESH'][0]
    assert tuple(mesh.scale) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("placement, expected", [
    ('CURSOR', (4.0, -3.0, 2.0)),
    ('ORIGIN', (0.0, 0.0, 0.0)),
])
def test_placement_with_the_cursor_away_from_the_origin(blender, placement, expected):
    bpy = blender
    bpy.context.scene.cursor.location = (4.0, -3.0, 2.0)
    assert bpy.ops.modelstream.generate(prompt="a milestone", face_limit=300,
                                        placement=placement) == {'FINISHED'}
    empty = bpy.context.view_layer.objects.active
    assert empty["modelstream_prompt"] == "a milestone"
    assert tuple(round(v, 5) for v in empty.matrix_world.translation) == expected


def test_smooth_and_flat_shading(blender):
    bpy = blender
    for shading, smooth in (('SMOOTH', True), ('FLAT', False)):
        assert bpy.ops.modelstream.generate(prompt="a pebble", face_limit=300,
                                            shading=shading) == {'FINISHED'}
        mesh = [o for o in bpy.context.view_layer.objects.active.children_recursive
                if o.type == 'MESH'][0]
        assert all(p.use_smooth == smooth for p in mesh.data.polygons)


def test_a_failed_import_leaves_nothing_behind(blender, addon, tmp_path):
    import json
    import struct

    bpy = blender
    doc = json.dumps({"asset": {"version": "2.0"}, "scenes": [{"nodes": [0]}], "scene": 0,
                      "nodes": [{"mesh": 0}], "meshes": [{"primitives": [
                          {"attributes": {"POSITION": 0}, "material": 0}]}],
                      "materials": [{"name": "broken"}],
                      "accessors": [{"bufferView": 5, "componentType": 5126, "count": 3,
                                     "type": "VEC3"}]}).encode()
    doc += b" " * (-len(doc) % 4)
    path = tmp_path / "broken.glb"
    path.write_bytes(struct.pack("<4sII", b"glTF", 2, 20 + len(doc))
                     + struct.pack("<II", len(doc), 0x4E4F534A) + doc)
    before = data_counts(bpy)
    job = addon.job.Job(body={"type": "text_to_model", "prompt": "broken"}, task_id="t-broken",
                        state=addon.job.READY, output_path=str(path), output_format="glb")
    with pytest.raises(addon.importer.ImportFailed):
        addon.importer.add_result(bpy.context, job)
    assert data_counts(bpy) == before


def test_job_actions(blender, addon, service, capfd):
    bpy = blender
    wm = bpy.context.window_manager
    assert bpy.ops.modelstream.generate(prompt="a mug", face_limit=400) == {'FINISHED'}
    wm.modelstream_job_index = len(wm.modelstream_jobs) - 1
    job = addon.runtime.engine().jobs[wm.modelstream_jobs[-1].job_id]
    # Headless Blender's clipboard reads back empty, so the report says what was copied.
    capfd.readouterr()
    assert bpy.ops.modelstream.copy_task_id() == {'FINISHED'}
    assert f"Copied {job.task_id}" in "".join(capfd.readouterr())
    os.remove(job.output_path)
    assert bpy.ops.modelstream.import_job() == {'FINISHED'}
    assert job.state == "IMPORTED" and os.path.exists(job.output_path)
    assert len([o for o in bpy.data.objects if o.get("modelstream_task_id") == job.task_id]) == 2
    assert bpy.ops.modelstream.use_result(use='REFINE') == {'FINISHED'}
    settings = bpy.context.scene.modelstream
    assert settings.task_type == "refine_model" and settings.draft_model_task_id == job.task_id
    path = job.output_path
    assert bpy.ops.modelstream.remove_job() == {'FINISHED'}
    assert job.id not in addon.runtime.engine().jobs and not os.path.exists(path)
    assert job.id not in [j.job_id for j in wm.modelstream_jobs]
    assert service.stats()["tasks_created"] == 1


def test_import_task_by_id_and_retry(blender, addon, service):
    from modelstream_addon.core.client import ModelStreamClient
    from tests.conftest import KEY

    bpy = blender
    task_id = ModelStreamClient(KEY, service.url).create_task(
        {"type": "text_to_model", "prompt": "a lighthouse", "face_limit": 300})
    assert bpy.ops.modelstream.import_task(task_id=task_id) == {'FINISHED'}
    empty = [o for o in bpy.data.objects if o.get("modelstream_task_id") == task_id][0]
    assert empty["modelstream_prompt"] == "a lighthouse"
    refused(bpy.ops.modelstream.import_task, task_id="no-such-task")
    wm = bpy.context.window_manager
    failed = wm.modelstream_jobs[-1]
    assert failed.state == "FAILED" and "not found" in failed.error.lower()
    service.faults(next_status="failed")
    refused(bpy.ops.modelstream.generate, prompt="a gate", face_limit=300)
    wm.modelstream_job_index = len(wm.modelstream_jobs) - 1
    assert bpy.ops.modelstream.retry_job() == {'FINISHED'}
    assert wm.modelstream_jobs[-1].state == "IMPORTED"


def test_image_result_chains(blender, tmp_path):
    bpy = blender
    wm = bpy.context.window_manager
    assert bpy.ops.modelstream.generate(task_type="text_to_image",
                                        prompt="a sketch of a teapot") == {'FINISHED'}
    wm.modelstream_job_index = len(wm.modelstream_jobs) - 1
    assert bpy.ops.modelstream.use_result(use='REFERENCE') == {'FINISHED'}
    ref = [o for o in bpy.data.objects if o.empty_display_type == 'IMAGE'][0]
    assert ref.data and ref["modelstream_task_id"]
    assert bpy.ops.modelstream.use_result(use='IMAGE_INPUT') == {'FINISHED'}
    settings = bpy.context.scene.modelstream
    assert settings.task_type == "image_to_model" and os.path.isfile(settings.image_path)
    assert bpy.ops.modelstream.generate(face_limit=300) == {'FINISHED'}


def test_refine_selected_reads_the_task_id_from_the_empty(blender, service):
    bpy = blender
    assert bpy.ops.modelstream.refine_selected.poll() is False
    assert bpy.ops.modelstream.generate(prompt="an older stool", face_limit=300) == {'FINISHED'}
    assert bpy.ops.modelstream.generate(prompt="a draft chair", face_limit=300) == {'FINISHED'}
    draft = bpy.context.view_layer.objects.active["modelstream_task_id"]
    assert bpy.ops.modelstream.refine_selected() == {'FINISHED'}
    refined = bpy.context.view_layer.objects.active
    assert refined["modelstream_type"] == "refine_model"
    assert task_input(service, refined["modelstream_task_id"])["draft_model_task_id"] == draft


def test_python_api(blender, addon, service, tmp_path):
    bpy = blender
    api = addon.api
    result = api.generate(prompt="a small boat", face_limit=300)
    assert result.ok and bpy.data.objects[result.object_name]
    ids = [api.submit(prompt=f"a stool {i}", face_limit=200) for i in range(3)]
    results = api.wait(ids)
    assert [r.ok for r in results] == [True] * 3
    with pytest.raises(api.ValidationError, match="face_limit"):
        api.submit(prompt="a cup", face_limit=-1)
    with pytest.raises(api.ValidationError, match="colour"):
        api.submit(prompt="a cup", colour="red")
    service.faults(next_status="banned")
    with pytest.raises(api.TaskFailedError, match="banned"):
        api.generate(prompt="a forbidden thing", face_limit=200)
    image = write_png(tmp_path / "in.png", 64, 64)
    assert api.generate("image_to_model", image_path=image, face_limit=200).ok
    assert api.status(result.task_id)["status"] == "success"
    imported = api.import_task(result.task_id)
    assert imported.ok and imported.object_name != result.object_name


def test_the_job_list_survives_loading_another_file(blender, tmp_path):
    bpy = blender
    assert bpy.ops.modelstream.generate(prompt="a vase", face_limit=200) == {'FINISHED'}
    count = len(bpy.context.window_manager.modelstream_jobs)
    path = str(tmp_path / "other.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.open_mainfile(filepath=path)
    assert len(bpy.context.window_manager.modelstream_jobs) == count


def test_tasks_wait_for_online_access_to_resume(blender, addon, service):
    import addon_utils

    bpy = blender
    job, = addon.runtime.start_jobs(bpy.context, {"task_type": "text_to_model",
                                                "prompt": "a lantern", "face_limit": 300})
    wait_until(lambda: addon.runtime.engine().wait(job.id, timeout=0.1).task_id, 30,
               "the task was never created")
    addon_utils.disable(ADDON, default_set=True)
    bpy.context.preferences.system.use_online_access = False
    addon_utils.enable(ADDON, default_set=True)
    runtime = addon.runtime
    restored = runtime.engine().jobs[job.id]
    assert not restored.done and runtime.engine().unfinished() == [restored]
    bpy.context.preferences.system.use_online_access = True
    runtime.wait_all(bpy.context)
    assert restored.state == "IMPORTED", restored.error
    assert service.stats()["tasks_created"] == 1


def test_extra_params_override_an_option_and_the_job_says_so(blender, addon, service):
    from tests.conftest import task_input

    result = addon.api.generate(prompt="a kettle", face_limit=5000,
                                extra_params='{"face_limit": 321, "model_seed": 4}')
    job = addon.runtime.job(result.job_id)
    assert "face_limit" in job.note and "overriding" in job.note
    sent = task_input(service, result.task_id)
    assert sent["face_limit"] == 321 and sent["model_seed"] == 4
    plain = addon.api.generate(prompt="a kettle", face_limit=400)
    assert addon.runtime.job(plain.job_id).note == ""
