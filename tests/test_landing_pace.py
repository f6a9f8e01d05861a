"""In the GUI a row of variations that arrives at once lands one import per timer call, so
no frame holds every import of the row (bench_stalls.py measures the frames); each still
lands, in the row's order, its preview images in the call after its model."""

import threading

from tests.conftest import wait_until


def test_a_row_ready_at_once_lands_one_per_timer_call(blender, addon):
    bpy = blender
    runtime = addon.runtime
    row = runtime.start_jobs(bpy.context, {"task_type": "text_to_model", "prompt": "a stool",
                                           "face_limit": 400, "variations": 3})
    for job in row:
        runtime._will_land(job.id, "")  # what runtime.follow does in the GUI
    names = {f"modelstream-{job.id}" for job in row}
    # The engine's launcher starts them a moment later (each task takes over a second).
    wait_until(lambda: names <= {t.name for t in threading.enumerate()}, 60,
               "the row's workers never started")
    wait_until(lambda: not names & {t.name for t in threading.enumerate()}, 60,
               "the row's workers never finished")
    landed, previews = [], []

    def loaded_previews(job):
        return sum(1 for image in bpy.data.images
                   if image.get("modelstream_task_id") == job.task_id)

    for _ in range(2 * len(row) + 1):
        runtime._timer()
        landed.append([job.id for job in row if job.state == "IMPORTED"])
        previews.append([loaded_previews(job) for job in row])
    errors = [job.error for job in row if job.error]
    assert not errors, errors
    ids = [job.id for job in row]
    assert landed == [ids[:1], ids[:1], ids[:2], ids[:2], ids, ids, ids], (
        f"landed after each timer call: {landed}; expected one more every other call "
        "(the previews between), in order")
    counts = [len(job.images) for job in row]
    assert all(counts), "the service gave no preview images: the test sees nothing"
    assert previews == [[0, 0, 0], counts[:1] + [0, 0], counts[:1] + [0, 0],
                        counts[:2] + [0], counts[:2] + [0], counts, counts], previews
    for job in row:
        runtime.remove(bpy.context, job.id)
