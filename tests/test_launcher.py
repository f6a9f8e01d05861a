"""The engine's threads start from its launcher thread, never from the caller: a
`Thread.start` waits for the new thread to run, which the main thread must not (no bpy)."""

import threading

import pytest

from modelstream_addon.core import engine as engine_mod
from modelstream_addon.core import job as job_mod
from modelstream_addon.core import launcher
from modelstream_addon.core.client import ModelStreamClient
from tests.conftest import KEY, wait_until

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


def test_the_launcher_ends_when_idle_and_at_shutdown(tmp_path, monkeypatch):
    monkeypatch.setattr(launcher, "IDLE", 0.05)
    eng = engine_mod.Engine(str(tmp_path))
    try:
        future = eng.call(lambda: 1)
        first = eng._launcher.thread
        assert future.result(timeout=30) == 1
        wait_until(lambda: not first.is_alive(), 30, "the idle launcher never ended")
        assert eng.call(lambda: 2).result(timeout=30) == 2, "no launcher after an idle one"
    finally:
        monkeypatch.setattr(launcher, "IDLE", 60.0)
        eng.call(lambda: 3).result(timeout=30)
        last = eng._launcher.thread
        eng.shutdown()
    assert last is not None and not last.is_alive(), "shutdown left the launcher running"
