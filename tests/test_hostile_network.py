"""A hostile or broken service, proxy or gateway (issue 11), one mode of the local service at
a time: a paid task is never dropped over an odd reply, a slow host never holds a job or a
slot for ever, and the key never comes back in an error, the job list or the history."""

import os

import pytest

from modelstream_addon.core import engine as engine_mod
from modelstream_addon.core import job as job_mod
from modelstream_addon.core.client import ModelStreamClient
from tests.conftest import ADDON, KEY, refused, wait_until

BODY = {"type": "text_to_model", "prompt": "a cup", "face_limit": 200}


@pytest.fixture
def engine(tmp_path):
    eng = engine_mod.Engine(str(tmp_path / "downloads"), poll_min=0.2, poll_max=0.5,
                            history_path=str(tmp_path / "history.json"))
    yield eng
    eng.shutdown()


def client(service, **kw):
    return ModelStreamClient(KEY, service.url, backoff=0.01, **kw)


def finish(engine, job, seconds=90):
    engine.wait(job.id, timeout=seconds)
    assert job.done, f"the job never finished: {job.state} {job.message}"
    return job


@pytest.mark.parametrize("fault", ["huge_reply", "deep_reply", "odd_fields"])
def test_an_odd_reply_never_drops_a_paid_task(service, engine, fault):
    service.faults(**{fault: 2})
    job = finish(engine, engine.submit(client(service), BODY))
    assert job.state == job_mod.READY, job.error
    assert job.task_id and os.path.exists(job.output_path)
    assert 0 <= job.progress <= 100
    stats = service.stats()
    assert stats["faults"][fault] >= 1 and stats["tasks_created"] == 1


def test_gzip_served_honestly_is_a_whole_model(service, engine):
    service.faults(gzip_download=10)  # every try of the model is gzip-encoded
    job = finish(engine, engine.submit(client(service), BODY))
    assert job.state == job_mod.READY, job.error
    with open(job.output_path, "rb") as f:
        assert f.read(4) == b"glTF"
    assert service.stats()["faults"]["gzip_download"] == 1, "fetched once, whole"


def test_a_host_sending_a_byte_a_second_hits_the_total_deadline(service, engine):
    service.faults(drip_download=1)
    job = finish(engine, engine.submit(client(service, download_deadline=2.0), BODY))
    assert job.state == job_mod.FAILED and "longer than 2 s" in job.error, job.error
    assert not [name for _, _, names in os.walk(engine.download_dir) for name in names]


def test_cancel_stops_a_dripping_download_and_frees_its_slot(service, engine):
    engine.configure(max_concurrent=1)
    service.faults(drip_download=1)
    stuck = engine.submit(client(service), BODY)
    wait_until(lambda: engine.tick() is not None and stuck.state == job_mod.DOWNLOADING, 60,
               "the first job never started downloading")
    waiting = engine.submit(client(service), BODY)
    engine.cancel(stuck.id)
    job = finish(engine, waiting, seconds=60)
    assert job.state == job_mod.READY, "the cancelled download kept the only slot"
    assert stuck.state == job_mod.CANCELLED


def test_a_link_local_result_link_is_never_followed(service, engine):
    service.faults(link_local_url=1)
    job = finish(engine, engine.submit(client(service, max_retries=0), BODY))
    assert job.state == job_mod.FAILED and "link-local" in job.error, job.error
    assert job.task_id


def test_a_reply_that_echoes_the_key_is_scrubbed_everywhere(blender, addon, service):
    import addon_utils

    bpy = blender
    service.faults(echo_key=1)
    message = refused(bpy.ops.modelstream.generate, prompt="a cup", face_limit=200)
    assert "<API key>" in message and KEY not in message
    wm = bpy.context.window_manager
    shown = wm.modelstream_error + "".join(j.error + j.message for j in wm.modelstream_jobs)
    assert KEY not in shown
    folder = os.path.dirname(addon.runtime.engine().download_dir)
    addon_utils.disable(ADDON, default_set=True)  # writes the history out
    addon_utils.enable(ADDON, default_set=True)
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                assert KEY.encode() not in f.read(), f"the key is in {name}"


def test_odd_fields_through_the_python_api(blender, addon, service):
    service.faults(odd_fields=3, gzip_download=1)
    result = addon.api.generate(prompt="a stool", face_limit=200)
    assert result.ok and result.task_id
