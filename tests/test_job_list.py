"""The job list on the WindowManager mirrors the engine row for row (order, state, place in
line, texts) through many changes, with a few hundred jobs: the mirror writes only what
changed, so what it remembers must never drift from what the rows hold."""

import threading

from tests.conftest import wait_until

JOBS = 300


def rows(wm):
    return [(r.job_id, r.state, r.queue_position, r.label, r.task_id, r.message, r.error)
            for r in wm.modelstream_jobs]


def engine_rows(runtime):
    eng = runtime.engine()
    places = eng.queue_positions()
    return [(j.id, j.state, places.get(j.id, 0), j.body.get("prompt", ""), j.task_id,
             j.message, j.error) for j in eng.jobs.values()]


def test_the_list_mirrors_the_engine_through_many_changes(blender, addon, service):
    bpy = blender
    runtime = addon.runtime
    wm = bpy.context.window_manager
    eng = runtime.engine()
    runtime.clear_finished(bpy.context)
    before = set(eng.jobs)
    eng.configure(max_concurrent=1)  # one at the service, the rest wait here in line
    client = addon.preferences.make_client(bpy.context)
    try:
        body = {"type": "text_to_model", "face_limit": 500}
        for n in range(JOBS):
            runtime.submit(bpy.context, runtime.Prepared({**body, "prompt": f"job {n}"},
                                                         client))
        assert rows(wm) == engine_rows(runtime), "after submitting"
        mine = [job_id for job_id in eng.jobs if job_id not in before]
        places = [place for _, state, place, *_ in rows(wm) if state == "WAITING"]
        assert places == list(range(1, len(places) + 1)) and len(places) >= JOBS - 1

        for job_id in mine[1:JOBS // 2:7]:
            runtime.cancel(bpy.context, job_id)
        for job_id in mine[2:JOBS // 2:5]:
            runtime.remove(bpy.context, job_id)
        assert rows(wm) == engine_rows(runtime), "after cancelling and removing"

        first = eng.jobs[mine[0]]
        wait_until(lambda: runtime.tick(wm) is not None and first.done, 60,
                   "the first job never finished")
        runtime.tick(wm)
        assert rows(wm) == engine_rows(runtime), "after ticks moved jobs along the line"

        wm.modelstream_jobs.clear()  # a new file brings an empty list
        runtime.tick(wm)
        runtime.sync(wm)
        assert rows(wm) == engine_rows(runtime), "after the list was emptied"

        runtime.clear_finished(bpy.context)  # many rows go at once
        assert rows(wm) == engine_rows(runtime), "after Clear Finished"
        assert all(state not in ("CANCELLED", "IMPORTED") for _, state, *_ in rows(wm))
    finally:
        mine = [j for j in eng.jobs if j not in before]
        for job_id in mine:
            runtime.remove(bpy.context, job_id)
        runtime.apply_preferences()
        # A create already on the wire still lands: let it, so the next test's service
        # counts start from zero.
        names = {f"modelstream-{job_id}" for job_id in mine}
        wait_until(lambda: not names & {t.name for t in threading.enumerate()}, 60,
                   "a removed job's worker never ended")
        client.close()
    assert rows(wm) == engine_rows(runtime), "after removing every job"
