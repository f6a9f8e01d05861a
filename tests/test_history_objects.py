"""Old jobs from the history cost the garbage collector about one object each: a full
collection walks every dict and list and stops every thread, Blender's main one too
(bench_stalls.py measures the frames). They still read back whole and are written back
unchanged (no bpy)."""

import gc

import pytest

from modelstream_addon.core import engine as engine_mod
from modelstream_addon.core import history
from modelstream_addon.core import job as job_mod

OLD = 1000


def old_record(n, downloads):
    job = job_mod.Job(body={"type": "text_to_model", "prompt": f"old {n}",
                            "extra": {"views": ["front", "back"]}},
                      state=job_mod.IMPORTED, task_id=f"task-{n}", created=1000.0 + n,
                      output_path=str(downloads / f"{n:012x}" / "model.glb"),
                      images=[("preview", str(downloads / f"{n:012x}" / "preview.png"))],
                      import_options={"placement": "AT", "location": [1.0, 2.0, float(n)]},
                      then=[{"type": "texture_model"}] if n % 2 else [],
                      answer=[True, "biped"] if n % 3 == 0 else [], id=f"{n:012x}")
    return history.record_of(job)


@pytest.mark.parametrize("load_async", [False, True], ids=["at-once", "on-a-thread"])
def test_old_jobs_are_one_object_each_and_read_back_whole(tmp_path, load_async):
    downloads = tmp_path / "downloads"
    records = [old_record(n, downloads) for n in range(OLD)]
    path = tmp_path / "history.json"
    history.write_atomic(str(path), records)
    gc.collect()
    before = len(gc.get_objects())
    eng = engine_mod.Engine(str(downloads), history_path=str(path), max_history=5000,
                            load_async=load_async)
    eng.take_history(30)
    assert not eng.loading and len(eng.jobs) == OLD
    gc.collect()
    per_job = (len(gc.get_objects()) - before) / OLD
    assert per_job < 2, f"{per_job:.1f} objects for the garbage collector per old job"

    first = eng.jobs[f"{1:012x}"]
    first.then = []  # written before it was ever read: kept, not replaced by the record's
    assert first.body == records[1]["body"] and first.then == []
    for record in records[2:]:
        job = eng.jobs[record["id"]]
        assert (job.body, job.images, job.import_options, job.then, job.answer) == (
            record["body"], [tuple(p) for p in record["images"]], record["import_options"],
            record["then"], record["answer"]), "an old job read back differently"
    eng.shutdown()
    again = {r["id"]: r for r in history.load(str(path))}
    assert [again[r["id"]] for r in records[2:]] == records[2:], "records changed on disk"
    assert len(again) == OLD, "jobs lost on the way back to disk"


def test_the_collector_is_frozen_only_while_the_history_loads_on_a_thread(tmp_path):
    downloads = tmp_path / "downloads"
    path = tmp_path / "history.json"
    history.write_atomic(str(path), [old_record(n, downloads) for n in range(OLD)])
    assert gc.get_freeze_count() == 0, "the collector was frozen before the load"
    eng = engine_mod.Engine(str(downloads), history_path=str(path), load_async=True)
    eng.take_history(30)
    assert not eng.loading and len(eng.jobs) == 200
    assert gc.get_freeze_count() == 0, "the garbage collector was left frozen after the load"
    eng.shutdown()
