"""The engine's threads start from its launcher thread, never from the caller: a
`Thread.start` waits for the new thread to run, which the main thread must not (no bpy)."""

import threading
import time

import pytest

from modelstream_addon.core import engine as engine_mod
from modelstream_addon.core import job as job_mod
from modelstream_addon.core.client import ModelStreamClient
from tests.conftest import KEY

BODY = {"type": "text_to_model", "prompt": "a tiny robot", "face_limit": 600}


@pytest.fixture
def engine(tmp_path):
    eng = engine_mod.Engine(str(tmp_path), poll_min=0.2, poll_max=1.0)
    yield eng
    eng.shutdown()


def test_jobs_and_calls_start_on_the_launcher_not_the_caller(service, engine, monkeypatch):
    starters = []
    start = threading.Thread.start

    def noting_start(thread):
        if thread.name.startswith("modelstream-") and thread.name != "modelstream-launcher":
            starters.append((thread.name, threading.current_thread().name))
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", noting_start)
    job = engine.submit(ModelStreamClient(KEY, service.url), BODY)
    future = engine.call(lambda: 42)
    assert future.result(timeout=30) == 42
    engine.wait(job.id, timeout=60)
    assert job.state == job_mod.READY, job.error
    by = dict(starters)
    assert by[f"modelstream-{job.id}"] == by["modelstream-call"] == "modelstream-launcher", \
        starters
    assert not [s for s in starters if s[1] == threading.main_thread().name], starters


def test_the_launcher_starts_once_and_ends_at_shutdown(tmp_path):
    """Idle, it waits: started again later it would make that caller wait for it."""
    eng = engine_mod.Engine(str(tmp_path))
    try:
        assert eng.call(lambda: 1).result(timeout=30) == 1
        first = eng._launcher.thread
        time.sleep(0.3)  # idle a while
        assert eng.call(lambda: 2).result(timeout=30) == 2
        assert eng._launcher.thread is first and first.is_alive()
    finally:
        eng.shutdown()
    first.join(10)
    assert not first.is_alive(), "shutdown left the launcher running"
