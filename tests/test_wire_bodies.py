"""The exact JSON each task type sends to ModelStream (issue 10): what the panel shows is
what is sent, with the upstream shapes from the official SDKs. No bpy here."""

import pytest

from modelstream_addon.core import tasks
from tests.conftest import write_png

MESH = {"face_limit": 10000, "texture": True, "pbr": False, "texture_quality": "standard",
        "quad": False, "auto_size": False}


@pytest.fixture
def png(tmp_path):
    return write_png(tmp_path / "in.png", 64, 64)


def build(**opts):
    return tasks.build_task(opts)


def local(png):
    return {"type": "png", "path": png}


def test_text_to_model(png):
    assert build(task_type="text_to_model", prompt=" a  chair ") == {
        "type": "text_to_model", "prompt": "a  chair", **MESH}


def test_image_to_model_with_every_mesh_option(png):
    assert build(task_type="image_to_model", image_path=png, face_limit=5000, pbr=True,
                 texture_quality="extreme", quad=True, auto_size=True,
                 model_version="v3.0-20250812", style="object:clay") == {
        "type": "image_to_model", "file": local(png), "face_limit": 5000, "texture": True,
        "pbr": True, "texture_quality": "extreme", "quad": True, "auto_size": True,
        "model_version": "v3.0-20250812", "style": "object:clay"}


def test_multiview_to_model_from_files_and_from_a_task(png):
    assert build(task_type="multiview_to_model", view_front=png, view_back=png) == {
        "type": "multiview_to_model", "files": [local(png), {}, local(png), {}], **MESH}
    assert build(task_type="multiview_to_model", original_task_id="mv-1") == {
        "type": "multiview_to_model", "original_task_id": "mv-1", **MESH}


def test_refine_model():
    assert build(task_type="refine_model", draft_model_task_id="draft-1") == {
        "type": "refine_model", "draft_model_task_id": "draft-1"}


def test_image_tasks(png):
    assert build(task_type="text_to_image", prompt="a fox") == {
        "type": "text_to_image", "prompt": "a fox"}
    assert build(task_type="generate_image", prompt="a fox", image_path=png) == {
        "type": "generate_image", "prompt": "a fox", "file": local(png)}


def test_generate_multiview_image_needs_an_image(png):
    assert build(task_type="generate_multiview_image", image_path=png, prompt="a robot") == {
        "type": "generate_multiview_image", "file": local(png), "prompt": "a robot"}
    with pytest.raises(tasks.ValidationError) as info:
        build(task_type="generate_multiview_image", prompt="a robot")
    assert info.value.field == "image_path"


def test_edit_multiview_image_sends_one_prompt_per_edited_view():
    assert build(task_type="edit_multiview_image", original_task_id="mv-1",
                 prompt_back="add a door") == {
        "type": "edit_multiview_image", "original_task_id": "mv-1",
        "prompts": [{"view": "back", "prompt": "add a door"}]}
    everywhere = build(task_type="edit_multiview_image", original_task_id="mv-1",
                       prompt="paint it red", prompt_left="and a badge")
    assert "prompt" not in everywhere
    assert everywhere["prompts"] == [
        {"view": "front", "prompt": "paint it red"}, {"view": "left", "prompt": "and a badge"},
        {"view": "back", "prompt": "paint it red"}, {"view": "right", "prompt": "paint it red"}]
    with pytest.raises(tasks.ValidationError):
        build(task_type="edit_multiview_image", original_task_id="mv-1")


def test_face_limit_zero_is_auto_and_not_sent_negative_is_refused():
    body = build(task_type="text_to_model", prompt="a cup", face_limit=0)
    assert "face_limit" not in body
    with pytest.raises(tasks.ValidationError, match="Auto"):
        build(task_type="text_to_model", prompt="a cup", face_limit=-1)


def test_texture_quality_only_with_a_texture():
    body = build(task_type="text_to_model", prompt="a cup", texture=False,
                 texture_quality="detailed")
    assert body["texture"] is False and "texture_quality" not in body


def test_extra_params_override_the_mesh_options_only():
    body = build(task_type="text_to_model", prompt="a cup",
                 extra_params='{"face_limit": 777, "texture_quality": "detailed", "model_seed": 3}')
    assert body["face_limit"] == 777 and body["texture_quality"] == "detailed"
    assert body["model_seed"] == 3
    assert tasks.overrides({"extra_params": '{"face_limit": 1, "model_seed": 2}'}) == [
        "face_limit"]
    for bad in ('{"type": "text_to_image"}', '{"prompts": []}', '{"prompt": "other"}',
                '{"file": {"url": "http://x/y.png"}}', '{"files": []}',
                '{"image": {"type": "png", "path": "/etc/passwd"}}',
                '{"reference": "file:///home/me/secret.png"}'):
        with pytest.raises(tasks.ValidationError) as info:
            build(task_type="text_to_model", prompt="a cup", extra_params=bad)
        assert info.value.field == "extra_params", bad
