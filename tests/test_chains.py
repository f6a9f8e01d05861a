"""Chains of tasks on a model (issue 14) in the engine alone (no bpy): each step sent only
when the one before is done, never twice, kept in the history across a restart, and a
model that cannot be rigged stops the chain before the rig is paid for."""

import pytest

from modelstream_addon.core import engine as engine_mod
from modelstream_addon.core import history, model_tasks, services
from modelstream_addon.core import job as job_mod
from modelstream_addon.core.client import ModelStreamClient
from tests.conftest import KEY

GENERATE = {"type": "text_to_model", "prompt": "a standing robot", "face_limit": 300}


def v3_client(service):
    return ModelStreamClient(KEY, service.url, service=services.named("tripo-v3"))


@pytest.fixture
def history_path(tmp_path):
    return str(tmp_path / "history.json")


def new_engine(tmp_path, history_path):
    return engine_mod.Engine(str(tmp_path / "downloads"), poll_min=0.2, poll_max=1.0,
                             history_path=history_path)


def finished_model(engine, client):
    job = engine.submit(client, GENERATE)
    engine.wait(job.id, timeout=30)
    assert job.state == job_mod.READY, job.error
    return job


def test_a_step_waits_for_the_one_before_and_goes_on_after_a_restart(
        service, tmp_path, history_path):
    client = v3_client(service)
    engine = new_engine(tmp_path, history_path)
    model = finished_model(engine, client)
    steps = model_tasks.rig_steps("mixamo", animations=["preset:walk"])
    check = engine.submit(client, model_tasks.next_body(steps[0], model.task_id),
                          then=steps[1:])
    engine.wait(check.id, timeout=30)
    assert check.state == job_mod.READY and check.answer == [True, "biped"], check.error
    assert not check.output_path  # a step the chain goes on from downloads nothing
    created = service.stats()["tasks_created"]
    engine.shutdown()  # Blender closes before the chain goes on

    engine = new_engine(tmp_path, history_path)
    kept = engine.jobs[check.id]
    assert kept.state == job_mod.READY and kept.then == steps[1:]
    engine._writer.save = lambda records: None  # Blender dies before the history is written
    rig = engine.proceed(client, check.id)
    assert engine.jobs[check.id].state == job_mod.IMPORTED and not engine.jobs[check.id].then
    # The step is known to have gone on all the same, so it is never sent on twice.
    after_crash = new_engine(tmp_path, history_path)
    assert not after_crash.jobs[check.id].then
    assert after_crash.jobs[check.id].state == job_mod.IMPORTED
    after_crash.shutdown()
    assert rig.body == {**steps[1], "original_model_task_id": model.task_id,
                        "rig_type": "biped"}
    engine.wait(rig.id, timeout=30)
    retarget = engine.proceed(client, rig.id)
    assert retarget.body["original_model_task_id"] == rig.task_id
    assert retarget.import_options["steps"] == {"animate_prerigcheck": check.task_id,
                                                "animate_rig": rig.task_id}
    engine.wait(retarget.id, timeout=30)
    assert retarget.state == job_mod.READY and retarget.output_path, retarget.error
    assert service.stats()["tasks_created"] == created + 2
    engine.shutdown()


def test_a_check_that_says_no_stops_the_chain_before_the_rig(service, tmp_path, history_path):
    client = v3_client(service)
    engine = new_engine(tmp_path, history_path)
    check = engine.submit(client, {"type": model_tasks.RIG_CHECK,
                                   "original_model_task_id": finished_model(engine,
                                                                            client).task_id},
                          then=model_tasks.rig_steps()[1:])
    engine.wait(check.id, timeout=30)
    check.answer = [False, "others"]  # as a flat model's check says
    created = service.stats()["tasks_created"]
    with pytest.raises(model_tasks.ValidationError, match="cannot be rigged"):
        engine.proceed(client, check.id)
    assert check.state == job_mod.FAILED and "no rig task" in check.error
    assert service.stats()["tasks_created"] == created
    engine.shutdown()


@pytest.mark.parametrize("field, value", [
    ("then", {"type": "animate_rig"}),
    ("then", [{"type": "text_to_model"}]),
    ("answer", [True]),
    ("answer", ["yes", "biped"]),
])
def test_a_damaged_chain_record_is_set_aside(field, value):
    record = {"id": "0123456789ab", "task_id": "t-1", "state": "READY",
              "body": {"type": "animate_prerigcheck"}, field: value}
    with pytest.raises(history.BadRecord):
        history.check(record)
