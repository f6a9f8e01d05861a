"""Task builders: bad input is refused before any request, naming the field."""

import pytest

from modelstream_addon import tasks


def build(**opts):
    return tasks.build_task({"task_type": "text_to_model", "prompt": "a chair", **opts})


def test_text_to_model_body_has_the_api_names():
    body = build(face_limit=5000, texture=True, pbr=True, texture_quality="detailed",
                 quad=False, auto_size=True, model_version=" v3.0-20250812 ", style="")
    assert body == {"type": "text_to_model", "prompt": "a chair", "face_limit": 5000,
                    "texture": True, "pbr": True, "texture_quality": "detailed",
                    "auto_size": True, "model_version": "v3.0-20250812"}


@pytest.mark.parametrize("opts, field", [
    ({"prompt": ""}, "prompt"),
    ({"prompt": "   "}, "prompt"),
    ({"prompt": "x" * 1025}, "prompt"),
    ({"face_limit": 0}, "face_limit"),
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
