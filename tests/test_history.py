"""History on disk and the engine's many-jobs behaviour, against the local service
(no bpy)."""

import json
import os

import pytest

from modelstream_addon import engine as engine_mod
from modelstream_addon import history
from modelstream_addon import job as job_mod
from modelstream_addon.client import ModelStreamClient
from tests.conftest import KEY, wait_until

BODY = {"type": "text_to_model", "prompt": "a small crate", "face_limit": 400}


def client(service):
    return ModelStreamClient(KEY, service.url, backoff=0.01)


def make_engine(tmp_path, **kw):
    return engine_mod.Engine(str(tmp_path / "downloads"), poll_min=0.2, poll_max=0.5,
                             history_path=str(tmp_path / "history.json"), **kw)




def test_every_job_is_recorded_without_the_key(service, tmp_path):
    eng = make_engine(tmp_path)
    job = eng.submit(client(service), BODY)
    eng.wait(job.id, timeout=30)
    eng.shutdown()
    text = (tmp_path / "history.json").read_text()
    assert KEY not in text
    record = history.load(str(tmp_path / "history.json"))[0]
    assert record["task_id"] == job.task_id and record["state"] == "READY"
    assert record["body"]["prompt"] == "a small crate"
    assert record["output_path"] == job.output_path


def test_resume_after_a_restart_finishes_the_task(service, tmp_path):
    first = make_engine(tmp_path)
    job = first.submit(client(service), BODY)
    wait_until(lambda: first.wait(job.id, timeout=0.1).task_id, 30,
               "the task was never created")
    first.shutdown()
    assert not job.done
    second = make_engine(tmp_path)
    restored = second.jobs[job.id]
    assert restored.task_id == job.task_id and not restored.done
    assert second.resume(client(service)) == [restored]
    second.wait(job.id, timeout=30)
    assert restored.state == job_mod.READY, restored.error
    assert service.stats()["tasks_created"] == 1
    second.shutdown()


def test_a_job_lost_before_its_task_id_is_never_resent(tmp_path):
    history.write_atomic(str(tmp_path / "history.json"), [
        {"id": "lost1", "state": "SUBMITTING", "task_id": "", "body": BODY, "images": []}])
    eng = make_engine(tmp_path)
    job = eng.jobs["lost1"]
    assert job.state == job_mod.FAILED and "not sent again" in job.error
    assert eng.resume(None) == []
    eng.shutdown()


def test_at_most_n_tasks_at_the_service(service, tmp_path):
    eng = make_engine(tmp_path, max_concurrent=2)
    jobs = [eng.submit(client(service), {**BODY, "prompt": f"crate {i}"}) for i in range(6)]
    for job in jobs:
        eng.wait(job.id, timeout=60)
    eng.shutdown()
    assert all(j.state == job_mod.READY for j in jobs), [j.error for j in jobs]
    stats = service.stats()
    assert stats["max_in_flight_seen"] <= 2
    assert stats["tasks_created"] == 6


def test_a_concurrency_429_waits_locally_instead_of_failing(service, tmp_path):
    service.faults(max_in_flight=1)
    eng = make_engine(tmp_path, max_concurrent=4)
    jobs = [eng.submit(client(service), {**BODY, "prompt": f"box {i}"}) for i in range(3)]
    for job in jobs:
        eng.wait(job.id, timeout=90)
    eng.shutdown()
    assert all(j.state == job_mod.READY for j in jobs), [j.error for j in jobs]
    assert service.stats()["tasks_created"] == 3


def test_history_is_bounded_and_files_go_with_entries(service, tmp_path):
    eng = make_engine(tmp_path, max_history=2)
    jobs = []
    for i in range(3):
        job = eng.submit(client(service), {**BODY, "prompt": f"cup {i}"})
        eng.wait(job.id, timeout=30)
        jobs.append(job)
    eng.submit(client(service), {**BODY, "prompt": "one more"})
    assert jobs[0].id not in eng.jobs
    assert not os.path.exists(jobs[0].output_path)
    eng.clear_finished()
    assert all(not os.path.exists(j.output_path) for j in jobs)
    eng.shutdown()


def test_attach_follows_a_task_created_elsewhere(service, tmp_path):
    c = client(service)
    task_id = c.create_task({**BODY, "prompt": "a kettle"})
    eng = make_engine(tmp_path)
    job = eng.attach(c, task_id)
    eng.wait(job.id, timeout=30)
    eng.shutdown()
    assert job.state == job_mod.READY, job.error
    assert job.body == {"type": "text_to_model", "prompt": "a kettle"}


def test_refetch_downloads_again_when_the_cache_is_gone(service, tmp_path):
    eng = make_engine(tmp_path)
    job = eng.submit(client(service), BODY)
    eng.wait(job.id, timeout=30)
    os.remove(job.output_path)
    eng.refetch(client(service), job.id)
    eng.wait(job.id, timeout=30)
    eng.shutdown()
    assert job.state == job_mod.READY and os.path.exists(job.output_path)


@pytest.mark.parametrize("bad", ["{not json", "[]", json.dumps({"jobs": "x"})])
def test_unreadable_history_is_an_empty_one(tmp_path, bad):
    (tmp_path / "h.json").write_text(bad)
    assert history.load(str(tmp_path / "h.json")) == []
