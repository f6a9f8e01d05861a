"""core.tasks.build_request: the options to every body to send, in one call, with the
Blender side's work (gathering images) and the service's say passed in as callables."""

import pytest

from modelstream_addon.core import tasks
from tests.conftest import write_png


def test_one_call_returns_every_variation_and_the_note():
    request = tasks.build_request({"task_type": "text_to_model", "prompt": "a vase",
                                   "variations": 3, "extra_params": '{"face_limit": 900}'})
    assert len(request.bodies) == 3
    assert len({b["model_seed"] for b in request.bodies}) == 3
    assert all(b["face_limit"] == 900 for b in request.bodies)
    assert request.note == "extra_params sets face_limit, overriding the option"
    single = tasks.build_request({"task_type": "text_to_model", "prompt": "a vase"})
    assert len(single.bodies) == 1 and "model_seed" not in single.bodies[0]


def test_gather_is_asked_for_the_images_the_task_reads_only(tmp_path):
    image = write_png(tmp_path / "in.png", 64, 64)
    asked = []

    def gather(opts, fields):
        asked.append(fields)
        return {**opts, "image_path": image}

    body = tasks.build_request({"task_type": "image_to_model", "image_path": "later"},
                               gather).bodies[0]
    assert asked == [("image_path",)] and body["file"]["path"] == image
    tasks.build_request({"task_type": "text_to_model", "prompt": "a cup"}, gather)
    assert len(asked) == 1, "a task that reads no image gathers nothing"


def test_a_bad_variation_count_is_refused_before_anything_is_gathered():
    def gather(opts, fields):
        pytest.fail("gathered (captured) before the variation count was checked")

    with pytest.raises(tasks.ValidationError, match="variations"):
        tasks.build_request({"task_type": "image_to_model", "image_path": "x.png",
                             "variations": 9}, gather)


def test_check_sees_the_body_and_its_refusal_is_the_callers_error():
    seen = []

    def check(body):
        seen.append(body)
        raise tasks.ValidationError("task_type", "this service cannot run it.")

    with pytest.raises(tasks.ValidationError, match="cannot run it"):
        tasks.build_request({"task_type": "text_to_model", "prompt": "a cup"}, check=check)
    assert seen and seen[0]["prompt"] == "a cup"
