"""A crash loses nothing, and the history write is atomic: the engine runs in a child
process that is never shut down cleanly (it is SIGKILLed, or just ends), and a new engine
starts on its folder (no bpy)."""

import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from modelstream_addon.core import engine as engine_mod
from modelstream_addon.core import history
from modelstream_addon.core.client import ModelStreamClient
from modelstream_addon.core.job import READY
from tests.conftest import KEY, ROOT, wait_until

BODY = {"type": "text_to_model", "prompt": "a brass bell", "face_limit": 400}
# The task stays unfinished this long, so the child is killed mid-task; well within it,
# the history writer (one write per 0.5 s at most) has had time to record the task id.
UNKNOWN_FOR = 8
RECORDED_WITHIN = 4

ENGINE_CHILD = """
import json, os, signal, sys, time
sys.path.insert(0, sys.argv[1])
folder, url, key, hook, body = sys.argv[2:7]
path = os.path.join(folder, "history.json")
replaces = 0

def audit(event, args):
    global replaces
    if event == "open" and isinstance(args[0], (str, bytes)) \\
            and os.path.abspath(os.fsdecode(args[0])) == path \\
            and args[2] & (os.O_WRONLY | os.O_RDWR):
        print("IN-PLACE", args[1], flush=True)
    elif event == "os.rename" and os.path.abspath(os.fsdecode(args[1])) == path:
        replaces += 1
        print("REPLACED", replaces, flush=True)
        if hook == "kill-at-second-replace" and replaces == 2:
            os.kill(os.getpid(), signal.SIGKILL)

if hook != "none":
    sys.addaudithook(audit)
from modelstream_addon.core.client import ModelStreamClient
from modelstream_addon.core.engine import Engine
eng = Engine(os.path.join(folder, "downloads"), history_path=path, poll_min=0.2, poll_max=0.5)
job = eng.submit(ModelStreamClient(key, url), json.loads(body))
print("JOB", job.id, flush=True)
deadline = time.monotonic() + 60
while not job.task_id and time.monotonic() < deadline:
    eng.tick()
    time.sleep(0.02)
print("TASK", job.task_id, flush=True)
while not job.done and time.monotonic() < deadline:
    eng.tick()
    time.sleep(0.02)
print("DONE", job.state, flush=True)
"""


def start_child(tmp_path, service, hook="none"):
    return subprocess.Popen([sys.executable, "-c", ENGINE_CHILD, ROOT, str(tmp_path),
                             service.url, KEY, hook, json.dumps(BODY)],
                            stdout=subprocess.PIPE, text=True)


