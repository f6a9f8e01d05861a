"""A result lands the moment it is ready: the add-on's timer calls again soon while a job may
be READY any moment, and a READY job it follows is in the scene when that call returns
(headless Blender never fires the timer: it is called here at the interval it returns)."""

import time


def test_the_timer_hurries_near_the_end_and_lands_a_ready_job_in_the_same_call(blender,
                                                                                addon):
    bpy = blender
    runtime = addon.runtime
    floor = runtime.engine().poll_min
    runtime.set_poll_floor(0.2)  # polls often enough to see the task running near its end
    try:
        job, = runtime.start_jobs(bpy.context, {"task_type": "text_to_model",
                                                "prompt": "a sundial", "face_limit": 500})
        runtime._will_land(job.id, "")  # what runtime.follow does in the GUI
        calls = []
        deadline = time.monotonic() + 60
        while job.state != "IMPORTED":
            assert time.monotonic() < deadline, f"the job never landed: {job.state} {job.error}"
            interval = runtime._timer()
            calls.append((job.state, job.running_left_time, interval))
            assert job.state != "READY", "a READY job was left for a later timer call"
            time.sleep(interval)
    finally:
        runtime.set_poll_floor(floor)
    near = [c for c in calls if c[0] == "DOWNLOADING"
            or c[0] == "RUNNING" and 0 < c[1] <= runtime.NEAR_END]
    assert near, f"the job was never seen near its end: {calls}"
    assert {c[2] for c in near} == {runtime.LANDING_TICK}, near
    assert bpy.data.objects[job.imported_as]
    assert runtime._timer() == runtime.TICK_SECONDS, "the timer still hurries with no job left"


def test_a_landing_holds_the_workers_while_it_imports(blender, addon, monkeypatch):
    """Blender's importer runs with the engine's workers holding their next request."""
    bpy = blender
    runtime, importer = addon.runtime, addon.importer
    held = []
    glb = importer._IMPORTERS["glb"]

    def noting(path):
        held.append(runtime.engine().settings.quiet.held)
        return glb(path)

    monkeypatch.setitem(importer._IMPORTERS, "glb", noting)
    assert bpy.ops.modelstream.generate(prompt="a quiet bell", face_limit=300) == {'FINISHED'}
    assert held == [True], held
    assert not runtime.engine().settings.quiet.held, "the workers were left held"
