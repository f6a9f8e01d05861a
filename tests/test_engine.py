"""The job engine against the real local service: worker threads do the I/O, tick() only
drains (no bpy)."""

import os
import time

import pytest

from modelstream_addon import engine as engine_mod
from modelstream_addon.client import ModelStreamClient
from tests.conftest import KEY

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
    assert job.state == engine_mod.READY, job.error
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
    assert job.state == engine_mod.READY, job.error
    # The service takes seconds per answer; a tick that waited on it would take as long.
    assert longest < 0.25, longest


@pytest.mark.parametrize("status", ["failed", "banned", "expired", "cancelled"])
def test_final_statuses_fail_with_a_message(service, engine, status):
    service.faults(next_status=status)
    job = engine.submit(ModelStreamClient(KEY, service.url), BODY)
    engine.wait(job.id, timeout=30)
    assert job.state == engine_mod.FAILED
    assert job.task_id in job.error
    assert status in job.error or "content policy" in job.error


def test_unexpected_status_is_quoted(service, engine):
    service.faults(next_status="melted")
    job = engine.submit(ModelStreamClient(KEY, service.url), BODY)
    engine.wait(job.id, timeout=30)
    assert job.state == engine_mod.FAILED
    assert "'melted'" in job.error


def test_cancel_stops_all_requests(service, engine):
    job = engine.submit(ModelStreamClient(KEY, service.url), BODY)
    while not job.task_id:
        engine.wait(job.id, timeout=0.1)
    engine.cancel(job.id)
    assert job.state == engine_mod.CANCELLED
    assert "no cancel endpoint" in job.message
    time.sleep(0.5)
    before = service.stats()["requests"]
    time.sleep(2.5)
    assert service.stats()["requests"] == before


def test_poll_delay_follows_running_left_time(engine):
    slow = engine_mod.Engine("unused", poll_min=2.0, poll_max=30.0)
    assert slow._poll_delay({"running_left_time": 10}, 0) == 5.0
    assert slow._poll_delay({"running_left_time": 1}, 0) == 2.0
    assert slow._poll_delay({"running_left_time": 600}, 0) == 30.0
    assert slow._poll_delay({"running_left_time": -1}, 0) == 2.0
    assert slow._poll_delay({}, 3) == pytest.approx(6.75)
    assert slow._poll_delay({}, 20) == 30.0
    slow.shutdown()


def test_unreachable_service_fails_cleanly(engine):
    job = engine.submit(ModelStreamClient(KEY, "http://127.0.0.1:9", max_retries=0), BODY)
    engine.wait(job.id, timeout=10)
    assert job.state == engine_mod.FAILED
    assert "Could not connect" in job.error
