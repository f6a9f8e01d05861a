"""Names from the service are data, never paths: a hostile task id cannot write, overwrite
or delete a user's file, and the add-on enables with any history file (real add-on and
engine, against the local service's evil_task_id fault)."""

import json
import os

import pytest

from modelstream_addon.core import engine as engine_mod
from modelstream_addon.core import job as job_mod
from modelstream_addon.core.client import ModelStreamClient
from tests.conftest import ADDON, KEY

BODY = {"type": "text_to_model", "prompt": "a small crate", "face_limit": 400}
USER_BYTES = b"the user's own model, not to be touched"


def snapshot(folder):
    """Every file under `folder` with its bytes."""
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def victim(tmp_path):
    """A user's file where an old add-on would have written a task named after its path."""
    (tmp_path / "user").mkdir()
    path = tmp_path / "user" / "victim.glb"
    path.write_bytes(USER_BYTES)
    return path


@pytest.mark.parametrize("corrupt, outcome", [(False, "READY"), (True, "FAILED")])
def test_a_task_id_shaped_like_a_path_never_names_a_file(
        service, tmp_path, victim, corrupt, outcome):
    downloads = tmp_path / "ext" / "downloads"
    # Old naming was downloads/<task id>.glb: this id pointed it at the user's file.
    service.faults(evil_task_id=str(victim)[:-len(".glb")],
                   **({"corrupt_glb": 1} if corrupt else {}))
    eng = engine_mod.Engine(str(downloads), poll_min=0.2, poll_max=0.5)
    job = eng.submit(ModelStreamClient(KEY, service.url, backoff=0.01), BODY)
    eng.wait(job.id, timeout=30)
    eng.shutdown()
    assert job.task_id == str(victim)[:-len(".glb")]
    assert job.state == outcome, job.error
    assert victim.read_bytes() == USER_BYTES, "a hostile task id wrote over a user's file"
    assert set(snapshot(tmp_path / "user")) == {str(victim)}
    written = {os.path.relpath(p, downloads) for p in snapshot(downloads)}
    if outcome == "READY":
        assert job.output_path == str(downloads / job.id / "model.glb")
        assert written == {f"{job.id}/model.glb", f"{job.id}/preview.png"}
    else:
        assert written <= {f"{job.id}/preview.png"}


def test_importing_a_task_by_a_path_like_id_stays_inside(service, tmp_path, victim):
    c = ModelStreamClient(KEY, service.url, backoff=0.01)
    service.faults(evil_task_id=str(victim)[:-len(".glb")])
    task_id = c.create_task(BODY)
    downloads = tmp_path / "ext" / "downloads"
    eng = engine_mod.Engine(str(downloads), poll_min=0.2, poll_max=0.5)
    jobs = [eng.attach(c, task_id), eng.attach(c, "../../user/victim")]
    for job in jobs:
        eng.wait(job.id, timeout=30)
    assert jobs[0].state == job_mod.READY, jobs[0].error
    for job in jobs:
        eng.remove(job.id)
    eng.shutdown()
    assert victim.read_bytes() == USER_BYTES
    assert snapshot(downloads) == {}


HOSTILE = [
    "not a record",
    {"id": [1, 2], "task_id": "lost-in-a-list", "state": "IMPORTED"},
    {"id": "00000000000b", "task_id": "kept-task", "state": "IMPORTED", "body": "x",
     "created": "a string where a number belongs"},
    {"id": "00000000000c", "task_id": "", "state": "FAILED", "body": {"prompt": ["x"]}},
]


def test_the_addon_enables_with_a_hostile_history(blender, addon, tmp_path, capfd):
    import addon_utils

    bpy = blender
    folder = bpy.utils.extension_path_user(ADDON, create=True)
    outside = tmp_path / "user"
    outside.mkdir()
    (outside / "keep.txt").write_bytes(USER_BYTES)
    good = {"id": "00000000000a", "task_id": "good-task", "state": "IMPORTED",
            "body": {"type": "text_to_model", "prompt": "a good old job"}, "images": [],
            "created": 1000.0, "finished": 1010.0, "owned": str(outside),
            "output_path": str(outside / "keep.txt")}
    addon_utils.disable(ADDON, default_set=True)
    with open(os.path.join(folder, "history.json"), "w") as f:
        json.dump({"version": 1, "jobs": [good, *HOSTILE]}, f)
    capfd.readouterr()
    addon_utils.enable(ADDON, default_set=True, handle_error=_raise)
    assert ADDON in bpy.context.preferences.addons, "the add-on did not enable"
    report = capfd.readouterr().out
    assert report.count("damaged job record") == 1 and "4 damaged" in report, report
    jobs = {j.task_id: j for j in addon.runtime.jobs()}
    assert set(jobs) == {"good-task", "kept-task", "lost-in-a-list"}
    assert jobs["kept-task"].state == "FAILED" and "kept-task" in jobs["kept-task"].error
    listed = {i.task_id for i in bpy.context.window_manager.modelstream_jobs}
    assert listed == set(jobs)
    addon.runtime.clear_finished(bpy.context)
    assert (outside / "keep.txt").read_bytes() == USER_BYTES, \
        "Clear Finished deleted a user's file a history record named"
    assert not addon.runtime.jobs()
    with open(os.path.join(folder, "history.rejected.json")) as f:
        assert len(json.load(f)["rejected"]) == len(HOSTILE)


def _raise(error):
    raise error
