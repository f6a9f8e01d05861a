"""Engine.configure(): the preferences take effect at once, not at the next submit or the
next start of Blender (no bpy)."""

import os
import time

from modelstream_addon.core import engine as engine_mod
from modelstream_addon.core import history, job
from modelstream_addon.core.client import ModelStreamClient
from tests.conftest import KEY

BODY = {"type": "text_to_model", "prompt": "a small stool", "face_limit": 400}
TINY = 100


def client(service):
    return ModelStreamClient(KEY, service.url, backoff=0.01)


def make_engine(tmp_path, **kw):
    return engine_mod.Engine(str(tmp_path / "downloads"), poll_min=0.2, poll_max=0.5,
                             history_path=str(tmp_path / "history.json"), **kw)


def until(eng, item, ready, timeout, what):
    """Drain the engine until ready(item), or fail saying what did not happen."""
    deadline = time.monotonic() + timeout
    while not ready(item):
        assert time.monotonic() < deadline, (
            f"expected: {what} within {timeout} s; {item.state}: {item.message} {item.error}")
        eng.wait(item.id, timeout=0.1)
    return item


def assert_refused_as_too_big(eng, item):
    until(eng, item, lambda j: j.done, 30, "the job ended")
    eng.shutdown()
    assert item.state == job.FAILED
    assert f"over the {TINY}-byte limit" in item.error


def test_a_smaller_history_prunes_the_oldest_finished_jobs_at_once(tmp_path):
    records = []
    (tmp_path / "downloads").mkdir()
    for n in range(3):
        path = tmp_path / "downloads" / f"model{n}.glb"
        path.write_bytes(b"glTF")
        records.append({"id": f"00000000000{n}", "task_id": f"t{n}", "state": job.IMPORTED,
                        "created": 1000.0 + n, "output_path": str(path), "images": [],
                        "body": BODY})
    history.write_atomic(str(tmp_path / "history.json"), records)
    eng = make_engine(tmp_path)
    assert len(eng.jobs) == 3
    eng.configure(max_history=1)
    assert list(eng.jobs) == ["000000000002"]
    assert not os.path.exists(tmp_path / "downloads" / "model0.glb")
    assert not os.path.exists(tmp_path / "downloads" / "model1.glb")
    assert os.path.exists(tmp_path / "downloads" / "model2.glb")
    eng.shutdown()
    assert [r["id"] for r in history.load(str(tmp_path / "history.json"))] == [
        "000000000002"]


def test_a_new_download_limit_holds_for_a_job_resumed_after_a_restart(service, tmp_path):
    first = make_engine(tmp_path)
    item = first.submit(client(service), BODY)
    until(first, item, lambda j: j.task_id, 30, "the task was created")
    first.shutdown()
    second = make_engine(tmp_path)
    second.configure(max_download=TINY)
    (resumed,) = second.resume(client(service))
    assert_refused_as_too_big(second, resumed)


def test_a_new_download_limit_holds_for_a_job_already_running(service, tmp_path):
    # 'unknown' for a few seconds: the limit changes long before the download starts.
    service.faults(unknown_for=3)
    eng = make_engine(tmp_path)
    item = eng.submit(client(service), BODY)
    until(eng, item, lambda j: j.task_id, 30, "the task was created")
    eng.configure(max_download=TINY)
    assert_refused_as_too_big(eng, item)


def test_more_slots_let_a_waiting_job_go(service, tmp_path):
    # The first task stays 'unknown' for a long time and holds the only slot.
    service.faults(unknown_for=60)
    eng = make_engine(tmp_path, max_concurrent=1)
    first = eng.submit(client(service), BODY)
    until(eng, first, lambda j: j.task_id, 30, "the first task was created")
    second = eng.submit(client(service), {**BODY, "prompt": "a second stool"})
    eng.wait(second.id, timeout=1.0)
    assert second.state == job.WAITING and eng.queue_position(second.id) == 1
    eng.configure(max_concurrent=2)
    until(eng, second, lambda j: j.done, 30, "the second job ended")
    assert second.state == job.READY, second.error
    assert not first.done
    eng.cancel(first.id)
    eng.shutdown()
