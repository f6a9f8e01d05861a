"""Choosing the service, credits, and partial edits, in the real add-on against the local
service (the ModelStream side; tests/test_tripo_v3.py drives Tripo API v3)."""

import logging

import pytest

from tests.conftest import refused, wait_until, write_png
from tests.relay import Relay
from tests.test_ui_draw import draw

VIEWS = ("front", "left", "back", "right")
BALANCE = "/tripo/v2/openapi/user/balance"


@pytest.fixture
def relay(blender, service, monkeypatch):
    """The add-on talks to the service through a relay the test can shape."""
    proxy = Relay(service.url)
    monkeypatch.setenv("MODELSTREAM_BASE_URL", proxy.url)
    yield proxy
    proxy.close()


def labels(shown):
    return " | ".join(text for kind, text in shown if kind == "label")


def test_a_job_records_its_service_and_the_credits_its_task_consumed(blender, addon, service):
    bpy = blender
    assert bpy.ops.modelstream.generate(prompt="a stool", face_limit=300) == {'FINISHED'}
    job = addon.runtime.jobs()[-1]
    consumed = addon.client.ModelStreamClient(
        "sk-test-0123456789abcdef", service.url).get_task(job.task_id)["consumed_credit"]
    assert consumed > 0 and job.credits == consumed
    assert job.service == "modelstream"
    record = addon.history.record_of(job)
    assert (record["service"], record["credits"]) == ("modelstream", consumed)


def test_tripo_v3_refuses_refine_before_any_request_and_greys_it_out(blender, service,
                                                                     monkeypatch):
    bpy = blender
    settings = bpy.context.scene.modelstream
    settings.task_type = "refine_model"
    bpy.ops.object.empty_add()
    made = bpy.context.view_layer.objects.active
    made["modelstream_task_id"], made["modelstream_type"] = "draft-1", "text_to_model"
    assert bpy.ops.modelstream.refine_selected.poll()
    assert "refine" not in labels(draw(bpy.types.MODELSTREAM_PT_generate, bpy))

    monkeypatch.setenv("MODELSTREAM_SERVICE", "tripo-v3")
    message = refused(bpy.ops.modelstream.generate, task_type="refine_model",
                      draft_model_task_id="draft-1")
    assert "no refine_model" in message and "nothing was sent" in message
    assert service.stats()["tasks_created"] == 0
    assert not bpy.ops.modelstream.refine_selected.poll()
    assert "no refine_model" in labels(draw(bpy.types.MODELSTREAM_PT_generate, bpy))


def test_an_unknown_service_is_refused_naming_the_choices(blender, service, monkeypatch):
    monkeypatch.setenv("MODELSTREAM_SERVICE", "tripo-v2")
    message = refused(blender.ops.modelstream.generate, prompt="a cup")
    assert "modelstream, tripo-v3" in message and "MODELSTREAM_SERVICE" in message
    assert service.stats()["tasks_created"] == 0


def test_the_default_address_follows_the_service_a_typed_one_stays(blender, addon):
    prefs = blender.context.preferences.addons[addon.preferences.PACKAGE].preferences
    try:
        prefs.service = 'TRIPO_V3'
        assert prefs.base_url == "https://openapi.tripo3d.ai"
        prefs.service = 'MODELSTREAM'
        assert prefs.base_url == "https://api.modelstream.ai"
        prefs.base_url = "http://127.0.0.1:9/"
        prefs.service = 'TRIPO_V3'
        assert prefs.base_url == "http://127.0.0.1:9/"
    finally:
        prefs.service = 'MODELSTREAM'
        prefs.base_url = "https://api.modelstream.ai"


