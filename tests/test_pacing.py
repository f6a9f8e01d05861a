"""Threads that compute for a while rest for real every millisecond, so Blender's main
thread gets the GIL within about that; the main thread itself never rests (no bpy)."""

import threading
import time

from modelstream_addon.core import history, pacing


def rests_during(seconds, on_main):
    """How many times a Pacer rested over `seconds` of busy work."""
    rests = []
    pace = [None]

    def work():
        pace[0] = pacing.Pacer(on_rest=lambda: rests.append(time.perf_counter()))
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pace[0]()

    if on_main:
        work()
    else:
        thread = threading.Thread(target=work)
        thread.start()
        thread.join(30)
        assert not thread.is_alive()
    return rests


def test_a_thread_rests_every_millisecond_of_work_the_main_thread_never():
    assert len(rests_during(0.02, on_main=False)) >= 4, "a busy thread never gave way"
    assert rests_during(0.02, on_main=True) == [], "the main thread slept for nobody"


def test_the_history_loads_paced_record_by_record(tmp_path):
    path = str(tmp_path / "history.json")
    records = [{"id": f"{n:012x}", "task_id": f"task-{n}", "state": "IMPORTED",
                "body": {"type": "text_to_model"}, "created": 1000.0 + n}
               for n in range(1, 301)]
    history.write_atomic(path, records)
    calls = []
    loaded = list(history.stream(path, lambda: calls.append(1)))
    assert len(loaded) == 300
    assert len(calls) >= 300, "a record loaded without a chance to rest"


def test_a_held_quiet_holds_a_worker_until_the_main_thread_lets_go(monkeypatch):
    monkeypatch.setattr(pacing, "QUIET_LIMIT", 30.0)
    quiet = pacing.Quiet()
    quiet.wait()  # open: returns at once
    with quiet.hold():
        assert quiet.held
        worker = threading.Thread(target=quiet.wait)
        worker.start()
        worker.join(0.3)
        assert worker.is_alive(), "a worker went on while the main thread held it"
    worker.join(30)
    assert not worker.is_alive() and not quiet.held


def test_a_worker_waits_for_a_held_quiet_no_longer_than_its_limit(monkeypatch):
    monkeypatch.setattr(pacing, "QUIET_LIMIT", 0.05)
    quiet = pacing.Quiet()
    with quiet.hold():
        worker = threading.Thread(target=quiet.wait)
        worker.start()
        worker.join(30)
        assert not worker.is_alive(), "a worker waited past its limit"
