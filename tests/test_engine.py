"""The job engine against the real local service: worker threads do the I/O, tick() only
drains (no bpy)."""

import os
import time

import pytest

from modelstream_addon.core import engine as engine_mod
from modelstream_addon.core import job as job_mod
from modelstream_addon.core import tasks
from modelstream_addon.core.client import ModelStreamClient
from tests.conftest import KEY, wait_until

BODY = {"type": "text_to_model", "prompt": "a tiny robot", "face_limit": 600,
        "texture": True}


@pytest.fixture
def engine(tmp_path):
    eng = engine_mod.Engine(str(tmp_path), poll_min=0.2, poll_max=1.0)
    yield eng
    eng.shutdown()


def test_job_runs_to_ready(service, engine):
    job = engine.submit(ModelStreamClient(KEY, service.url), BODY)
    engine.wait(job.id, timeout=30)
    assert job.state == job_mod.READY, job.error
    assert job.output_format == "glb"
    assert os.path.getsize(job.output_path) > 1000
    assert job.task_id and job.progress == 100


def test_tick_never_waits_on_a_slow_service(service, engine):
    service.faults(delay=2.0)
    job = engine.submit(ModelStreamClient(KEY, service.url), BODY)
    longest = 0.0
    end = time.monotonic() + 30
    while not job.done and time.monotonic() < end:
        start = time.perf_counter()
        engine.tick()
        longest = max(longest, time.perf_counter() - start)
        time.sleep(0.01)
    assert job.state == job_mod.READY, job.error
    # The service takes seconds per answer; a tick that waited on it would take as long.
    assert longest < 0.25, longest


@pytest.mark.parametrize("status", ["failed", "banned", "expired", "cancelled"])
def test_final_statuses_fail_with_a_message(service, engine, status):
    service.faults(next_status=status)
    job = engine.submit(ModelStreamClient(KEY, service.url), BODY)
    engine.wait(job.id, timeout=30)
    assert job.state == job_mod.FAILED
    assert job.task_id in job.error
    assert status in job.error or "content policy" in job.error




def test_cancel_stops_all_requests(service, engine):
    job = engine.submit(ModelStreamClient(KEY, service.url), BODY)
    wait_until(lambda: engine.wait(job.id, timeout=0.1).task_id, 30,
               "the task was never created")
    engine.cancel(job.id)
    assert job.state == job_mod.CANCELLED
    assert "no cancel endpoint" in job.message
    time.sleep(0.5)
    before = service.stats()["requests"]
    time.sleep(2.5)
    assert service.stats()["requests"] == before




def test_unreachable_service_fails_cleanly(engine):
    job = engine.submit(ModelStreamClient(KEY, "http://127.0.0.1:9", max_retries=0), BODY)
    engine.wait(job.id, timeout=10)
    assert job.state == job_mod.FAILED
    assert "Could not connect" in job.error


def run(engine, service, body, transport="auto"):
    job = engine.submit(ModelStreamClient(KEY, service.url, backoff=0.01), body, transport)
    engine.wait(job.id, timeout=60)
    return job


@pytest.fixture
def image(tmp_path):
    from tests.conftest import write_png

    return write_png(tmp_path / "input.png", 96, 96)


def image_body(path):
    return {"type": "image_to_model", "file": {"type": "png", "path": path},
            "face_limit": 500, "texture": True}


def test_auto_transport_uploads_when_the_service_can(service, engine, image):
    job = run(engine, service, image_body(image))
    assert job.state == job_mod.READY, job.error
    assert job.transport == "upload"
    assert service.stats()["requests"]["upload"] == 1
    assert job.body["file"] == {"type": "png", "path": image}


def test_auto_transport_falls_back_to_a_data_url(service, engine, image):
    service.faults(upload=False)
    job = run(engine, service, image_body(image))
    assert job.state == job_mod.READY, job.error
    assert job.transport == "data URL"


def test_upload_transport_without_the_endpoint_says_what_to_do(service, engine, image):
    service.faults(upload=False)
    job = run(engine, service, image_body(image), transport="upload")
    assert job.state == job_mod.FAILED
    assert "Data URL" in job.error
    assert service.stats()["tasks_created"] == 0


def test_data_url_transport_skips_the_upload(service, engine, image):
    job = run(engine, service, image_body(image), transport="data_url")
    assert job.state == job_mod.READY, job.error
    assert service.stats()["requests"].get("upload", 0) == 0


@pytest.mark.parametrize("transport", ["auto", "data_url"])
def test_an_image_deleted_after_validation_fails_with_its_name(
        service, engine, image, transport):
    body = tasks.build_task({"task_type": "image_to_model", "image_path": image})
    os.remove(image)
    job = run(engine, service, body, transport)
    assert job.state == job_mod.FAILED
    assert job.error.startswith(f"The image {image} no longer exists"), job.error
    assert "Unexpected" not in job.error and "Unexpected" not in job.message
    assert service.stats()["tasks_created"] == 0