def test_no_balance_endpoint_shows_nothing_logs_nothing_and_is_asked_once(
        blender, addon, service, monkeypatch, capfd, caplog):
    proxy = Relay(service.url, missing=(BALANCE,))
    monkeypatch.setenv("MODELSTREAM_BASE_URL", proxy.url)
    runtime = addon.runtime
    try:
        assert runtime.refresh_balance() is not None
        wait_until(runtime.poll_balance, 15, "the balance request never came back")
        assert runtime.refresh_balance() is None, "asked again after a 404"
        assert proxy.count("GET", BALANCE) == 1
    finally:
        proxy.close()
    assert runtime.balance == ""
    assert "credits" not in labels(draw(blender.types.MODELSTREAM_PT_generate, blender))
    out, err = capfd.readouterr()
    assert "balance" not in (out + err).lower() and "error" not in (out + err).lower()
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def edited_views_only(path, answer):
    """A gateway that passes upstream's edit result through: only the edited views."""
    data = answer.get("data") or {}
    if data.get("type") != "edit_multiview_image" or data.get("status") != "success":
        return answer
    edited = {entry["view"] for entry in data["input"]["prompts"]}

    def trim(node):
        for key in list(node):
            if isinstance(node[key], dict):
                trim(node[key])
            elif any(key.startswith(view) for view in VIEWS if view not in edited):
                del node[key]

    trim(data["output"])
    return answer


@pytest.fixture
def partial(blender, service, monkeypatch):
    proxy = Relay(service.url, rewrite=edited_views_only)
    monkeypatch.setenv("MODELSTREAM_BASE_URL", proxy.url)
    yield proxy
    proxy.close()


def make_views(bpy, runtime, tmp_path):
    assert bpy.ops.modelstream.generate(
        task_type="generate_multiview_image", image_source='FILE',
        image_path=write_png(tmp_path / "robot.png", 64, 64)) == {'FINISHED'}
    return runtime.jobs()[-1]


def edit_back(bpy, runtime, source):
    assert bpy.ops.modelstream.generate(task_type="edit_multiview_image",
                                        original_task_id=source, prompt="",
                                        prompt_back="add a door") == {'FINISHED'}
    edit = runtime.jobs()[-1]
    assert [name for name, _ in edit.images] == list(VIEWS), edit.error
    return dict(edit.images)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_a_partial_edit_is_completed_from_the_views_the_history_has(blender, addon, partial,
                                                                    tmp_path):
    runtime = addon.runtime
    source = make_views(blender, runtime, tmp_path)
    polled = partial.count("GET", f"/tripo/v2/openapi/task/{source.task_id}")
    views = edit_back(blender, runtime, source.task_id)
    assert partial.count("GET", f"/tripo/v2/openapi/task/{source.task_id}") == polled
    kept = dict(source.images)
    for view in ("front", "left", "right"):
        assert views[view] != kept[view] and read(views[view]) == read(kept[view])
    assert read(views["back"]) != read(kept["back"])


def test_a_partial_edit_of_a_task_the_history_lacks_gets_the_source_once(blender, addon,
                                                                        partial, tmp_path):
    runtime = addon.runtime
    source = make_views(blender, runtime, tmp_path)
    originals = {name: read(path) for name, path in source.images}
    runtime.remove(blender.context, source.id)
    polled = partial.count("GET", f"/tripo/v2/openapi/task/{source.task_id}")
    views = edit_back(blender, runtime, source.task_id)
    assert partial.count("GET", f"/tripo/v2/openapi/task/{source.task_id}") == polled + 1
    assert read(views["front"]) == originals["front"]
    assert read(views["back"]) != originals["back"]


def test_the_python_api_takes_a_service_per_call(blender, addon, service, monkeypatch):
    api = addon.api
    with pytest.raises(api.ValidationError, match="no refine_model"):
        api.generate("refine_model", draft_model_task_id="draft-1", service="tripo-v3")
    monkeypatch.setenv("MODELSTREAM_SERVICE", "tripo-v3")
    result = api.generate(prompt="a v2 cup", face_limit=300, service="modelstream")
    assert result.ok and addon.runtime.job(result.job_id).service == "modelstream"
    assert service.stats()["tasks_created"] == 1
