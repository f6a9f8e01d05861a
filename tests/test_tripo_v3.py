"""Tripo API v3 end to end: the add-on with MODELSTREAM_SERVICE=tripo-v3, headless, against
the local service's v3 paths (issue 10), through a relay that notes each request's path."""


import pytest

from tests.conftest import ADDON, wait_until, write_png
from tests.test_ui_draw import draw


def paths(relay, method):
    return [path for seen_method, path in relay.seen if seen_method == method]


def test_text_to_model_over_v3(blender, addon, v3):
    bpy = blender
    assert bpy.ops.modelstream.generate(prompt="a v3 chair", face_limit=300) == {'FINISHED'}
    job = addon.runtime.jobs()[-1]
    assert job.service == "tripo-v3" and job.state == "IMPORTED", job.error
    assert paths(v3, "POST") == ["/v3/generation/text-to-model"]
    assert f"/v3/tasks/{job.task_id}" in paths(v3, "GET")
    assert not [p for _, p in v3.seen if p.startswith("/tripo/")]
    assert job.credits > 0, "the task's credits_consumed was not recorded"
    assert bpy.data.objects[job.imported_as]["modelstream_task_id"] == job.task_id


def test_image_to_model_uploads_to_v3_files(blender, addon, v3, tmp_path):
    bpy = blender
    assert bpy.ops.modelstream.generate(
        task_type="image_to_model", image_source='FILE', face_limit=300,
        image_path=write_png(tmp_path / "photo.png", 64, 64)) == {'FINISHED'}
    job = addon.runtime.jobs()[-1]
    assert job.state == "IMPORTED" and job.transport == "upload", job.error
    assert paths(v3, "POST") == ["/v3/files", "/v3/generation/image-to-model"]


def test_the_v3_balance_is_shown(blender, addon, v3):
    runtime = addon.runtime
    assert runtime.refresh_balance() is not None
    wait_until(runtime.poll_balance, 15, "the balance request never came back")
    assert runtime.balance and runtime.balance_service == "tripo-v3"
    assert "/v3/account/balance" in paths(v3, "GET")
    shown = draw(blender.types.MODELSTREAM_PT_generate, blender)
    assert ("label", f"Tripo API v3 credits: {runtime.balance}") in shown


def test_a_job_resumed_after_restart_polls_the_v3_service_that_created_it(
        blender, addon, v3, monkeypatch):
    import addon_utils

    runtime = addon.runtime
    job, = runtime.start_jobs(blender.context, {"task_type": "text_to_model",
                                              "prompt": "a v3 buoy", "face_limit": 300})
    wait_until(lambda: runtime.engine().wait(job.id, timeout=0.1).task_id, 30,
               "the task was never created")
    addon_utils.disable(ADDON, default_set=True)
    monkeypatch.setenv("MODELSTREAM_SERVICE", "modelstream")  # the choice changed meanwhile
    before = len(v3.seen)
    addon_utils.enable(ADDON, default_set=True)
    runtime = addon.runtime
    restored = runtime.engine().jobs[job.id]
    assert restored.service == "tripo-v3"
    runtime.wait_all(blender.context)
    assert restored.state == "IMPORTED", restored.error
    after = [path for _, path in v3.seen[before:]]
    assert f"/v3/tasks/{job.task_id}" in after
    assert not [p for p in after if p.startswith("/tripo/")]


@pytest.mark.parametrize("task_type, args", [
    ("text_to_model", {"prompt": "a tin can", "face_limit": 300}),
    ("text_to_image", {"prompt": "a tin can"}),
])
def test_main_flows_through_a_gateway_passing_v3_results(blender, service, task_type, args):
    """ModelStream's v2 paths answering with v3-shaped results (a gateway passing them
    through): the same flows land."""
    bpy = blender
    service.faults(outputs="v3")
    assert bpy.ops.modelstream.generate(task_type=task_type, **args) == {'FINISHED'}
    job = bpy.context.window_manager.modelstream_jobs[-1]
    assert job.state == "IMPORTED", job.error
    assert service.stats()["requests_by_api"]["v2"]["get"] >= 1


def test_multiview_chain_through_a_gateway_passing_v3_results(blender, service, tmp_path):
    bpy = blender
    service.faults(outputs="v3")
    assert bpy.ops.modelstream.generate(
        task_type="generate_multiview_image", prompt="a robot",
        image_path=write_png(tmp_path / "robot.png", 64, 64)) == {'FINISHED'}
    source = bpy.context.window_manager.modelstream_jobs[-1].task_id
    assert bpy.ops.modelstream.generate(task_type="edit_multiview_image",
                                        prompt_left="a red arm",
                                        original_task_id=source) == {'FINISHED'}
    assert bpy.context.window_manager.modelstream_jobs[-1].state == "IMPORTED"