def test_every_task_type_end_to_end(service, engine, image):
    model = run(engine, service, BODY)
    assert model.output_format == "glb" and [n for n, _ in model.images] == ["preview"]
    refine = run(engine, service, {"type": "refine_model",
                                   "draft_model_task_id": model.task_id})
    assert refine.state == job_mod.READY and refine.output_format == "glb", refine.error
    picture = run(engine, service, {"type": "text_to_image", "prompt": "a fox"})
    assert [n for n, _ in picture.images] == ["generated_image"], picture.error
    edited = run(engine, service, {"type": "generate_image", "prompt": "tint it",
                                   "file": {"type": "png", "path": image}})
    assert edited.state == job_mod.READY, edited.error
    views = run(engine, service, {"type": "generate_multiview_image", "prompt": "a robot",
                                  "file": {"type": "png", "path": image}})
    assert [n for n, _ in views.images] == ["front", "left", "back", "right"], views.error
    edit = run(engine, service, {"type": "edit_multiview_image",
                                 "prompts": [{"view": "front", "prompt": "make it red"}],
                                 "original_task_id": views.task_id})
    assert len(edit.images) == 4, edit.error
    chained = run(engine, service, {"type": "multiview_to_model", "face_limit": 500,
                                    "original_task_id": edit.task_id})
    assert chained.output_format == "glb", chained.error
    files = [{"type": "png", "path": image}, {}, {"type": "png", "path": image}, {}]
    multi = run(engine, service, {"type": "multiview_to_model", "files": files,
                                  "face_limit": 500})
    assert multi.state == job_mod.READY, multi.error


def test_quad_returns_fbx(service, engine):
    job = run(engine, service, {**BODY, "quad": True})
    assert job.state == job_mod.READY, job.error
    assert job.output_format == "fbx" and job.output_path.endswith(".fbx")


@pytest.mark.parametrize("faults, outcome, words", [
    ({"fail_create": {"status": 429, "count": 1, "retry_after": 0.1}}, "READY", None),
    ({"fail_create": {"status": 429, "count": 1, "retry_after": 1,
                      "retry_after_format": "http-date"}}, "READY", None),
    ({"fail_get": {"status": 429, "count": 2, "retry_after": 0.1}}, "READY", None),
    ({"fail_get": {"status": 503, "count": 2}}, "READY", None),
    ({"fail_create": {"status": 500, "count": 1}}, "FAILED", "try again later"),
    ({"fail_create": {"status": "reset_before", "count": 1}}, "FAILED", "may have been"),
    ({"fail_create": {"status": "reset_after", "count": 1}}, "FAILED", "may have been"),
    ({"truncate_download": 1}, "READY", None),
    ({"corrupt_glb": 1}, "FAILED", "corrupt JSON chunk"),
    ({"expire_url": 1}, "READY", None),
    ({"next_status": "banned"}, "FAILED", "banned"),
    ({"next_status": "expired"}, "FAILED", "expired"),
    ({"unknown_for": 1.0}, "READY", None),
])
def test_faults_end_in_a_result_or_a_clear_error_never_a_duplicate(
        service, engine, faults, outcome, words):
    service.faults(**faults)
    job = run(engine, service, BODY)
    assert job.state == outcome, job.error
    if words:
        assert words in job.error
    stats = service.stats()
    assert stats["tasks_created"] == (
        0 if faults.get("fail_create", {}).get("status") in (500, "reset_before") else 1)
    if outcome == "FAILED":
        assert not job.output_path or not os.path.exists(job.output_path)
        assert not [f for f in os.listdir(engine.download_dir) if f.endswith(".glb")]


def test_unknown_status_for_too_long_fails(service, tmp_path):
    eng = engine_mod.Engine(str(tmp_path), poll_min=0.2, poll_max=0.5, unknown_limit=1.0)
    service.faults(unknown_for=30)
    job = run(eng, service, BODY)
    eng.shutdown()
    assert job.state == job_mod.FAILED and "'unknown'" in job.error


def test_while_the_main_thread_lands_workers_hold_their_requests(service, engine,
                                                                 monkeypatch):
    """engine.quiet(): a landing's import has the GIL to itself; the job goes on after."""
    from modelstream_addon.core import pacing

    monkeypatch.setattr(pacing, "QUIET_LIMIT", 60.0)
    with engine.quiet():
        job = engine.submit(ModelStreamClient(KEY, service.url), BODY)
        wait_until(lambda: engine.tick() is not None and job.task_id, 30,
                   "the task was never created")
        polls = service.stats()["task_polls"].get(job.task_id, 0)
        time.sleep(2.0)  # past the task's latency: a worker let through would poll it
        engine.tick()
        assert service.stats()["task_polls"].get(job.task_id, 0) == polls, \
            "a worker polled while the main thread held it"
        assert not job.done
    engine.wait(job.id, timeout=30)
    assert job.state == job_mod.READY, job.error
