"""Task builders: bad input is refused before any request, naming the field."""

import pytest

from modelstream_addon.core import tasks
from tests.conftest import write_png as png


def build(**opts):
    return tasks.build_task({"task_type": "text_to_model", "prompt": "a chair", **opts})


def test_text_to_model_body_has_the_api_names():
    body = build(face_limit=5000, texture=True, pbr=True, texture_quality="detailed",
                 quad=False, auto_size=True, model_version=" v3.0-20250812 ", style="")
    assert body == {"type": "text_to_model", "prompt": "a chair", "face_limit": 5000,
                    "texture": True, "pbr": True, "texture_quality": "detailed",
                    "quad": False, "auto_size": True, "model_version": "v3.0-20250812"}


@pytest.mark.parametrize("opts, field", [
    ({"prompt": ""}, "prompt"),
    ({"prompt": "   "}, "prompt"),
    ({"prompt": "x" * 1025}, "prompt"),
    ({"face_limit": -5}, "face_limit"),
    ({"face_limit": True}, "face_limit"),
    ({"texture": False, "pbr": True}, "pbr"),
    ({"texture_quality": "ultra"}, "texture_quality"),
    ({"task_type": "make_coffee"}, "task_type"),
])
def test_bad_input_names_the_field(opts, field):
    with pytest.raises(tasks.ValidationError) as info:
        build(**opts)
    assert info.value.field == field
    assert str(info.value).startswith(field)


def test_prompt_is_trimmed_and_label_is_short():
    body = build(prompt="  a   very " + "long " * 30 + "prompt ")
    assert body["prompt"].startswith("a   very")
    assert len(tasks.describe(body)) <= 48


def test_image_to_model_from_file_and_url(tmp_path):
    image = png(tmp_path / "a.png")
    body = tasks.build_task({"task_type": "image_to_model", "image_path": image})
    assert body["file"] == {"type": "png", "path": image}
    body = tasks.build_task({"task_type": "image_to_model",
                             "image_path": "https://example.com/cat.JPG?sig=1"})
    assert body["file"] == {"type": "jpg", "url": "https://example.com/cat.JPG?sig=1"}
    assert body["face_limit"] == 10000 and "prompt" not in body


@pytest.mark.parametrize("opts, field", [
    ({"task_type": "image_to_model"}, "image_path"),
    ({"task_type": "image_to_model", "image_path": "/nope.png"}, "image_path"),
    ({"task_type": "multiview_to_model"}, "view_front"),
    ({"task_type": "refine_model"}, "draft_model_task_id"),
    ({"task_type": "text_to_image"}, "prompt"),
    ({"task_type": "generate_multiview_image"}, "image_path"),
    ({"task_type": "edit_multiview_image", "prompt": "red"}, "original_task_id"),
    ({"task_type": "edit_multiview_image", "original_task_id": "t1"}, "prompt"),
    ({"task_type": "text_to_image", "prompt": "x", "extra_params": "{bad"}, "extra_params"),
    ({"task_type": "text_to_image", "prompt": "x", "extra_params": "[1]"}, "extra_params"),
    ({"task_type": "text_to_image", "prompt": "x", "extra_params": '{"prompt": "y"}'},
     "extra_params"),
])
def test_each_type_checks_its_fields(opts, field):
    with pytest.raises(tasks.ValidationError) as info:
        tasks.build_task(opts)
    assert info.value.field == field


def test_bad_images_are_refused_before_sending(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    tiny = png(tmp_path / "tiny.png", 10, 10)
    for path, words in ((str(tmp_path / "notes.png"), "not a PNG"), (tiny, "10x10")):
        with pytest.raises(tasks.ValidationError, match=words):
            tasks.build_task({"task_type": "image_to_model", "image_path": path})


def test_multiview_slots_keep_their_order_and_skip_with_empty(tmp_path):
    front, back = png(tmp_path / "f.png"), png(tmp_path / "b.png")
    body = tasks.build_task({"task_type": "multiview_to_model", "view_front": front,
                             "view_back": back})
    assert [bool(f) for f in body["files"]] == [True, False, True, False]
    assert body["files"][1] == {}
    with pytest.raises(tasks.ValidationError, match="at least two"):
        tasks.build_task({"task_type": "multiview_to_model", "view_front": front})
    body = tasks.build_task({"task_type": "multiview_to_model", "original_task_id": "mv1"})
    assert body["original_task_id"] == "mv1" and "files" not in body


def test_other_types_and_extra_params():
    assert tasks.build_task({"task_type": "refine_model", "draft_model_task_id": "d1"}) == {
        "type": "refine_model", "draft_model_task_id": "d1"}
    body = tasks.build_task({"task_type": "text_to_image", "prompt": "a fox",
                             "extra_params": '{"negative_prompt": "blurry", "image_seed": 3}'})
    assert body == {"type": "text_to_image", "prompt": "a fox", "negative_prompt": "blurry",
                    "image_seed": 3}
    assert tasks.output_kind("generate_multiview_image") == "multiview"
    assert tasks.image_fields({"task_type": "text_to_model", "image_path": "x"}) == ()
