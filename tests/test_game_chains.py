"""Game Ready's chains in the engine alone (no bpy): your own model imported, then split
into parts; the step after the import is sent once, whatever stops Blender in between."""

from modelstream_addon.core import engine as engine_mod
from modelstream_addon.core import job as job_mod
from modelstream_addon.core import model_tasks, post_tasks
from tests.test_chains import finished_model, new_engine, v3_client


def test_an_import_then_a_split_is_never_sent_twice_across_a_crash(service, tmp_path):
    history_path = str(tmp_path / "history.json")
    client = v3_client(service)
    engine = new_engine(tmp_path, history_path)
    model = finished_model(engine, client)  # its GLB stands in for the user's export
    imported = engine.submit(client, model_tasks.import_body(model.output_path),
                             then=[post_tasks.segment_step()])
    engine.wait(imported.id, timeout=30)
    assert imported.state == job_mod.READY and not imported.output_path, imported.error
    engine.shutdown()  # Blender closes between the two steps

    engine = new_engine(tmp_path, history_path)
    assert engine.jobs[imported.id].then == [post_tasks.segment_step()]
    created = service.stats()["tasks_created"]
    engine._writer.save = lambda records: None  # and dies before the history is written
    split = engine.proceed(client, imported.id)
    engine.wait(split.id, timeout=30)
    assert split.state == job_mod.READY and split.output_format == "glb", split.error
    assert service.stats()["tasks_created"] == created + 1
    engine.shutdown()

    again = engine_mod.Engine(str(tmp_path / "downloads"), history_path=history_path)
    try:
        assert not again.jobs[imported.id].then, "the split would be sent a second time"
        assert again.jobs[imported.id].state == job_mod.IMPORTED
        assert not [j for j in again.jobs.values() if j.state == job_mod.READY and j.then]
    finally:
        again.shutdown()
