"""The exact request each task type sends to each service (issue 10): ModelStream takes the
v2 body tests/test_wire_bodies.py pins, Tripo API v3 the body the official SDK `tripo3d`
1.0.0 builds (client.py: route per type, `model`, `input` / `inputs`, no `type`). No bpy."""

import pytest

from modelstream_addon.core import errors, services, tasks
from tests.conftest import write_png

V3 = services.named("tripo-v3")
V2 = services.named("modelstream")
MESH = {"face_limit": 10000, "texture": True, "pbr": False, "texture_quality": "standard",
        "quad": False, "auto_size": False}


@pytest.fixture
def png(tmp_path):
    return write_png(tmp_path / "in.png", 64, 64)


def sent(service, token="file_tok", **opts):
    """What goes on the wire: the body tasks.py builds, its local images replaced by an
    upload's token as the worker does, through the service's adapter."""
    body = tasks.build_task(opts)
    for ref in [body.get("file"), *(body.get("files") or [])]:
        if isinstance(ref, dict) and ref.pop("path", None):
            ref["file_token"] = token
    return service.create_request(body)


def test_v3_text_to_model():
    assert sent(V3, task_type="text_to_model", prompt="a chair",
                model_version="v3.0-20250812") == (
        "/v3/generation/text-to-model",
        {"prompt": "a chair", "model": "v3.0-20250812", **MESH})


def test_v3_image_to_model_from_an_upload_and_from_a_url(png):
    assert sent(V3, task_type="image_to_model", image_path=png, pbr=True,
                texture_quality="detailed", face_limit=0, extra_params='{"model_seed": 7}') == (
        "/v3/generation/image-to-model",
        {"input": "file_tok", "texture": True, "pbr": True, "texture_quality": "detailed",
         "quad": False, "auto_size": False, "model_seed": 7})
    path, wire = sent(V3, task_type="image_to_model", image_path="https://example.com/a.jpg")
    assert wire["input"] == "https://example.com/a.jpg" and "file" not in wire


def test_v3_multiview_to_model_skipped_views_are_null(png):
    assert sent(V3, task_type="multiview_to_model", view_front=png, view_back=png) == (
        "/v3/generation/multiview-to-model",
        {"inputs": ["file_tok", None, "file_tok", None], **MESH})


def test_v3_multiview_to_model_from_a_multiview_image_task():
    assert sent(V3, task_type="multiview_to_model", original_task_id="mv-1") == (
        "/v3/generation/multiview-to-model", {"inputs": [{"task_id": "mv-1"}], **MESH})


def test_v3_image_tasks(png):
    assert sent(V3, task_type="text_to_image", prompt="a fox") == (
        "/v3/generation/text-to-image", {"prompt": "a fox"})
    assert sent(V3, task_type="generate_image", prompt="a fox", image_path=png) == (
        "/v3/generation/image-to-image", {"prompt": "a fox", "input": "file_tok"})


def test_v3_multiview_image_tasks(png):
    assert sent(V3, task_type="generate_multiview_image", image_path=png) == (
        "/v3/generation/image-to-multiview", {"input": "file_tok"})
    assert sent(V3, task_type="edit_multiview_image", original_task_id="mv-1",
                prompt_back="add a door") == (
        "/v3/generation/edit-multiview",
        {"input": "mv-1", "prompts": [{"view": "back", "prompt": "add a door"}]})


def test_v3_refuses_what_it_has_no_route_for_before_any_request():
    with pytest.raises(tasks.ValidationError, match="no refine_model"):
        sent(V3, task_type="refine_model", draft_model_task_id="draft-1")
    with pytest.raises(tasks.ValidationError, match="input image"):
        sent(V3, task_type="generate_image", prompt="a fox")
    assert V3.unsupported("refine_model") and not V2.unsupported("refine_model")


def test_v3_an_image_not_yet_sent_is_never_put_on_the_wire(png):
    body = tasks.build_task({"task_type": "image_to_model", "image_path": png})
    with pytest.raises(errors.ConfigError, match="upload token or a URL"):
        V3.create_request(body)


def test_modelstream_sends_the_v2_body_as_built(png):
    for opts in ({"task_type": "text_to_model", "prompt": "a chair"},
                 {"task_type": "refine_model", "draft_model_task_id": "draft-1"},
                 {"task_type": "generate_image", "prompt": "a fox"},
                 {"task_type": "image_to_model", "image_path": png}):
        path, wire = sent(V2, **opts)
        body = tasks.build_task(opts)
        if "file" in body:
            body["file"] = {"type": "png", "file_token": "file_tok"}
        assert (path, wire) == ("/tripo/v2/openapi/task", body)


def test_each_service_has_its_own_paths_and_names():
    assert (V2.get_path("t1"), V2.upload_path, V2.upload_token, V2.balance_path) == (
        "/tripo/v2/openapi/task/t1", "/tripo/v2/openapi/upload", "image_token",
        "/tripo/v2/openapi/user/balance")
    assert (V3.get_path("t1"), V3.upload_path, V3.upload_token, V3.balance_path) == (
        "/v3/tasks/t1", "/v3/files", "file_token", "/v3/account/balance")
    assert V2.credits({"consumed_credit": 30}) == 30.0
    assert V3.credits({"credits_consumed": 12.5, "consumed_credit": 99}) == 12.5
    assert V3.credits({}) is None and V2.credits({"consumed_credit": "n/a"}) is None
    assert V3.task_type({"type": "image-to-multiview"}) == "generate_multiview_image"
    assert V3.task_type({"type": "text_to_model"}) == "text_to_model"


def test_choosing_a_service_and_its_address():
    assert services.named("TRIPO_V3") is V3 and services.named("") is V2
    with pytest.raises(errors.ConfigError, match="modelstream, tripo-v3"):
        services.named("tripo-v2")
    assert services.base_url(V3, "") == "https://openapi.tripo3d.ai"
    assert services.base_url(V3, "https://api.modelstream.ai/") == "https://openapi.tripo3d.ai"
    assert services.base_url(V2, "https://openapi.tripo3d.ai") == "https://api.modelstream.ai"
    assert services.base_url(V3, "http://127.0.0.1:8765/") == "http://127.0.0.1:8765"
    assert services.balance_of({"balance": 120.5, "frozen": 3}) == 120.5
    assert services.balance_of({"frozen": 3}) is None and services.balance_of(None) is None