def read_line(proc, prefix, timeout):
    """The child's next line starting with `prefix`, within its own deadline."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"after {timeout} s: the child never printed {prefix!r}")
        ready, _, _ = select.select([proc.stdout], [], [], left)
        line = proc.stdout.readline() if ready else ""
        if ready and not line:
            pytest.fail(f"the child ended (rc {proc.wait(10)}) before printing {prefix!r}")
        if line.startswith(prefix):
            return line.split()[1:]


def on_disk(path, job_id):
    return next((r for r in history.load(str(path)) if r["id"] == job_id), {})


def test_a_crash_after_the_task_exists_loses_nothing(service, tmp_path):
    service.faults(unknown_for=UNKNOWN_FOR)
    child = start_child(tmp_path, service)
    try:
        (job_id,) = read_line(child, "JOB", 30)
        (task_id,) = read_line(child, "TASK", 30)
        # No clean shutdown will save it: the history must already hold the task id.
        wait_until(lambda: on_disk(tmp_path / "history.json", job_id).get("task_id"),
                   RECORDED_WITHIN, "the history on disk never recorded the task id")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    eng = engine_mod.Engine(str(tmp_path / "downloads"), poll_min=0.2, poll_max=0.5,
                            history_path=str(tmp_path / "history.json"))
    try:
        job = eng.jobs[job_id]
        assert job.task_id == task_id and not job.done, (job.state, job.message)
        assert eng.resume(ModelStreamClient(KEY, service.url)) == [job]
        eng.wait(job_id, timeout=UNKNOWN_FOR + 30)
        assert job.state == READY, job.error
        assert os.path.getsize(job.output_path) > 0
        assert eng.unfinished() == [] and len(eng.jobs) == 1
    finally:
        eng.shutdown()
    stats = service.stats()
    assert stats["tasks_created"] == 1 and stats["requests"]["create"] == 1


def test_the_history_is_never_opened_for_writing_in_place(service, tmp_path):
    child = start_child(tmp_path, service, hook="record")
    out, _ = child.communicate(timeout=60)
    assert "DONE READY" in out, out
    assert "IN-PLACE" not in out, out
    assert out.count("REPLACED") >= 2, out


def test_a_kill_during_a_history_write_keeps_the_previous_version(service, tmp_path):
    """The child kills itself inside its second history write, just before the new version
    would take the old one's place: a write in place never gets there."""
    child = start_child(tmp_path, service, hook="kill-at-second-replace")
    out, _ = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, f"not killed mid-write:\n{out}"
    (job_id,) = next(line.split()[1:] for line in out.splitlines() if line.startswith("JOB"))
    records = history.load(str(tmp_path / "history.json"))
    assert [r["id"] for r in records] == [job_id]


NEVER_DRAINED_CHILD = """
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
folder, url, key, body = sys.argv[2:6]
from modelstream_addon.core.client import ModelStreamClient
from modelstream_addon.core.engine import Engine
eng = Engine(os.path.join(folder, "downloads"), history_path=os.path.join(folder, "history.json"),
             poll_min=0.2, poll_max=0.5)
job = eng.submit(ModelStreamClient(key, url), json.loads(body))
print("JOB", job.id, flush=True)
time.sleep(600)  # a script that never calls wait(): the main thread drains nothing
"""


def test_a_task_id_reaches_disk_even_when_the_main_thread_never_drains(service, tmp_path):
    """A headless script that submits and dies before `wait` still leaves the paid task
    to import: the worker writes the task id down the moment the create returns."""
    child = subprocess.Popen(
        [sys.executable, "-c", NEVER_DRAINED_CHILD, ROOT, str(tmp_path), service.url, KEY,
         json.dumps(BODY)], stdout=subprocess.PIPE, text=True)
    try:
        job_id = child.stdout.readline().split()[1]
        wait_until(lambda: service.stats()["tasks_created"] == 1, 30, "no task was created")
        wait_until(lambda: os.path.exists(tmp_path / "history.json.tasks"), 10,
                   "the task id never reached disk")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    eng = engine_mod.Engine(str(tmp_path / "downloads"),
                            history_path=str(tmp_path / "history.json"))
    try:
        job = eng.jobs[job_id]
        assert job.task_id and not job.done, (job.state, job.error)
        eng.resume(ModelStreamClient(KEY, service.url))
        eng.wait(job.id, timeout=60)
        assert job.state == READY, job.error
    finally:
        eng.shutdown()
    assert service.stats()["tasks_created"] == 1
    assert not os.path.exists(tmp_path / "history.json.tasks"), "folded into the history"


def test_a_removed_job_does_not_come_back_from_the_task_journal(service, tmp_path):
    path = str(tmp_path / "history.json")
    eng = engine_mod.Engine(str(tmp_path / "downloads"), history_path=path, poll_min=0.2)
    job = eng.submit(ModelStreamClient(KEY, service.url), BODY)
    wait_until(lambda: eng.wait(job.id, timeout=0.1).task_id, 30, "the task was never created")
    eng.remove(job.id)
    eng.shutdown()
    again = engine_mod.Engine(str(tmp_path / "downloads"), history_path=path)
    try:
        assert job.id not in again.jobs
    finally:
        again.shutdown()
