"""In the GUI a history of thousands is listed a chunk per timer call, never all in one
frame, and the list still ends up row for row the engine's (bench_stalls.py measures the
frames)."""

import os
import time

from tests.conftest import ADDON, wait_until

OLD = 2500


def test_in_the_gui_a_long_history_fills_the_list_over_timer_calls(blender, addon, monkeypatch):
    from modelstream_addon.core import history, job

    bpy = blender
    runtime, joblist = addon.runtime, addon.joblist
    wm = bpy.context.window_manager
    prefs = bpy.context.preferences.addons[ADDON].preferences
    size = prefs.max_history
    runtime.shutdown()
    path = os.path.join(bpy.utils.extension_path_user(ADDON), "history.json")
    kept = history.load(path)
    old = [history.record_of(job.Job(body={"type": "text_to_model", "prompt": f"old {n}"},
                                     state=job.IMPORTED, task_id=f"old-{n}",
                                     created=time.time() - OLD + n)) for n in range(OLD)]
    history.write_atomic(path, [*old, *kept])
    prefs.max_history = 5000
    try:
        with monkeypatch.context() as patch:
            patch.setattr(runtime, "_gui", lambda: True)
            runtime.start()
            wait_until(lambda: runtime._timer() and not runtime.history_loading(), 30,
                       "the timer never took the history in")
            ids = list(runtime.engine().jobs)
            assert len(ids) == OLD + len(kept)
            counts, intervals = [len(wm.modelstream_jobs)], []
            while counts[-1] < len(ids) and len(counts) < 20:
                intervals.append(runtime._timer())
                counts.append(len(wm.modelstream_jobs))
            assert set(intervals[:-1]) == {runtime.LANDING_TICK}, (
                f"the timer waited {intervals} between chunks of a list still filling")
            steps = [b - a for a, b in zip(counts, counts[1:], strict=False)]
            assert counts[0] <= joblist.FILL and all(0 < s <= joblist.FILL for s in steps), (
                f"rows after each timer call: {counts}; at most {joblist.FILL} a call")
            assert [row.job_id for row in wm.modelstream_jobs] == ids, (
                f"the list never filled: rows after each timer call {counts}")
    finally:
        runtime.shutdown()
        history.write_atomic(path, kept)
        prefs.max_history = size
        runtime.start()
